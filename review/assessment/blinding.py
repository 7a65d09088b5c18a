"""What raters see of a note: the same normalisation for real and synthetic texts, so form gives nothing away."""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans({"«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"', "’": "'", "‘": "'", "‚": "'",
                         "—": "-", "–": "-", "\u00a0": " "})
# Leftovers a generator may leave at either end: special tokens, Alpaca headers, list markers, ellipses.
_EDGE_MARKERS = re.compile(
    r"^(?:\s|###\s*\w+:?|ответ:|answer:|</?s>|<\|[^|]*\|>|\[end\]|[-*•]+)+|(?:\s|</?s>|<\|[^|]*\|>|\[end\]|###|\.\.\.|…)+$",
    re.IGNORECASE,
)
LENGTH_BANDS = ((0, 19, "short"), (20, 39, "medium"), (40, 79, "long"), (80, 10**9, "very long"))


def rater_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    text = _EDGE_MARKERS.sub("", text.strip())
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def length_band(text: str) -> str:
    words = len(text.split())
    return next(name for low, high, name in LENGTH_BANDS if low <= words <= high)
