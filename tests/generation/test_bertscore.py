"""BERTScore with a tiny local encoder built on the spot (no download)."""

from __future__ import annotations

import pytest

from generation.bertscore import BertScorer, bert_scorer_configured
from generation.checks import CheckThresholds, note_check


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel

    from tests.tiny_model import tiny_model_build

    target = tmp_path_factory.mktemp("tiny-encoder")
    tiny_model_build(target)  # reuse its tokenizer; replace the decoder with a small encoder
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target)
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(target)
    return target


def test_identical_texts_score_one_and_scores_are_asymmetric(tiny_encoder_dir):
    scorer = BertScorer(tiny_encoder_dir)
    text = "Жалобы на кашель, насморк и температуру."
    same = scorer.score(text, text)
    assert same.precision == pytest.approx(1.0, abs=1e-5) and same.recall == pytest.approx(1.0, abs=1e-5)
    longer = scorer.score(text + " Также головная боль и слабость в течение недели.", "кашель")
    assert 0 < longer.precision < 1 and 0 < longer.recall <= 1
    assert longer.precision != pytest.approx(longer.recall)


def test_note_check_uses_bertscore_when_configured(tiny_encoder_dir, settings):
    settings.SCORING_MODEL_DIR = tiny_encoder_dir
    scorer = bert_scorer_configured()
    note = "Пациент жалуется на кашель и насморк, температура 38 градусов, слабость."
    report = note_check(note, symptoms=["кашель", "насморк"], example=note, scorer=scorer,
                        thresholds=CheckThresholds(bertscore_recall_min=1.01, words_min=1))
    assert {"bertscore_recall", "bertscore_precision"} <= set(report.scores)
    assert report.scores["bertscore_precision"] == pytest.approx(1.0, abs=1e-4)
    assert any("BERTScore recall" in reason for reason in report.reasons)
    settings.SCORING_MODEL_DIR = None
    assert bert_scorer_configured() is None
