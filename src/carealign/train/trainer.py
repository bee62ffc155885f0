"""LoRA preference training with TRL: a DPO or a KTO adapter on top of the current policy.

The policy is loaded in fp32 and trained with PEFT LoRA adapters; on CPU TRL runs with
``use_cpu=True`` and bf16 autocast, on GPU in bf16. The reference model is either the
policy the cycle starts from (``reference: previous``; TRL computes it by disabling the
adapter, so no second copy is held) or the base model pi_0 (``reference: base``; loaded
separately). Training logs (loss, reward margins and accuracies, KL) are written to
``log.jsonl`` beside the adapter, and to MLflow when asked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from carealign.errors import CarealignError
from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.preferences import DPO_COLUMNS, KTO_COLUMNS, trl_columns
from carealign.train.config import DPOSection, KTOSection, LoRASection, TrainSection

Method = Literal["sft", "dpo", "kto"]

#: The columns TRL's trainers read, by method (conversational rows).
SFT_COLUMNS = ("prompt", "completion")


@dataclass
class TrainResult:
    """Where the adapter went and what the run logged."""

    method: Method
    adapter_dir: Path | None
    examples: int
    steps: int
    seconds: float
    final_log: dict[str, Any]
    skipped: str | None = None
    resumed_from_step: int | None = None


def lora_config(settings: LoRASection) -> Any:
    """The PEFT LoRA config of ``settings``."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )


def trl_args(
    method: Method,
    settings: LoRASection,
    output_dir: str | Path,
    *,
    seed: int = 0,
    device: str = "auto",
    report_to: list[str] | None = None,
) -> Any:
    """The TRL ``SFTConfig``/``DPOConfig``/``KTOConfig`` for ``settings`` (also used by the benchmark)."""
    from trl import DPOConfig, KTOConfig, SFTConfig

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    common: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps if settings.max_steps is not None else -1,
        "max_length": settings.max_length,
        "logging_steps": settings.logging_steps,
        "warmup_steps": settings.warmup_ratio,  # a float < 1 is a ratio of the total steps
        "lr_scheduler_type": "linear",
        # checkpoints are saved by time (CheckpointEvery), not by step count
        "save_strategy": "steps" if settings.checkpoint_minutes > 0 else "no",
        "save_steps": 10**9,
        "save_total_limit": 1,
        "save_only_model": False,
        "report_to": report_to or [],
        "seed": seed,
        "use_cpu": on_cpu,
        "bf16": True if not on_cpu else torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX"),
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }
    if method == "sft":
        return SFTConfig(**common, completion_only_loss=True)
    if not isinstance(settings, TrainSection):
        raise CarealignError(f"{method} needs preference-training settings (beta, reference), got {type(settings)}")
    common.update(beta=settings.beta, precompute_ref_log_probs=settings.precompute_ref_log_probs)
    if method == "dpo":
        loss = settings.loss_type if isinstance(settings, DPOSection) else "sigmoid"
        return DPOConfig(**common, loss_type=[loss] if isinstance(loss, str) else list(loss))
    weights: dict[str, Any] = (
        {"desirable_weight": settings.desirable_weight, "undesirable_weight": settings.undesirable_weight}
        if isinstance(settings, KTOSection)
        else {}
    )
    return KTOConfig(**common, **weights)


class _CheckpointEvery:
    """A transformers callback asking the Trainer to save a checkpoint once ``minutes`` have passed."""

    def __new__(cls, minutes: float) -> Any:
        from transformers import TrainerCallback

        class CheckpointEveryCallback(TrainerCallback):
            def __init__(self) -> None:
                self.last = time.monotonic()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                if minutes > 0 and time.monotonic() - self.last >= minutes * 60:
                    control.should_save = True
                    self.last = time.monotonic()
                return control

        return CheckpointEveryCallback()


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete Trainer checkpoint in ``checkpoints`` (``checkpoint-STEP``), or None."""
    if not checkpoints.is_dir():
        return None
    done = [
        p
        for p in checkpoints.glob("checkpoint-*")
        if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(done, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


class _JsonlLog:
    """A transformers callback writing every log record to a JSONL file."""

    def __new__(cls, path: Path) -> Any:
        from transformers import TrainerCallback

        class JsonlLogCallback(TrainerCallback):
            def on_log(
                self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
            ) -> None:
                if logs:
                    with open(path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        return JsonlLogCallback()


def train_adapter(
    method: Method,
    policy_path: str | Path,
    rows: list[dict[str, Any]],
    settings: LoRASection,
    out_dir: str | Path,
    *,
    reference_path: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    tracking: str = "none",
) -> TrainResult:
    """Train one LoRA adapter with TRL and save it to ``out_dir/adapter`` atomically.

    ``rows`` are demonstrations (``prompt, completion``; ``sft``), DPO pairs (``prompt, chosen,
    rejected``) or KTO examples (``prompt, completion, label``); extra metadata columns are dropped
    before training. With ``reference_path`` the reference model is loaded from there; otherwise
    the policy with its adapter disabled serves as the reference (DPO, KTO).

    Trainer checkpoints are saved to ``out_dir/checkpoints`` every ``settings.checkpoint_minutes``;
    when one is there (a crashed run), training resumes from it.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer, KTOTrainer, SFTTrainer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = {"sft": SFT_COLUMNS, "dpo": DPO_COLUMNS, "kto": KTO_COLUMNS}[method]
    data = trl_columns(rows, columns)
    if method == "kto":
        labels = {bool(r["label"]) for r in data}
        if labels != {True, False}:
            kind = "desirable" if True in labels else "undesirable"
            return TrainResult(method, None, len(data), 0, 0.0, {}, skipped=f"only {kind} KTO examples")
    if len(data) < settings.batch_size:
        return TrainResult(
            method, None, len(data), 0, 0.0, {}, skipped=f"{len(data)} examples < batch size {settings.batch_size}"
        )
    report_to: list[str] = []
    if tracking == "mlflow":
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise CarealignError(
                "tracking: mlflow needs the mlflow package (pip install 'carealign[mlflow]')"
            ) from None
        report_to = ["mlflow"]

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(policy_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(policy_path), dtype=torch.float32)
    ref_model = None
    if reference_path is not None and Path(str(reference_path)).resolve() != Path(str(policy_path)).resolve():
        ref_model = AutoModelForCausalLM.from_pretrained(str(reference_path), dtype=torch.float32)
    log_path = out / "log.jsonl"
    checkpoints = out / "checkpoints"
    resume = last_checkpoint(checkpoints)
    resumed_from = int(resume.name.removeprefix("checkpoint-")) if resume is not None else None
    if resume is None:
        log_path.unlink(missing_ok=True)
        shutil.rmtree(checkpoints, ignore_errors=True)
    else:  # keep the log of the steps before the checkpoint, drop the ones after it
        kept = [r for r in _read_log(log_path) if int(r.get("step", 0)) <= (resumed_from or 0)]
        write_jsonl_atomic(log_path, kept)
    work = Path(tempfile.mkdtemp(prefix=f".{method}-work-", dir=out))
    try:
        args = trl_args(method, settings, checkpoints, seed=seed, device=device, report_to=report_to)
        kwargs: dict[str, Any] = {} if method == "sft" else {"ref_model": ref_model}
        trainer_cls: Any = {"sft": SFTTrainer, "dpo": DPOTrainer, "kto": KTOTrainer}[method]
        trainer = trainer_cls(
            model=model,
            **kwargs,
            args=args,
            train_dataset=Dataset.from_list(data),
            processing_class=tokenizer,
            peft_config=lora_config(settings),
            callbacks=[_JsonlLog(log_path), _CheckpointEvery(settings.checkpoint_minutes)],
        )
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
        seconds = time.perf_counter() - t0
        tmp_adapter = work / "adapter"
        trainer.model.save_pretrained(str(tmp_adapter))  # type: ignore[union-attr,operator]
        final = out / "adapter"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp_adapter, final)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the adapter is saved: the checkpoints served their turn
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return TrainResult(
        method=method,
        adapter_dir=final,
        examples=len(data),
        steps=int(result.global_step),
        seconds=seconds,
        final_log={"train_loss": result.training_loss, **(logs[-1] if logs else {})},
        resumed_from_step=resumed_from,
    )


def _read_log(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path, tolerate_torn_tail=True) if path.exists() else []


def merge_adapter(
    policy_path: str | Path, adapter_dir: str | Path, out_dir: str | Path, *, dtype: str = "bf16"
) -> Path:
    """Merge a LoRA adapter into its policy and save the full model atomically (the next policy)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = torch.bfloat16 if dtype in ("bf16", "bfloat16") else torch.float32
    base = AutoModelForCausalLM.from_pretrained(str(policy_path), dtype=torch_dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(policy_path))
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
