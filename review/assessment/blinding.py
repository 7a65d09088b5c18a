"""Blinding: what raters see of a note (rater_text). Who may rate at all is medsyn_site.roles.sees_origins.

rater_text is applied the same way to real and synthetic notes, so that form gives nothing away. It removes what
only one origin leaves and writes every note in one house style:

1. Characters: NFC; invisible characters (zero-width space, non-joiner and joiner, word joiner, BOM, soft hyphen,
   direction marks) removed; every space-like character a plain space; typographic quotes straight (" and '),
   every dash and minus sign a hyphen, an ellipsis three dots (rule 6 then makes them one).
2. Generator leftovers, anywhere: special tokens (<|...|>, <s>, </s>, <pad>, <eos>, <bos>, <unk>,
   <start_of_turn>model, <end_of_turn>, [INST], [/INST], <<SYS>>, [end]), instruction headers (### Instruction:,
   ### Response:, Response:, Answer:, Ответ: or Задание: at a line start), and a chat role name opening the text
   (assistant, model); quotes wrapping the whole text.
3. De-identification markers: the real corpus (RuMedTop3) writes *ДАТА*, *МО*, *ГОРОД*, *ИМЯ*, *РЕГИОН*, *СТРАНА*
   and *ДОЛЖНОСТЬ* (any case) where personal data was, which a generator never does; a generator may instead write
   a concrete or a placeholder date (12.03.2021, XX.XX.XXXX), which the real corpus never has. Both are removed,
   with a preposition standing right before them: "УЗИ от *ДАТА*: норма" and "УЗИ от 12.03.2021: норма" both read
   "УЗИ: норма". (A neutral word such as "[дата]" would keep a mark only real notes carry.)
4. Markdown: headings (#) and list markers (-, *, •, +, 1., 1)) at line starts, and " * " used as an inline list
   marker (as in flattened real notes); emphasis (**x**, __x__, *x*) and code ticks; any asterisk left over.
5. Lines: a line break becomes ". " when the line before has no closing punctuation and the next line was a list
   item or heading or starts with a capital; any other run of whitespace is one space.
6. Punctuation: no space before . , ; : ! ? or ) and none after (; one space after . , ; : ! ? before a letter; a
   run of marks is one mark (? or ! if there is one, else . if there is one, else the first), and a run of hyphens
   one hyphen; no mark opens the
   text; a trailing , ; : or - becomes one ".", and the text ends with . ! or ?.
7. The first word is capitalised when it is all lower case ("pH" is left alone).
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u180e"), None)
_CHARACTERS = str.maketrans({
    **_INVISIBLE,
    "«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "’": "'", "‘": "'", "‚": "'", "‛": "'",
    "—": "-", "–": "-", "‒": "-", "―": "-", "‐": "-", "‑": "-", "−": "-", "…": "...",
    "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ",
    "\t": " ",
})
_SPECIAL_TOKENS = re.compile(
    r"<\|[^|<>]{0,60}\|>|<start_of_turn>(?:[ \t]*(?:model|user)\b)?|<end_of_turn>|</?(?:s|pad|eos|bos|unk)>"
    r"|\[/?INST\]|<</?SYS>>|\[end\]",
    re.IGNORECASE,
)
_HEADERS = re.compile(
    r"#{1,6}[ \t]*(?:instruction|response|input|output|answer|инструкция|ответ|задание|вход)[ \t]*:?"
    r"|\b(?:instruction|response|input|output|answer)[ \t]*:"
    r"|^[ \t]*(?:ответ|задание)[ \t]*:|#{3,}",
    re.IGNORECASE | re.MULTILINE,
)
_ROLE_OPENING = re.compile(r"^\s*(?:assistant|model)\b[ \t]*:?", re.IGNORECASE)
DEIDENTIFICATION_MARKERS = ("ДАТА", "МО", "ГОРОД", "ИМЯ", "РЕГИОН", "СТРАНА", "ДОЛЖНОСТЬ")
_PLACEHOLDERS = re.compile(
    r"(?:(?<!\w)(?:от|с|со|в|во|до|по|на|к|ко|за|из|после|около)\s+)?"
    r"(?:\*(?:" + "|".join(DEIDENTIFICATION_MARKERS) + r")\*"
    r"|(?<![\w.])(?:\d{1,2}|[XxХх]{2})[./](?:\d{1,2}|[XxХх]{2})[./](?:\d{4}|\d{2}|[XxХх]{4}|[XxХх]{2})(?!\w|\.\d))",
    re.IGNORECASE,
)
_WRAPPING_QUOTES = re.compile(r'^\s*(["\'])([^"\']*)\1([\s.!?]*)$')
_INLINE_BULLET = re.compile(r"[ \t]+[*•][ \t]+")
_LINE_MARKER = re.compile(r"^[ \t]*(?:#{1,6}|[-*•·▪+]|\d{1,2}[.)])[ \t]+")
_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|__(.+?)__|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_SPACE_BEFORE = re.compile(r"\s+([.,;:!?)])")
_SPACE_AFTER_PAREN = re.compile(r"\(\s+")
_MARK_RUN = re.compile(r"[.,;:!?](?:\s*[.,;:!?])+")
_DASH_RUN = re.compile(r"-(?:\s*-)+")
_SPACE_AFTER = re.compile(r"([.,;:!?])(?=[^\W\d_])")
_LEADING = re.compile(r"^[\s.,;:!?)\-]+")
_TRAILING = re.compile(r"[\s,;:\-]+$")
_CLOSING = tuple(".,;:!?-(")


def _mark_of(run: str) -> str:
    """The one mark a run such as ",." or "?!" or ":." becomes."""
    marks = [c for c in run if not c.isspace()]
    return next((c for c in marks if c in "?!"), "." if "." in marks else marks[0])


def _lines_joined(text: str) -> str:
    joined = ""
    for raw_line in text.split("\n"):
        line = _LINE_MARKER.sub("", raw_line)
        structural = line != raw_line
        line = " ".join(line.replace("*", " ").replace("`", "").split())
        if not line:
            continue
        if joined and not joined.endswith(_CLOSING) and (structural or line[0].isupper()):
            joined += ". "
        elif joined:
            joined += " "
        joined += line
    return joined


def _punctuation(text: str) -> str:
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER_PAREN.sub("(", text)
    text = _MARK_RUN.sub(lambda m: _mark_of(m.group()), text)
    text = _DASH_RUN.sub("-", text)
    text = _SPACE_AFTER.sub(r"\1 ", text)
    text = " ".join(text.split())
    text = _LEADING.sub("", text)
    text = _TRAILING.sub("", text)
    if text and not text.endswith((".", "!", "?")):
        text += "."
    return text


def _capitalised(text: str) -> str:
    first = text.split(" ", 1)[0]
    letter = next((i for i, c in enumerate(text) if c.isalpha()), None)
    if letter is None or not first.islower():
        return text
    return text[:letter] + text[letter].upper() + text[letter + 1:]


def rater_text(text: str) -> str:
    """The note as every rater sees it, whatever its origin (the module docstring gives the house style)."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").translate(_CHARACTERS)
    text = _SPECIAL_TOKENS.sub(" ", text)
    text = _ROLE_OPENING.sub("", text)
    text = _HEADERS.sub(" ", text)
    text = _PLACEHOLDERS.sub("", text)
    text = _WRAPPING_QUOTES.sub(r"\2\3", text)
    text = _EMPHASIS.sub(lambda m: next(g for g in m.groups() if g is not None), text)
    text = _INLINE_BULLET.sub("\n* ", text)
    text = _lines_joined(text)
    return _capitalised(_punctuation(text))


LENGTH_BANDS = ((0, 19, "short"), (20, 39, "medium"), (40, 79, "long"), (80, 10**9, "very long"))


def length_band(text: str) -> str:
    words = len(text.split())
    return next(name for low, high, name in LENGTH_BANDS if low <= words <= high)
