"""Hugging Face ``transformers`` backend: batched chat generation on CPU or GPU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from carealign.errors import ModelError
from carealign.generate.base import ChatTemplateGenerator, Completion, GenerationConfig, ProgressCallback
from carealign.hardware import resolve_dtype_name, torch_dtype

#: Tokens that end an assistant turn in common chat templates.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>")


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids that end an assistant turn: the tokenizer's EOS and the end-of-turn tokens it knows."""
    ids = {tokenizer.eos_token_id}
    for tok in _END_OF_TURN:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on GPUs and CPUs with bf16 arithmetic, else fp32 (see :mod:`carealign.hardware`)."""
    return torch_dtype(resolve_dtype_name(dtype, device.type))


class HFGenerator(ChatTemplateGenerator):
    """Generate with a ``transformers`` causal LM and its chat template.

    Prompts are sorted by token length and batched with left padding; ``batch_size``
    counts sequences (a prompt sampled k times takes k places in a batch).
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str, batch_size: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.model.eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        if getattr(tokenizer, "chat_template", None) is None:
            raise ModelError(f"model {name!r} has no chat template; carealign needs an instruction-tuned chat model")
        self.stop_ids = stop_token_ids(tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 32,
        max_length: int = 2048,
    ) -> HFGenerator:
        """Load a model directory or hub id (the hub only when online)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dev = pick_device(device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, dev))
        except OSError as exc:
            raise ModelError(
                f"cannot load model {str(path)!r}: {exc}. Give a registered name (carealign models), "
                "a local directory, or a hub id while online."
            ) from None
        if not tokenizer.model_max_length or tokenizer.model_max_length > 1_000_000:
            tokenizer.model_max_length = max_length
        model.to(dev)  # type: ignore[arg-type]  # transformers types .to() through a decorator
        return cls(model, tokenizer, name=name or str(path), batch_size=batch_size)

    @property
    def identity(self) -> str:
        return f"hf:{self.name}"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ templating

    def _encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    # ------------------------------------------------------------------ generation

    def generate_rendered(
        self,
        texts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for prompts already rendered with the chat template."""
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        k_model = 1 if config.greedy else config.samples
        per_batch = max(1, self.batch_size // k_model)
        results: list[list[Completion] | None] = [None] * len(texts)
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            outs = self._generate_batch([texts[i] for i in idx], config, k_model, seed=config.seed + b)
            n_tok = 0
            for j, i in enumerate(idx):
                comps = [replace(c, prompt_tokens=lengths[i]) for c in outs[j]]
                if config.greedy and config.samples > 1:
                    comps = comps * config.samples
                results[i] = comps
                n_tok += sum(c.n_tokens for c in outs[j])
            if progress:
                progress(len(idx), n_tok)
        return [r if r is not None else [] for r in results]

    @torch.inference_mode()
    def _generate_batch(
        self, texts: list[str], config: GenerationConfig, k: int, *, seed: int
    ) -> list[list[Completion]]:
        enc = self._encode(texts)
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.stop_ids,
            "num_return_sequences": k,
        }
        if config.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0)
        out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        completions: list[list[Completion]] = [[] for _ in texts]
        stop = torch.tensor(self.stop_ids, device=new.device)
        for row in range(new.shape[0]):
            seq = new[row]
            is_stop = torch.isin(seq, stop)
            n = int(is_stop.nonzero()[0, 0]) if bool(is_stop.any()) else seq.shape[0]
            text = self.tokenizer.decode(seq[:n], skip_special_tokens=True).strip()
            completions[row // k].append(Completion(text=text, n_tokens=n + (1 if n < seq.shape[0] else 0)))
        return completions

    # ------------------------------------------------------------------ label scoring

    @torch.inference_mode()
    def label_logprobs(
        self, conversations: Sequence[list[dict[str, str]]], labels: Sequence[str]
    ) -> list[dict[str, float] | None]:
        """Log-probability of each full label string as the start of the assistant reply.

        One forward pass per (conversation, label) pair, batched; the sum of the label's
        token log-probs is returned, so multi-token labels are handled exactly.
        """
        prefixes = [self.render(c) for c in conversations]
        label_ids = [self.tokenizer(lab, add_special_tokens=False)["input_ids"] for lab in labels]
        results: list[dict[str, float] | None] = []
        per_batch = max(1, self.batch_size // len(labels))
        for start in range(0, len(prefixes), per_batch):
            chunk = prefixes[start : start + per_batch]
            seqs: list[list[int]] = []
            spans: list[tuple[int, int]] = []
            for prefix in chunk:
                p_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
                for ids in label_ids:
                    seqs.append(p_ids + ids)
                    spans.append((len(p_ids), len(ids)))
            width = max(len(s) for s in seqs)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):  # left padding
                input_ids[r, width - len(s) :] = torch.tensor(s)
                mask[r, width - len(s) :] = 1
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for c in range(len(chunk)):
                scores: dict[str, float] = {}
                for j, lab in enumerate(labels):
                    r = c * len(labels) + j
                    p_len, l_len = spans[r]
                    offset = width - (p_len + l_len)
                    total = 0.0
                    for t in range(l_len):
                        pos = offset + p_len + t
                        total += float(logp[r, pos - 1, input_ids[r, pos]])
                    scores[lab] = total if math.isfinite(total) else -math.inf
                results.append(scores)
        return results

    def complete_chat(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy replies to whole conversations."""
        texts = [self.render(c) for c in conversations]
        outs = self.generate_rendered(texts, GenerationConfig(max_new_tokens=max_new_tokens))
        return [o[0].text for o in outs]
