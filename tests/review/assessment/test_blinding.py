"""The rater-text normaliser equalises real and synthetic notes, and the origin classifier measures how well."""

from __future__ import annotations

import pytest

from review.assessment.blinding import rater_text
from review.assessment.origin_probe import MAX_PER_ORIGIN, MIN_PER_ORIGIN, content_view, origin_probe
from tests.review.assessment.conftest import same_note_twice

BASE = "Жалобы на кашель и насморк в течение трёх дней. Температура 38,5, слабость."

# (real version, synthetic version) of one note: the synthetic one carries one generator fingerprint, the real one
# is how a clinician (or the de-identified corpus) writes the same thing.
FINGERPRINTS = {
    "assistant opening": (BASE, "assistant\n" + BASE),
    "chat tokens": (BASE, "<|im_start|>assistant\n" + BASE + "<|im_end|>"),
    "instruction header": (BASE, "### Instruction:\n" + BASE),
    "response header": (BASE, "### Response:\n" + BASE),
    "bare Response:": (BASE, "Response: " + BASE),
    "[INST]": (BASE, "[INST] " + BASE + " [/INST]"),
    "gemma turns": (BASE, "<start_of_turn>model\n" + BASE + "<end_of_turn>"),
    "pad eos bos": (BASE, "<bos>" + BASE + "<pad><pad><eos>"),
    "end of sequence": (BASE, BASE + "</s>"),
    "bold heading": ("Анамнез: болеет три дня.", "**Анамнез:** болеет три дня."),
    "underscore emphasis": ("Жалобы на кашель.", "Жалобы на __кашель__."),
    "markdown heading": ("Жалобы. Кашель, насморк.", "# Жалобы\nКашель, насморк."),
    "numbered list": ("Кашель. Насморк.", "1. Кашель\n2. Насморк"),
    "bulleted list": ("Жалобы: кашель; насморк.", "Жалобы:\n- кашель;\n- насморк."),
    "bullet dots": ("Жалобы: кашель; насморк.", "Жалобы:\n• кашель;\n• насморк."),
    "zero-width characters": ("Кашель и насморк.", "Каш\u200bель\u200d и\u200c насморк\u2060."),
    "BOM": (BASE, "\ufeff" + BASE),
    "soft hyphen": ("Кашель и насморк.", "Ка\u00adшель и нас\u00adморк."),
    "typographic dash": ("Кашель - насморк.", "Кашель — насморк."),
    "en dash": ("Кашель 2-3 дня.", "Кашель 2–3 дня."),
    "typographic quotes": ('Диагноз "ОРВИ" под вопросом.', "Диагноз «ОРВИ» под вопросом."),
    "curly quotes": ('Диагноз "ОРВИ" под вопросом.', "Диагноз “ОРВИ” под вопросом."),
    "wrapping quotes": (BASE, "«" + BASE + "»"),
    "no-break space": ("Температура 38,5 °C.", "Температура 38,5\u00a0°C."),
    "ellipsis": ("Кашель.", "Кашель…"),
    "date marker vs concrete date": ("Повторный прием от *ДАТА*: кашель.", "Повторный прием от 12.03.2021: кашель."),
    "date marker vs placeholder date": ("УЗИ от *ДАТА* без патологии.", "УЗИ от XX.XX.XXXX без патологии."),
    "place markers": ("Наблюдается в *МО*, живёт в *ГОРОД*.", "Наблюдается, живёт."),
    "space before punctuation": ("Кашель, насморк.", "Кашель , насморк ."),
    "no space after punctuation": ("Кашель, насморк.", "Кашель,насморк."),
    "doubled punctuation": ("Кашель, насморк.", "Кашель,, насморк.."),
    "lower-case start": ("Кашель.", "кашель."),
}


@pytest.mark.parametrize(("real", "synthetic"), list(FINGERPRINTS.values()), ids=list(FINGERPRINTS))
def test_each_fingerprint_is_normalised_like_the_real_note(real, synthetic):
    assert rater_text(synthetic) == rater_text(real)


@pytest.mark.parametrize("text", [v for pair in FINGERPRINTS.values() for v in pair])
def test_no_fingerprint_survives(text):
    shown = rater_text(text)
    for leftover in ("<", ">", "[INST", "###", "*", "__", "assistant", "Response", "\u200b", "\ufeff", "\u00ad",
                     "«", "—", "–", "…", " ,", " .", ",,", ".."):
        assert leftover not in shown, (leftover, shown)
    assert shown[0].isupper() and shown.endswith(".")


@pytest.mark.parametrize(("text", "expected"), [
    ("Жалобы на кашель,", "Жалобы на кашель."),
    ("Жалобы на кашель;", "Жалобы на кашель."),
    ("Жалобы на кашель:", "Жалобы на кашель."),
    ("Жалобы на кашель, ", "Жалобы на кашель."),
    ("Жалобы на кашель,.", "Жалобы на кашель."),
    ("Жалобы на кашель -", "Жалобы на кашель."),
    ("Жалобы на кашель?", "Жалобы на кашель?"),
])
def test_a_trailing_comma_becomes_one_full_stop(text, expected):
    assert rater_text(text) == expected


def test_markers_and_real_text_keep_their_content():
    real = "- слабость, быстрая утомляемость - нарушение ночного сна Повторный прием от *ДАТА*"
    assert rater_text(real) == "Слабость, быстрая утомляемость - нарушение ночного сна Повторный прием."
    assert rater_text("В *ДАТА* перенесла ОРВИ, с *ДАТА* по *ДАТА* принимала арбидол") == \
        "Перенесла ОРВИ, принимала арбидол."
    assert rater_text("pH 7,4, АД 120/80 мм.рт.ст.") == "pH 7,4, АД 120/80 мм. рт. ст."


def test_the_pairs_of_the_form_pool_are_equal_once_normalised():
    for n in range(15):
        real, synthetic = same_note_twice(n)
        assert real != synthetic and rater_text(real) == rater_text(synthetic)


def test_content_view_keeps_words_and_numbers_only():
    assert content_view('Температура 38,5; "ОРВИ" — Ёж!') == "температура 38 5 орви еж"


def _form_pool(pairs: int) -> tuple[list[str], list[str], list[bool]]:
    raw, labels = [], []
    for n in range(pairs):
        real, synthetic = same_note_twice(n)
        raw += [real, synthetic]
        labels += [False, True]
    return raw, [rater_text(t) for t in raw], labels


def test_origin_probe_sees_the_form_in_raw_texts_and_not_after_normalisation():
    raw, normalised, labels = _form_pool(30)
    probe = origin_probe(raw, normalised, labels, seed=7)
    assert probe["n"] == 60 and probe["n_real"] == probe["n_synthetic"] == 30 and probe["folds"] == 5
    assert probe["raw"] >= 0.95
    assert probe["normalised"] == probe["content"]  # the normalised pairs are identical: only content is left
    assert probe["warning"] is False
    assert origin_probe(raw, normalised, labels, seed=7) == probe  # fixed seed: reproducible


def test_origin_probe_warns_when_form_survives_normalisation():
    raw, normalised, labels = _form_pool(30)
    leaky = [f"«{text}»" if synthetic else text for text, synthetic in zip(normalised, labels, strict=True)]
    probe = origin_probe(raw, leaky, labels, seed=7)  # a normaliser that left the guillemets of synthetic notes
    assert probe["normalised"] > probe["content"] + probe["margin"] and probe["warning"] is True


def test_origin_probe_skips_pools_too_small_for_cross_validation():
    raw, normalised, labels = _form_pool(MIN_PER_ORIGIN - 1)
    probe = origin_probe(raw, normalised, labels, seed=1)
    assert probe["skipped"] == "too_small" and "raw" not in probe
    assert (probe["n_real"], probe["min_per_origin"]) == (MIN_PER_ORIGIN - 1, MIN_PER_ORIGIN)


def test_origin_probe_samples_a_large_pool_per_origin():
    """Its speed is measured by bench/bench_origin_probe.py (about a second for 300 notes), not asserted here."""
    raw, normalised, labels = _form_pool(MAX_PER_ORIGIN + 20)
    probe = origin_probe(raw, normalised, labels, seed=1)
    assert (probe["n_real"], probe["n_synthetic"], probe["n"]) == (MAX_PER_ORIGIN + 20,) * 2 + (2 * MAX_PER_ORIGIN,)
