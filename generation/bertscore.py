"""BERTScore (Zhang et al., 2020) with a local encoder, for the paper's prompt-following check.

Used when MEDSYN_SCORING_MODEL_DIR names a local encoder directory (for example a multilingual BERT);
otherwise the lexical checks stand alone, as METHOD.md allows. Greedy matching of L2-normalised token
embeddings from one hidden layer; no idf weighting and no baseline rescaling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class BertScore:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


class BertScorer:
    def __init__(self, model_dir: Path, *, layer: int | None = None, max_length: int = 512) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.layer = layer
        self.max_length = max_length
        self._lock = threading.Lock()

    def _embed(self, text: str):
        torch = self._torch
        encoded = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length,
                                 return_special_tokens_mask=True)
        special = encoded.pop("special_tokens_mask")[0].bool()
        with self._lock, torch.no_grad():
            output = self.model(**encoded, output_hidden_states=True)
        states = output.hidden_states[self.layer if self.layer is not None else -1][0]
        states = states[~special] if (~special).any() else states
        return torch.nn.functional.normalize(states, dim=-1)

    def score(self, candidate: str, reference: str) -> BertScore:
        cand, ref = self._embed(candidate), self._embed(reference)
        similarity = cand @ ref.T
        return BertScore(precision=float(similarity.max(dim=1).values.mean()),
                         recall=float(similarity.max(dim=0).values.mean()))


@lru_cache(maxsize=2)
def _scorer_for(path: str) -> BertScorer:
    return BertScorer(Path(path))


def bert_scorer_configured() -> BertScorer | None:
    """The scorer for settings.SCORING_MODEL_DIR, loaded once per process; None when none is configured."""
    from django.conf import settings

    path = getattr(settings, "SCORING_MODEL_DIR", None)
    return _scorer_for(str(path)) if path else None
