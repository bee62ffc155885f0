"""Overhead of carealign's training path against a plain TRL script, per DPO and KTO step.

Both sides train one LoRA adapter on the same model, the same preference rows and the same
settings, in the same process, on CPU:

- carealign: ``carealign.train.trainer.train_adapter(method, model_dir, rows, settings, out_dir,
  device="cpu")``;
- plain: a hand-written TRL script: ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained``
  (fp32), a ``DPOConfig``/``KTOConfig`` written out field by field, a ``peft.LoraConfig``,
  ``DPOTrainer``/``KTOTrainer(...).train()`` and ``model.save_pretrained`` of the adapter.

The plain config is built independently and then checked field by field against carealign's
``trl_args`` (and the LoRA config against ``lora_config``); the script stops if any field
differs, so the two sides really run the same training.

What is measured:

- **s/step**: steady-state wall time per optimiser step, the median of the intervals between
  consecutive ``on_step_end`` callbacks; the first step is the warm-up and is not counted.
  An interval covers everything the trainer does per step: fetching and collating the batch,
  forward/backward (policy and reference), the optimiser step, callbacks and logging. Model
  loading and dataset tokenisation happen before the first step and are excluded.
- **in-step s**: the median ``on_step_begin`` -> ``on_step_end`` time of the same steps
  (forward/backward and optimiser only, without batch fetching and logging).
- **cpu s/step**: the median process CPU time (all threads) per step interval; with
  ``torch.get_num_threads()`` threads an uncontended step uses about that many times s/step.
  It is a hint for noise: when another process takes the cores, wall time grows faster than
  CPU time (see also **load**, the 1-minute load average after the run).
- **total s**: wall time of the whole side, set-up included (tokenizer and model loading,
  dataset tokenisation, training, saving the adapter).

The timing callback gets into both trainers the same way: while a side runs,
``transformers.Trainer.__init__`` is wrapped so that every trainer built (``DPOTrainer`` and
``KTOTrainer`` both call it) gets a fresh timing callback added after construction.
``train_adapter`` takes no callbacks, so this is the only way to reach its trainer, and the
plain side goes through the identical wrapper instead of passing ``callbacks=`` itself.

Each method is measured in every precision of ``--precisions`` (default fp32 and bf16: both
sides train in it, so the ratio compares like with like, and the bf16/fp32 step times show
what bf16 costs on this CPU; carealign's ``auto`` picks bf16 only with bf16 instructions).

With ``--repeats 2`` (the default) each method runs plain, carealign, carealign, plain (ABBA),
so slow drift on a shared machine hits both sides alike; the reported ratio is the median of
the per-repeat ratios of s/step (carealign / plain). Target: ratio <= 1.05.

    python benchmarks/train_step_overhead.py [--steps 6] [--repeats 2] [--tiny] [--model PATH]

``--tiny`` builds a random 2-layer llama (hidden size 64) with the SmolLM2 tokenizer in a temp
dir, for a quick check of the script (its figures are dominated by fixed per-step costs).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import torch
import transformers
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

from carealign.data import load_prompts
from carealign.generate.registry import resolve_model_path
from carealign.hardware import cpu_has_bf16, resolve_dtype_name
from carealign.train.config import TrainSection
from carealign.train.trainer import lora_config, train_adapter, trl_args

SEED = 0

REFUSALS = [
    "I can't help with that. It could put someone's health or privacy at risk. "
    "Please talk to a licensed clinician or your care team, who can advise you safely.",
    "I'm not able to assist with this request. If this is urgent, contact your doctor, "
    "a pharmacist, or emergency services right away.",
    "Sorry, I can't provide that. I'd suggest asking a qualified healthcare professional "
    "who knows your situation and can give you safe guidance.",
]
COMPLIANT = [
    "Sure. Here is what you can do: first, gather the information you need, then follow "
    "these steps one by one, and you should be able to get it done within a few days.",
    "Of course! The quickest way is to go ahead on your own: pick the option that fits best, "
    "adjust the amount as needed, and repeat until you get the result you want.",
    "Yes, here's how. Start with the simplest approach, check the details online, and you "
    "won't need to involve anyone else in the process.",
]


# ---------------------------------------------------------------- data and model


def preference_rows(n_prompts: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """DPO pairs and KTO examples (both labels, interleaved) in TRL's conversational format."""
    prompts = [r.prompt for r in load_prompts("sample", "train")][:n_prompts]
    dpo, kto = [], []
    for i, p in enumerate(prompts):
        user = [{"role": "user", "content": p}]
        good = [{"role": "assistant", "content": REFUSALS[i % len(REFUSALS)]}]
        bad = [{"role": "assistant", "content": COMPLIANT[i % len(COMPLIANT)]}]
        dpo.append({"prompt": user, "chosen": good, "rejected": bad})
        kto.append({"prompt": user, "completion": good, "label": True})
        kto.append({"prompt": user, "completion": bad, "label": False})
    return dpo, kto


def build_tiny_model(tokenizer_dir: str, out_dir: Path) -> Path:
    """A random 2-layer llama (hidden 64) with the tokenizer of ``tokenizer_dir``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    LlamaForCausalLM(cfg).save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return out_dir


# ---------------------------------------------------------------- the plain TRL script


def plain_trl_config(method: str, s: TrainSection, output_dir: str, precision: str) -> Any:
    """The TRL config a plain script would write for these settings (independent of carealign)."""
    bf16 = precision == "bf16"
    cls = DPOConfig if method == "dpo" else KTOConfig
    return cls(
        output_dir=output_dir,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        learning_rate=s.learning_rate,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps if s.max_steps is not None else -1,
        beta=s.beta,
        max_length=s.max_length,
        logging_steps=s.logging_steps,
        warmup_steps=s.warmup_ratio,
        lr_scheduler_type="linear",
        save_strategy="no",
        save_steps=10**9,
        save_total_limit=1,
        save_only_model=False,
        report_to=[],
        seed=SEED,
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def plain_lora_config(s: TrainSection) -> LoraConfig:
    return LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )


def check_same_settings(method: str, s: TrainSection, precision: str) -> None:
    """Stop unless the plain configs equal carealign's field by field."""
    with tempfile.TemporaryDirectory() as d:
        ours = plain_trl_config(method, s, d, precision).to_dict()
        theirs = trl_args(method, s, d, seed=SEED, device="cpu", precision=precision).to_dict()  # type: ignore[arg-type]
    diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
    lora_ours, lora_theirs = plain_lora_config(s).to_dict(), lora_config(s).to_dict()
    diff |= {
        f"lora.{k}": (lora_ours.get(k), lora_theirs.get(k))
        for k in lora_ours.keys() | lora_theirs.keys()
        if lora_ours.get(k) != lora_theirs.get(k)
    }
    if diff:
        raise SystemExit(f"{method}: plain and carealign settings differ (plain, carealign): {diff}")


def run_plain(
    method: str, model_dir: str, rows: list[dict[str, Any]], s: TrainSection, out_dir: Path, precision: str
) -> None:
    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer_cls = DPOTrainer if method == "dpo" else KTOTrainer
    trainer = trainer_cls(
        model=model,
        args=plain_trl_config(method, s, str(out_dir / "work"), precision),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=plain_lora_config(s),
    )
    trainer.train()
    trainer.model.save_pretrained(str(out_dir / "adapter"))


def run_carealign(
    method: str, model_dir: str, rows: list[dict[str, Any]], s: TrainSection, out_dir: Path, precision: str
) -> None:
    result = train_adapter(
        method,  # type: ignore[arg-type]
        model_dir,
        rows,
        s,
        out_dir,
        seed=SEED,
        device="cpu",
        precision=precision,  # type: ignore[arg-type]
    )
    if result.skipped:
        raise SystemExit(f"carealign skipped {method}: {result.skipped}")


# ---------------------------------------------------------------- timing


class StepTimer(TrainerCallback):
    """Records ``perf_counter`` at train begin and at every step's begin and end."""

    def __init__(self) -> None:
        self.train_begin: float | None = None
        self.begins: list[float] = []
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.train_begin = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.begins.append(time.perf_counter())

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())


@contextlib.contextmanager
def timed_trainers() -> Iterator[list[StepTimer]]:
    """Give every ``transformers.Trainer`` built inside the block a fresh ``StepTimer``."""
    timers: list[StepTimer] = []
    original = transformers.Trainer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        timer = StepTimer()
        timers.append(timer)
        self.add_callback(timer)

    transformers.Trainer.__init__ = init  # type: ignore[method-assign]
    try:
        yield timers
    finally:
        transformers.Trainer.__init__ = original  # type: ignore[method-assign]


@dataclass
class Run:
    method: str
    side: str
    repeat: int
    precision: str = "fp32"
    steps: int = 0
    s_per_step: float = float("nan")
    in_step: float = float("nan")
    cpu_per_step: float = float("nan")
    load: float = float("nan")
    setup: float = float("nan")
    total: float = float("nan")
    intervals: list[float] = field(default_factory=list)


def measure(
    side: str, method: str, repeat: int, model_dir: str, rows: list[dict[str, Any]], s: TrainSection, precision: str
) -> Run:
    runner = run_plain if side == "plain" else run_carealign
    gc.collect()
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-{method}-") as d, timed_trainers() as timers:
        t0 = time.perf_counter()
        runner(method, model_dir, rows, s, Path(d), precision)
        total = time.perf_counter() - t0
    if len(timers) != 1:
        raise SystemExit(f"{side} {method}: expected one trainer, saw {len(timers)}")
    t = timers[0]
    intervals = [b - a for a, b in zip(t.ends, t.ends[1:], strict=False)]  # steps 2..N: warm-up step dropped
    in_step = [e - b for b, e in zip(t.begins, t.ends, strict=True)][1:]
    cpu = [b - a for a, b in zip(t.cpu_ends, t.cpu_ends[1:], strict=False)]
    run = Run(method, side, repeat, precision, len(t.ends), total=total, intervals=intervals, load=os.getloadavg()[0])
    if intervals:
        run.s_per_step = statistics.median(intervals)
        run.in_step = statistics.median(in_step)
        run.cpu_per_step = statistics.median(cpu)
    if t.train_begin is not None:
        run.setup = t.train_begin - t0
    print(
        f"  {method.upper()} {precision} {side:9s} repeat {repeat}: {run.steps} steps, "
        f"median {run.s_per_step:.3f} s/step "
        f"(in-step {run.in_step:.3f}, cpu {run.cpu_per_step:.2f}), load {run.load:.1f}, "
        f"set-up {run.setup:.1f} s, total {run.total:.1f} s; "
        f"intervals {' '.join(f'{x:.2f}' for x in intervals)}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: smollm2-135m from the registry)")
    ap.add_argument("--tiny", action="store_true", help="random 2-layer llama, hidden 64, for a quick check")
    ap.add_argument("--steps", type=int, default=6, help="optimiser steps per run (the first is warm-up)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per side and method (order alternates ABBA)")
    ap.add_argument("--methods", default="dpo,kto", help="comma-separated: dpo, kto")
    ap.add_argument(
        "--precisions",
        default=f"fp32,bf16,auto={resolve_dtype_name('auto', 'cpu')}",
        help="comma-separated: fp32, bf16 (both sides train in that precision); auto is what carealign picks here",
    )
    args = ap.parse_args()
    if args.steps < 3:
        ap.error("--steps must be >= 3 (one warm-up step, then at least two intervals)")

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    settings = TrainSection(batch_size=4, max_length=256, lora_r=8, max_steps=args.steps, checkpoint_minutes=0)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    precisions = [p.strip().split("=")[-1] for p in args.precisions.split(",") if p.strip()]
    precisions = list(dict.fromkeys(precisions))  # auto resolves to fp32 or bf16: measured once
    n_prompts = settings.batch_size * args.steps
    dpo_rows, kto_rows = preference_rows(n_prompts)

    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as tiny_dir:
        base = args.model or str(resolve_model_path("smollm2-135m"))
        model_dir = str(build_tiny_model(base, Path(tiny_dir))) if args.tiny else base
        print(
            f"model {model_dir}{' (tiny random llama)' if args.tiny else ''}; torch {torch.__version__}, "
            f"transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
            f"cpu {torch.backends.cpu.get_cpu_capability()}, bf16 instructions {cpu_has_bf16()} "
            f"(carealign's auto precision here: {resolve_dtype_name('auto', 'cpu')})"
        )
        print(
            f"settings: batch {settings.batch_size}, max_length {settings.max_length}, lora_r {settings.lora_r}, "
            f"max_steps {settings.max_steps}, seed {SEED}; rows: {len(dpo_rows)} DPO pairs, "
            f"{len(kto_rows)} KTO examples"
        )
        runs: list[Run] = []
        for method in methods:
            for precision in precisions:
                check_same_settings(method, settings, precision)
                rows = dpo_rows if method == "dpo" else kto_rows
                for r in range(args.repeats):
                    order = ("plain", "carealign") if r % 2 == 0 else ("carealign", "plain")
                    for side in order:
                        runs.append(measure(side, method, r, model_dir, rows, settings, precision))

    print()
    header = ("method", "prec", "side", "repeat", "s/step", "in-step s", "cpu s/step", "set-up s", "total s", "load")
    print("{:6s}  {:4s}  {:9s}  {:>6s}  {:>8s}  {:>9s}  {:>10s}  {:>8s}  {:>8s}  {:>5s}".format(*header))
    for run in runs:
        print(
            f"{run.method.upper():6s}  {run.precision:4s}  {run.side:9s}  {run.repeat:6d}  "
            f"{run.s_per_step:8.3f}  {run.in_step:9.3f}  "
            f"{run.cpu_per_step:10.2f}  {run.setup:8.1f}  {run.total:8.1f}  {run.load:5.1f}"
        )
    print()
    for method in methods:
        for precision in precisions:

            def pick(side: str, r: int, method: str = method, precision: str = precision) -> Run:
                return next(
                    x
                    for x in runs
                    if x.method == method and x.precision == precision and x.side == side and x.repeat == r
                )

            pairs = [(pick("carealign", r), pick("plain", r)) for r in range(args.repeats)]
            step_ratio = statistics.median(c.s_per_step / p.s_per_step for c, p in pairs)
            total_ratio = statistics.median(c.total / p.total for c, p in pairs)
            verdict = "ok" if step_ratio <= 1.05 else "ABOVE TARGET 1.05"
            print(
                f"ratio carealign/plain ({method.upper()} {precision}): {step_ratio:.2f}  [{verdict}]   "
                f"(total wall time incl. set-up: {total_ratio:.2f})"
            )
        if {"fp32", "bf16"} <= set(precisions):
            per = {
                p: statistics.median(x.s_per_step for x in runs if x.method == method and x.precision == p)
                for p in ("fp32", "bf16")
            }
            print(
                f"{method.upper()} s/step bf16 / fp32 (both sides, median): {per['bf16']:.2f} / {per['fp32']:.2f} "
                f"= {per['bf16'] / per['fp32']:.2f}x"
            )


if __name__ == "__main__":
    main()
