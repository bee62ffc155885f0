"""The alignment loop: cycles of generate, judge, build preferences, train DPO and KTO, validate, promote.

The run directory's layout and records are :mod:`carealign.rundir`'s; a cycle's stages are the
functions listed in :data:`carealign.align.stages.STAGES`, each run (or skipped when the manifest
says it is done) by :meth:`AlignmentRun.run_stage`. Every stage writes its artifacts atomically
before the next starts, so ``--resume`` continues at the first unfinished stage, and a training
stage resumes inside itself from its last Trainer checkpoint.

Cycle t+1 starts from cycle t's promoted policy, a full model (the LoRA adapter merged into
the policy it was trained on). The reference model of DPO and KTO is that starting policy
(``reference: previous``) or the base model pi_0 (``reference: base``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from carealign.align.config import AlignConfig, default_config_yaml, load_config
from carealign.data import load_prompts
from carealign.errors import CarealignError, ConfigError
from carealign.generate.hf import HFGenerator
from carealign.generate.registry import resolve_model_path
from carealign.io import read_jsonl, write_text_atomic
from carealign.judge import Judge, make_judge
from carealign.judge.registry import check_judge_spec, is_self_judge
from carealign.manifest import library_versions, sha256_json
from carealign.rundir import (
    CANDIDATES,
    AlignManifest,
    CycleLayout,
    CycleRecord,
    RunLayout,
    SelectionRecord,
    load_align_manifest,
    promoted_policy,
    read_selection,
)
from carealign.score import SafetyPolicy, load_policy

if TYPE_CHECKING:
    from carealign.align.stages import Stage
    from carealign.review.feedback import HumanFeedback

__all__ = ["CANDIDATES", "AlignResult", "AlignmentRun", "CycleContext", "promoted_policy"]


@dataclass
class AlignResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    cycles_done: int
    final_policy: str
    promotions: list[str] = field(default_factory=list)
    stopped: str | None = None


class CycleContext:
    """What the stages of one cycle share: the run, the cycle's paths, and its starting policy.

    The policy's generator is loaded on first use and released before training, so generation
    and training never hold two copies of the model.
    """

    def __init__(self, run: AlignmentRun, number: int) -> None:
        self.run = run
        self.number = number
        self.layout: CycleLayout = run.layout.cycle(number)
        self.policy_name = run.manifest.current_policy or run.config.policy_model
        self.policy_path = run.current_policy_path()
        self._generator: HFGenerator | None = None
        self._feedback_loaded = False
        self._feedback: HumanFeedback | None = None
        self._samples: list[dict[str, Any]] | None = None
        self.human_overrides = 0

    @property
    def config(self) -> AlignConfig:
        return self.run.config

    @property
    def console(self) -> Console:
        return self.run.console

    def generator(self) -> HFGenerator:
        """The starting policy's generator (loaded once)."""
        if self._generator is None:
            self._generator = self.run.load_generator(self.policy_path, self.policy_name)
        return self._generator

    def train_base_path(self) -> str:
        """Where the candidates start: the demonstration stage's policy when it ran, else the starting policy."""
        sft = self.layout.sft_policy
        return str(sft) if (sft / "config.json").exists() else self.policy_path

    def release_generator(self) -> None:
        self._generator = None

    def judge(self, spec: str) -> Judge:
        """A judge; self-judges bind to the starting policy."""
        return self.run.judge(spec, self.generator() if is_self_judge(spec) else None)

    @property
    def feedback(self) -> HumanFeedback | None:
        """The review app's feedback on this cycle's training prompts (None when the config names no source)."""
        if not self._feedback_loaded:
            self._feedback_loaded = True
            hf = self.config.human_feedback
            if hf.sources:
                from carealign.review import load_human_feedback

                rows = read_jsonl(self.layout.samples.responses)
                fb = load_human_feedback(hf.sources, group=hf.group)
                self._feedback = fb.for_prompts(
                    prompt_ids={r["prompt_id"] for r in rows}, prompts={r["prompt"] for r in rows}
                )
        return self._feedback

    def samples(self) -> list[dict[str, Any]]:
        """The judged samples, with human labels overriding the judge where reviewers gave them."""
        if self._samples is None:
            rows = read_jsonl(self.layout.samples.responses)
            fb = self.feedback
            if fb is not None:
                policy = None if self.config.human_feedback.group_policy else self.run.policy
                rows, self.human_overrides = fb.apply(rows, policy=policy)
            self._samples = rows
        return self._samples

    @property
    def kto_threshold(self) -> float:
        threshold = self.config.preferences.kto_threshold
        return self.run.policy.desirable_threshold if threshold is None else threshold

    def eval_config(self, name: str, *, train: bool) -> Any:
        """The evaluation settings of this cycle's samples (``train``) or of a validation."""
        from carealign.evaluate import EvalConfig

        c = self.config
        prompts = c.train_prompts if train else c.validation_prompts
        g = c.generation
        return EvalConfig(
            model=name,
            prompts=prompts.source,
            split=prompts.split,
            limit=prompts.limit,
            subset_seed=prompts.subset_seed,
            judge=c.judge if train else c.validator,
            samples=g.samples if train else 1,
            temperature=g.temperature if train else 0.0,
            top_p=g.top_p if train else 1.0,
            max_new_tokens=g.max_new_tokens if train else g.validation_max_new_tokens,
            seed=c.seed + 1000 * self.number,
            policy=c.safety_policy,
            batch_size=g.batch_size,
            dtype=c.dtype,
            device=c.device,
            n_resamples=1000,
        )


class AlignmentRun:
    """One alignment run in a run directory; :meth:`run` executes (or resumes) it."""

    def __init__(self, config: AlignConfig, run_dir: Path, manifest: AlignManifest, console: Console | None = None):
        self.config = config
        self.run_dir = run_dir
        self.layout = RunLayout(run_dir)
        self.manifest = manifest
        self.console = console or Console(stderr=True)
        self.policy: SafetyPolicy = load_policy(config.safety_policy)
        self._judges: dict[str, Judge] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def start(
        cls,
        config: AlignConfig,
        run_dir: str | Path | None = None,
        *,
        overwrite: bool = False,
        console: Console | None = None,
    ) -> AlignmentRun:
        """Create a run directory for ``config`` (or resume it when it holds the same config)."""
        run = Path(run_dir or config.output_dir)
        layout = RunLayout(run)
        for spec in (config.judge, config.validator, config.gate.reference):
            if spec is not None:
                check_judge_spec(spec)
        cfg = config.model_dump(mode="json")
        existing = AlignManifest.read(layout.manifest) if layout.manifest.exists() and not overwrite else None
        if existing is not None:
            if existing.config_hash != sha256_json(cfg):
                raise ConfigError(
                    f"{run} holds a run with another config; resume it with carealign align --resume {run}, "
                    "or choose another output_dir (or --overwrite)"
                )
            return cls(config, run, existing, console)
        if overwrite and run.exists():
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(layout.config, default_config_yaml(config))
        tp, vp = config.train_prompts, config.validation_prompts
        train = load_prompts(tp.source, tp.split, limit=tp.limit, subset_seed=tp.subset_seed)
        val = load_prompts(vp.source, vp.split, limit=vp.limit, subset_seed=vp.subset_seed)
        overlap = {r.group for r in train} & {r.group for r in val}
        if overlap and config.train_prompts.source == config.validation_prompts.source:
            raise ConfigError(
                f"{len(overlap)} base prompt(s) are in both the train and validation prompts "
                f"(e.g. {sorted(overlap)[0]}); "
                "rewrites of one base prompt must not straddle splits"
            )
        manifest = AlignManifest(
            config=cfg,
            config_hash=sha256_json(cfg),
            versions=library_versions(),
            inputs={
                "train_prompts": {"n": len(train), "ids_hash": sha256_json([r.id for r in train])},
                "validation_prompts": {"n": len(val), "ids_hash": sha256_json([r.id for r in val])},
            },
            base_policy=resolve_model_path(config.policy_model),
            current_policy=None,
            policies={"0": config.policy_model},
            cycles={},
        )
        manifest.save(layout.manifest)
        return cls(config, run, manifest, console)

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None) -> AlignmentRun:
        """Open an existing run directory; :meth:`run` continues at the first unfinished stage."""
        run = Path(run_dir)
        try:
            manifest = load_align_manifest(run)
        except CarealignError:
            raise CarealignError(
                f"{run}: no alignment run to resume (manifest.json missing or of another kind)"
            ) from None
        config = load_config(RunLayout(run).config)
        return cls(config, run, manifest, console)

    # ------------------------------------------------------------------ shared services

    def current_policy_path(self) -> str:
        """Where the policy the next cycle starts from is (the base model until a promotion)."""
        current = self.manifest.current_policy
        return str(self.layout.resolve(current)) if current else self.manifest.base_policy

    def training_judge(self) -> str:
        """The training judge's spec: the configured one, or the gate's reference once the gate switched."""
        return self.manifest.training_judge or self.config.judge

    def judge(self, spec: str, policy_gen: Any | None) -> Judge:
        """Self-judges bind to the model being judged; external judges are loaded once."""
        if is_self_judge(spec):
            return make_judge(spec, policy=policy_gen)
        if spec not in self._judges:
            self._judges[spec] = make_judge(spec, dtype=self.config.dtype, device=self.config.device)
        return self._judges[spec]

    def load_generator(self, path: str, name: str, adapter: Path | None = None) -> HFGenerator:
        """A generator for a policy, with a LoRA adapter merged in when given (a candidate)."""
        gen = HFGenerator.from_pretrained(
            path,
            name=name,
            dtype=self.config.dtype,
            device=self.config.device,
            batch_size=self.config.generation.batch_size,
        )
        if adapter is not None:
            from peft import PeftModel

            gen.model = PeftModel.from_pretrained(gen.model, str(adapter)).merge_and_unload()
            gen.model.eval()
        return gen

    # ------------------------------------------------------------------ the loop

    def run(self) -> AlignResult:
        """Run every unfinished stage of every cycle; stop early when nothing is promoted."""
        promotions: list[str] = []
        cycles_done = 0
        stopped = self.manifest.stopped
        for cycle in range(1, self.config.cycles + 1):
            if stopped:
                break
            record = self.run_cycle(cycle)
            cycles_done = cycle
            promotions.append(record.promoted)
            if record.promoted == "current":
                stopped = f"cycle {cycle}: no candidate beat the current policy ({record.reason})"
                self.manifest.stopped = stopped
                self.manifest.save()
        self.manifest.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest.save()
        final = self.manifest.current_policy or self.config.policy_model
        return AlignResult(self.run_dir, cycles_done, final, promotions, stopped)

    def run_cycle(self, cycle: int) -> SelectionRecord:
        """Run (or finish) one cycle's stages in order; return its selection record."""
        from carealign.align.stages import STAGES

        layout = self.layout.cycle(cycle)
        layout.root.mkdir(parents=True, exist_ok=True)
        if self.manifest.stage_done(layout.stage("select")):
            return read_selection(layout.selection)
        ctx = CycleContext(self, cycle)
        self.console.rule(f"[bold]cycle {cycle}[/] from {ctx.policy_name}")
        self.manifest.cycles[str(cycle)] = CycleRecord(policy=ctx.policy_name)
        self.manifest.save()
        for stage in STAGES:
            self.run_stage(ctx, stage)
        return read_selection(layout.selection)

    def run_stage(self, ctx: CycleContext, stage: Stage) -> None:
        """Run one stage unless the manifest says it is done or the config leaves it out; mark it done."""
        key = ctx.layout.stage(stage.name)
        if self.manifest.stage_done(key) or not stage.enabled(ctx):
            return
        info = stage.run(ctx) or {}
        self.manifest.mark(key, "done", **info)
