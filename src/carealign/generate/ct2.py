"""CTranslate2 backend: a C++ CPU/GPU inference engine for decoder-only Hugging Face models.

The checkpoint is converted once into CTranslate2's format (seconds for a 135M model) and
cached by its content hash (:mod:`carealign.generate.conversion`); the Hugging Face tokenizer
renders the chat template and decodes, so prompts and texts are exactly those of
:class:`~carealign.generate.hf.HFGenerator`. Finished sequences leave the batch at once and
the prompt is encoded in one pass, which is where it gains on ``transformers.generate``.

``compute``: ``float32`` (default where the CPU lacks bf16 instructions), ``bfloat16``
(default on bf16 CPUs and GPUs), or ``int8_float32`` (int8 weights, fp32 activations; a
quantisation, so greedy texts can differ from the Hugging Face model's: see docs/engines.md).

Needs ``ctranslate2`` (a dependency of carealign; ``pip install ctranslate2`` where it was left
out); imported only when used.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carealign.errors import ModelError
from carealign.generate.base import ChatTemplateGenerator, Completion, GenerationConfig, ProgressCallback
from carealign.generate.conversion import cached_conversion
from carealign.hardware import resolve_dtype_name

ENGINE = "ct2"

#: Model types CTranslate2's Transformers converter handles that carealign has checked.
SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "gemma", "gemma2", "phi3"})

#: carealign dtype name -> CTranslate2 compute type.
_COMPUTE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
COMPUTE_TYPES = frozenset({"float32", "bfloat16", "float16", "int8_float32", "int8_bfloat16", "int8"})


def available() -> bool:
    """True when ``ctranslate2`` is installed."""
    return importlib.util.find_spec("ctranslate2") is not None


def supports(model_dir: str | Path) -> bool:
    """True when this engine can run the checkpoint in ``model_dir`` (by its ``model_type``)."""
    import json

    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return cfg.get("model_type") in SUPPORTED_MODEL_TYPES


def convert(model_dir: Path, out_dir: Path, compute_type: str = "float32") -> None:
    """Convert a Hugging Face checkpoint to CTranslate2, with weights stored in ``compute_type``."""
    import ctranslate2.converters

    ctranslate2.converters.TransformersConverter(str(model_dir), low_cpu_mem_usage=True).convert(
        str(out_dir), quantization=compute_type, force=True
    )


def converted_model(model_dir: str | Path, compute_type: str = "float32") -> tuple[Path, bool]:
    """The cached conversion of ``model_dir`` for ``compute_type``, and whether it was converted just now.

    Weights are stored in the compute type, so that loading is a read (about a second for
    the bundled model) and not a conversion.
    """
    return cached_conversion(ENGINE, compute_type, model_dir, lambda src, out: convert(src, out, compute_type))


#: A token prefix shared by every prompt of a call is encoded once, as CTranslate2's cached
#: ``static_prompt``, when it is at least this long (the chat template's system turn, or the
#: reminder's system prompt and in-context examples, which every reminder prompt repeats).
MIN_SHARED_PREFIX = 16


def shared_prefix_length(prompts: Sequence[Sequence[int]], minimum: int = MIN_SHARED_PREFIX) -> int:
    """Length of the token prefix every prompt shares, leaving each at least one token of its own;
    0 when it is shorter than ``minimum`` (not worth a cached state) or there are fewer than 2 prompts."""
    if len(prompts) < 2:
        return 0
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for i in range(max(n, 0)):
        t = first[i]
        if any(p[i] != t for p in prompts):
            n = i
            break
    return n if n >= minimum else 0


class CT2Generator(ChatTemplateGenerator):
    """The :class:`~carealign.generate.base.Generator` protocol on CTranslate2.

    ``batch_size`` counts sequences, as in the Hugging Face backend; CTranslate2 removes
    finished rows from the batch, so large batches cost little.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str | None = None,
        dtype: str = "auto",
        compute_type: str | None = None,
        device: str = "auto",
        batch_size: int = 64,
        threads: int = 0,
        cache_shared_prefix: bool = True,
    ) -> None:
        if not available():
            raise ModelError("the ct2 engine needs CTranslate2: pip install ctranslate2")
        import ctranslate2
        import torch
        from transformers import AutoTokenizer

        if not supports(model_dir):
            raise ModelError(f"{model_dir}: the ct2 engine does not support this model type")
        dev = device
        if dev == "auto":
            dev = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if dev.startswith("cuda:"):
            dev, index = "cuda", int(dev.split(":", 1)[1])
        else:
            index = 0
        if compute_type is None:
            compute_type = _COMPUTE[resolve_dtype_name(dtype, dev)]
        if compute_type not in COMPUTE_TYPES:
            raise ModelError(
                f"unknown CTranslate2 compute type {compute_type!r}; expected one of {sorted(COMPUTE_TYPES)}"
            )
        self.model_dir = Path(model_dir)
        self.name = name or str(model_dir)
        self.compute_type = compute_type
        self.batch_size = batch_size
        self.cache_shared_prefix = cache_shared_prefix
        self.converted_dir, self.converted_now = converted_model(model_dir, compute_type)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ModelError(
                f"model {self.name!r} has no chat template; carealign needs an instruction-tuned chat model"
            )
        from carealign.generate.hf import stop_token_ids

        self.stop_ids = stop_token_ids(self.tokenizer)
        self._engine_args: dict[str, Any] = {
            "device": dev,
            "device_index": index,
            "compute_type": compute_type,
            "intra_threads": threads or torch.get_num_threads(),
        }
        self.model = self._load()

    def _load(self) -> Any:
        import ctranslate2

        return ctranslate2.Generator(str(self.converted_dir), **self._engine_args)

    @property
    def identity(self) -> str:
        return f"{ENGINE}[{self.compute_type}]:{self.name}"

    def generate_rendered(
        self,
        texts: Sequence[str],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """Like :meth:`generate` for prompts already rendered with the chat template."""
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        k = 1 if config.greedy else config.samples
        per_batch = max(1, self.batch_size // k)
        results: list[list[Completion]] = [[] for _ in texts]
        engine = self.model if config.greedy else self._seeded(config.seed)
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            outs = self.generate_ids([ids[i] for i in idx], config, engine=engine)
            n_tok = 0
            for i, seqs in zip(idx, outs, strict=True):
                for seq, ended in seqs:
                    text = str(self.tokenizer.decode(seq, skip_special_tokens=True)).strip()
                    results[i].append(
                        Completion(text=text, n_tokens=len(seq) + (1 if ended else 0), prompt_tokens=len(ids[i]))
                    )
                n_tok += sum(c.n_tokens for c in results[i])
                if config.greedy and config.samples > 1:
                    results[i] = results[i] * config.samples
            if progress:
                progress(len(idx), n_tok)
        return results

    def _seeded(self, seed: int) -> Any:
        """An engine whose sampler starts from ``seed``.

        CTranslate2 draws from a thread-local generator seeded once, when its worker thread
        first samples, so :func:`ctranslate2.set_random_seed` only reaches an engine whose
        workers have not sampled yet: a fresh one (reloading the converted model: about a
        second for the bundled model), which makes every sampling call reproducible.
        """
        import ctranslate2

        ctranslate2.set_random_seed(seed % 2**32)  # an unsigned 32-bit seed; carealign's seeds may be larger
        return self._load()

    def generate_ids(
        self, prompts: Sequence[list[int]], config: GenerationConfig, *, engine: Any | None = None
    ) -> list[list[tuple[list[int], bool]]]:
        """New token ids for token-id prompts, in one engine call: per prompt, ``k`` pairs of
        (ids without the end-of-turn token, whether the turn ended before ``max_new_tokens``);
        ``k`` is 1 when greedy, else ``config.samples``. Sampling uses ``engine`` (default:
        a fresh one seeded with ``config.seed``)."""
        if engine is None:
            engine = self.model if config.greedy else self._seeded(config.seed)
        k = 1 if config.greedy else config.samples
        shared = shared_prefix_length(prompts) if self.cache_shared_prefix else 0
        options: dict[str, Any] = {
            "max_length": config.max_new_tokens,
            "include_prompt_in_result": False,
            "end_token": self.stop_ids,
            "max_batch_size": 0,
        }
        if shared:
            options.update(
                static_prompt=self.tokenizer.convert_ids_to_tokens(list(prompts[0][:shared])),
                cache_static_prompt=True,
            )
        tokens = [self.tokenizer.convert_ids_to_tokens(list(p[shared:])) for p in prompts for _ in range(k)]
        if config.greedy:
            options["sampling_topk"] = 1
        else:
            options.update(sampling_topk=0, sampling_topp=config.top_p, sampling_temperature=config.temperature)
        outs = engine.generate_batch(tokens, **options)
        result: list[list[tuple[list[int], bool]]] = [[] for _ in prompts]
        for row, out in enumerate(outs):
            seq = [int(t) for t in out.sequences_ids[0]]
            result[row // k].append((seq, len(seq) < config.max_new_tokens))
        return result

    def label_logprobs(
        self, conversations: Sequence[list[dict[str, str]]], labels: Sequence[str]
    ) -> list[dict[str, float] | None]:
        """Log-probability of each full label string as the start of the assistant reply
        (the :class:`~carealign.generate.base.LabelScorer` protocol, for self-judging).

        CTranslate2 scores every (conversation, label) sequence in one batched call; the sum of
        the label tokens' log-probs is returned, so multi-token labels are handled exactly.
        """
        import math

        prefixes = [self.tokenizer(self.render(c), add_special_tokens=False)["input_ids"] for c in conversations]
        label_ids = [self.tokenizer(lab, add_special_tokens=False)["input_ids"] for lab in labels]
        seqs = [self.tokenizer.convert_ids_to_tokens(p + ids) for p in prefixes for ids in label_ids]
        scored = self.model.score_batch(seqs, max_batch_size=self.batch_size) if seqs else []
        results: list[dict[str, float] | None] = []
        for c in range(len(prefixes)):
            scores: dict[str, float] = {}
            for j, lab in enumerate(labels):
                logps = scored[c * len(labels) + j].log_probs  # of tokens 2..n, each given those before it
                total = float(sum(logps[len(logps) - len(label_ids[j]) :]))
                scores[lab] = total if math.isfinite(total) else -math.inf
            results.append(scores)
        return results

    def complete_chat(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy replies to whole conversations."""
        outs = self.generate_chat(conversations, GenerationConfig(max_new_tokens=max_new_tokens))
        return [o[0].text for o in outs]
