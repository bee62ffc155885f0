"""The alignment loop: cycles of generate, judge, build preferences, train DPO and KTO, validate, promote.

Run directory layout (every file is written atomically before the next stage starts)::

    RUN/
      config.yaml                  the validated config
      manifest.json                config hash, input hashes, versions, judges, stage states, policies
      cycle_1/
        samples/                   `carealign eval` output on the train prompts (k sampled responses,
                                   judged by the training judge): responses.jsonl, metrics.json
        gate.json                  the reliability gate: training judge vs reference judge on a slice
                                   of the samples, and whether the run switched to the reference
        reminder.jsonl             reminder-conditioned responses for all-bad prompts, judged
        dpo.jsonl, kto.jsonl       preference data in TRL's conversational format (+ metadata columns)
        preferences.json           how many prompts yielded usable pairs, and why not
        dpo/adapter/, dpo/log.jsonl, dpo/train.json    the DPO LoRA adapter and its training log
        kto/adapter/, kto/log.jsonl, kto/train.json    the same for KTO
        validation/{current,dpo,kto}/                 `carealign eval` output on the validation prompts
        selection.json             which policy was promoted, why, with the paired comparisons
        policy/                    the promoted policy (adapter merged into the current policy)
      cycle_2/ ...

Cycle t+1 starts from cycle t's promoted policy, a full model (the LoRA adapter merged into
the policy it was trained on). The reference model of DPO and KTO is that starting policy
(``reference: previous``) or the base model pi_0 (``reference: base``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from carealign.align.config import AlignConfig, default_config_yaml, load_config
from carealign.data import load_prompts
from carealign.errors import CarealignError, ConfigError
from carealign.evaluate import EvalConfig, evaluate, judge_rows, strip_judgements
from carealign.generate import GenerationConfig
from carealign.generate.hf import HFGenerator
from carealign.generate.registry import resolve_model_path
from carealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic
from carealign.judge import Judge, make_judge
from carealign.judge.registry import check_judge_spec
from carealign.manifest import Manifest, sha256_json
from carealign.preferences import all_bad_prompts, all_good_prompts, build_preferences
from carealign.progress import stage_progress
from carealign.score import load_policy
from carealign.select import SelectionRule, select
from carealign.train import merge_adapter, train_adapter

CANDIDATES = ("dpo", "kto")


@dataclass
class AlignResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    cycles_done: int
    final_policy: str
    promotions: list[str] = field(default_factory=list)
    stopped: str | None = None


def promoted_policy(run_dir: str | Path) -> str:
    """The model spec/path of a run's latest promoted policy (the base model if none was promoted)."""
    m = Manifest.load(Path(run_dir) / "manifest.json")
    if m is None or m.data.get("kind") != "align":
        raise CarealignError(f"{run_dir}: not an alignment run directory (no align manifest.json)")
    current = m.data.get("current_policy") or m.data["config"]["policy_model"]
    path = Path(run_dir) / current
    return str(path) if path.exists() else current


class AlignmentRun:
    """One alignment run in a run directory; :meth:`run` executes (or resumes) it."""

    def __init__(self, config: AlignConfig, run_dir: Path, manifest: Manifest, console: Console | None = None):
        self.config = config
        self.run_dir = run_dir
        self.manifest = manifest
        self.console = console or Console(stderr=True)
        self.policy = load_policy(config.safety_policy)
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
        for spec in (config.judge, config.validator, config.gate.reference):
            if spec is not None:
                check_judge_spec(spec)
        cfg = config.model_dump(mode="json")
        existing = Manifest.load(run / "manifest.json")
        if existing is not None and not overwrite:
            if existing.data.get("config_hash") != sha256_json(cfg):
                raise ConfigError(
                    f"{run} holds a run with another config; resume it with carealign align --resume {run}, "
                    "or choose another output_dir (or --overwrite)"
                )
            return cls(config, run, existing, console)
        if overwrite and run.exists():
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / "config.yaml", default_config_yaml(config))
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
        manifest = Manifest.create(
            run / "manifest.json",
            kind="align",
            config=cfg,
            inputs={
                "train_prompts": {"n": len(train), "ids_hash": sha256_json([r.id for r in train])},
                "validation_prompts": {"n": len(val), "ids_hash": sha256_json([r.id for r in val])},
            },
            base_policy=resolve_model_path(config.policy_model),
            current_policy=None,
            policies={"0": config.policy_model},
            cycles={},
        )
        return cls(config, run, manifest, console)

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None) -> AlignmentRun:
        """Open an existing run directory; :meth:`run` continues at the first unfinished stage."""
        run = Path(run_dir)
        manifest = Manifest.load(run / "manifest.json")
        if manifest is None or manifest.data.get("kind") != "align":
            raise CarealignError(f"{run}: no alignment run to resume (manifest.json missing or of another kind)")
        config = load_config(run / "config.yaml")
        return cls(config, run, manifest, console)

    # ------------------------------------------------------------------ helpers

    def _stage(self, cycle: int, name: str) -> str:
        return f"cycle_{cycle}/{name}"

    def _done(self, cycle: int, name: str) -> bool:
        return self.manifest.stage_done(self._stage(cycle, name))

    def _mark(self, cycle: int, name: str, **info: Any) -> None:
        self.manifest.mark(self._stage(cycle, name), "done", **info)

    def _current_policy_path(self) -> str:
        current = self.manifest.data.get("current_policy")
        return str(self.run_dir / current) if current else self.manifest.data["base_policy"]

    def _human_feedback(self, samples: list[dict[str, Any]]) -> Any:
        """The review app's feedback on this run's training prompts (None when the config names no source)."""
        hf = self.config.human_feedback
        if not hf.sources:
            return None
        from carealign.review import load_human_feedback

        fb = load_human_feedback(hf.sources, group=hf.group)
        return fb.for_prompts(prompt_ids={r["prompt_id"] for r in samples}, prompts={r["prompt"] for r in samples})

    def _training_judge(self) -> str:
        """The training judge's spec: the configured one, or the gate's reference once the gate switched."""
        return self.manifest.data.get("training_judge") or self.config.judge

    def _judge(self, spec: str, policy_gen: Any) -> Judge:
        """Self-judges bind to the model being judged; external judges are loaded once."""
        if spec in ("llm", "self", "llm:self"):
            return make_judge(spec, policy=policy_gen)
        if spec not in self._judges:
            self._judges[spec] = make_judge(spec, dtype=self.config.dtype, device=self.config.device)
        return self._judges[spec]

    def _load(self, path: str, name: str, adapter: Path | None = None) -> HFGenerator:
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

    def _eval_config(self, name: str, prompts: Any, *, train: bool, cycle: int) -> EvalConfig:
        g = self.config.generation
        return EvalConfig(
            model=name,
            prompts=prompts.source,
            split=prompts.split,
            limit=prompts.limit,
            subset_seed=prompts.subset_seed,
            judge=self.config.judge if train else self.config.validator,
            samples=g.samples if train else 1,
            temperature=g.temperature if train else 0.0,
            top_p=g.top_p if train else 1.0,
            max_new_tokens=g.max_new_tokens if train else g.validation_max_new_tokens,
            seed=self.config.seed + 1000 * cycle,
            policy=self.config.safety_policy,
            batch_size=g.batch_size,
            dtype=self.config.dtype,
            device=self.config.device,
            n_resamples=1000,
        )

    # ------------------------------------------------------------------ the loop

    def run(self) -> AlignResult:
        """Run every unfinished stage of every cycle; stop early when nothing is promoted."""
        promotions: list[str] = []
        cycles_done = 0
        stopped = self.manifest.data.get("stopped")
        for cycle in range(1, self.config.cycles + 1):
            if stopped:
                break
            record = self._run_cycle(cycle)
            cycles_done = cycle
            promotions.append(record["promoted"])
            if record["promoted"] == "current":
                stopped = f"cycle {cycle}: no candidate beat the current policy ({record['reason']})"
                self.manifest.data["stopped"] = stopped
                self.manifest.save()
        self.manifest.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest.save()
        final = self.manifest.data.get("current_policy") or self.config.policy_model
        return AlignResult(self.run_dir, cycles_done, final, promotions, stopped)

    def _run_cycle(self, cycle: int) -> dict[str, Any]:
        cdir = self.run_dir / f"cycle_{cycle}"
        cdir.mkdir(parents=True, exist_ok=True)
        if self._done(cycle, "select"):
            return json.loads((cdir / "selection.json").read_text())
        policy_path = self._current_policy_path()
        policy_name = self.manifest.data.get("current_policy") or self.config.policy_model
        self.console.rule(f"[bold]cycle {cycle}[/] from {policy_name}")
        self.manifest.data.setdefault("cycles", {})[str(cycle)] = {"policy": policy_name}
        self.manifest.save()
        gen: HFGenerator | None = None

        def policy_gen() -> HFGenerator:
            nonlocal gen
            if gen is None:
                gen = self._load(policy_path, policy_name)
            return gen

        # 1-3. generate k samples per train prompt, judge and score them (the eval path)
        if not self._done(cycle, "samples"):
            g = policy_gen()
            res = evaluate(
                self._eval_config(policy_name, self.config.train_prompts, train=True, cycle=cycle),
                cdir / "samples",
                generator=g,
                judge=self._judge(self._training_judge(), g),
                console=self.console,
                restart_on_mismatch=True,
            )
            self._mark(cycle, "samples", judge=res.metrics["judge"], rows=len(res.rows))

        # 3b. the reliability gate: does the training judge agree with the reference?
        if self.config.gate.reference and not self._done(cycle, "gate"):
            decision = self._gate(cycle, cdir, policy_gen)
            self._mark(cycle, "gate", switched=decision["switched"], value=decision.get("value"))
        samples = read_jsonl(cdir / "samples" / "responses.jsonl")
        feedback = self._human_feedback(samples)
        human_overrides = 0
        if feedback is not None:
            samples, human_overrides = feedback.apply(
                samples, policy=None if self.config.human_feedback.group_policy else self.policy
            )

        # 4a. reminder-conditioned responses where every sample is bad
        threshold = self.config.preferences.kto_threshold
        threshold = self.policy.desirable_threshold if threshold is None else threshold
        if not self._done(cycle, "reminder"):
            rows: list[dict[str, Any]] = []
            if self.config.preferences.reminder:
                rows = self._reminder(policy_gen(), samples, threshold, cycle)
            write_jsonl_atomic(cdir / "reminder.jsonl", rows)
            self._mark(cycle, "reminder", rows=len(rows))
        reminder_rows = read_jsonl(cdir / "reminder.jsonl")

        # 4b. preference data
        if not self._done(cycle, "preferences"):
            prefs = build_preferences(
                samples,
                threshold=threshold,
                pairing=self.config.preferences.pairing,
                max_pairs_per_prompt=self.config.preferences.max_pairs_per_prompt,
                reminder_rows=reminder_rows,
            )
            human = {"labels_applied": human_overrides, "dpo": 0, "kto": 0}
            if feedback is not None:
                prefs.dpo.extend({"source": "human", **r} for r in feedback.dpo)
                prefs.kto.extend({"source": "human", **r} for r in feedback.kto)
                human.update(dpo=len(feedback.dpo), kto=len(feedback.kto))
            write_jsonl_atomic(cdir / "dpo.jsonl", prefs.dpo)
            write_jsonl_atomic(cdir / "kto.jsonl", prefs.kto)
            write_json_atomic(
                cdir / "preferences.json", {"threshold": threshold, **prefs.stats.to_dict(), "human_feedback": human}
            )
            if feedback is not None:
                self.console.print(
                    f"human feedback: {human_overrides} judge verdicts overridden, "
                    f"{human['dpo']} DPO pairs and {human['kto']} KTO examples added"
                )
            s = prefs.stats
            self.console.print(
                f"preferences: {s.prompts_with_pairs}/{s.prompts} prompts gave DPO pairs ({s.dpo_pairs} pairs; "
                f"{s.all_bad} all-bad, {s.all_bad_rescued_by_reminder} rescued by the reminder, "
                f"{s.all_good} all-good, {s.contrast_pairs_from_reminder} benign contrast pairs); "
                f"KTO {s.kto_desirable} desirable / {s.kto_undesirable} undesirable"
            )
            self._mark(cycle, "preferences", dpo_pairs=s.dpo_pairs, kto=s.kto_desirable + s.kto_undesirable)

        # 5. train the candidates
        gen = None  # free the generator's memory during training
        for method in CANDIDATES:
            if self._done(cycle, f"train_{method}"):
                continue
            settings = getattr(self.config, method)
            ref = self.manifest.data["base_policy"] if settings.reference == "base" else None
            self.console.print(f"training the {method.upper()} candidate (LoRA r={settings.lora_r})")
            result = train_adapter(
                method,
                policy_path,
                read_jsonl(cdir / f"{method}.jsonl"),
                settings,
                cdir / method,
                reference_path=ref,
                seed=self.config.seed + cycle,
                device=self.config.device,
                tracking=self.config.tracking,
            )
            info = {
                "adapter": str(result.adapter_dir.relative_to(self.run_dir)) if result.adapter_dir else None,
                "examples": result.examples,
                "steps": result.steps,
                "seconds": round(result.seconds, 1),
                "skipped": result.skipped,
                "final_log": result.final_log,
                "reference": "base" if ref else "previous",
            }
            write_json_atomic(cdir / method / "train.json", info)
            if result.skipped:
                self.console.print(f"[yellow]{method.upper()} not trained: {result.skipped}[/]")
            self._mark(cycle, f"train_{method}", **{k: info[k] for k in ("examples", "steps", "seconds", "skipped")})

        # 6. validate current and candidates on the same prompts with the validator
        vdir = cdir / "validation"
        candidates: dict[str, Path] = {}
        for method in CANDIDATES:
            info = json.loads((cdir / method / "train.json").read_text())
            if info.get("adapter"):
                candidates[method] = self.run_dir / info["adapter"]
        if not self._done(cycle, "validate_current"):
            prev = self.manifest.data.get("cycles", {}).get(str(cycle - 1), {}).get("promoted")
            prev_dir = self.run_dir / f"cycle_{cycle - 1}" / "validation" / str(prev)
            if prev in CANDIDATES and (prev_dir / "metrics.json").exists():
                # the current policy is last cycle's promoted candidate: same model, same greedy outputs
                if (vdir / "current").exists():
                    shutil.rmtree(vdir / "current")
                shutil.copytree(prev_dir, vdir / "current")
            else:
                g = policy_gen()
                evaluate(
                    self._eval_config(policy_name, self.config.validation_prompts, train=False, cycle=cycle),
                    vdir / "current",
                    generator=g,
                    judge=self._judge(self.config.validator, g),
                    console=self.console,
                    restart_on_mismatch=True,
                )
            self._mark(cycle, "validate_current")
        gen = None
        for method, adapter in candidates.items():
            if self._done(cycle, f"validate_{method}"):
                continue
            name = f"cycle_{cycle}/{method}"
            g = self._load(policy_path, name, adapter)
            evaluate(
                self._eval_config(name, self.config.validation_prompts, train=False, cycle=cycle),
                vdir / method,
                generator=g,
                judge=self._judge(self.config.validator, g),
                console=self.console,
                restart_on_mismatch=True,
            )
            self._mark(cycle, f"validate_{method}")
            del g

        # 7. select and promote
        sel = self.config.selection
        rule = SelectionRule(
            max_erroneous_refusal_increase=sel.max_erroneous_refusal_increase,
            min_improvement=sel.min_improvement,
            confidence=sel.confidence,
            n_resamples=sel.n_resamples,
            seed=self.config.seed + cycle,
        )
        current_rows = read_jsonl(vdir / "current" / "responses.jsonl")
        cand_rows = {m: read_jsonl(vdir / m / "responses.jsonl") for m in candidates}
        cand_metrics = {m: json.loads((vdir / m / "metrics.json").read_text()) for m in candidates}
        cur_metrics = json.loads((vdir / "current" / "metrics.json").read_text())
        selection = select(
            current_rows,
            cand_rows,
            rule,
            current_metrics=cur_metrics,
            candidate_metrics=cand_metrics,
            validator=cur_metrics.get("judge"),
        )
        record = {"cycle": cycle, "policy": policy_name, **selection.to_dict()}
        if selection.promoted != "current":
            merge_adapter(policy_path, candidates[selection.promoted], cdir / "policy")
            record["new_policy"] = f"cycle_{cycle}/policy"
        write_json_atomic(cdir / "selection.json", record)
        self.manifest.data["cycles"][str(cycle)].update(promoted=selection.promoted, reason=selection.reason)
        if selection.promoted != "current":
            self.manifest.data["current_policy"] = f"cycle_{cycle}/policy"
            self.manifest.data.setdefault("policies", {})[str(cycle)] = f"cycle_{cycle}/policy"
        self._mark(cycle, "select", promoted=selection.promoted)
        style = "green" if selection.promoted != "current" else "yellow"
        self.console.print(f"[{style}]cycle {cycle}: promoted {selection.promoted}[/]: {selection.reason}")
        return record

    def _reminder(self, gen: HFGenerator, samples: list[dict[str, Any]], threshold: float, cycle: int) -> list[dict]:
        """Responses drawn with the safety reminder for prompts whose samples are all below threshold
        (rescue) and, with ``reminder_contrast``, for benign prompts answered well every time (contrast)."""
        p = self.config.preferences
        groups = [(set(all_bad_prompts(samples, threshold)), p.reminder_samples)]
        if p.reminder_contrast:
            groups.append((set(all_good_prompts(samples, threshold, harm_levels={0})), p.reminder_contrast_samples))
        prefix = [{"role": "system", "content": p.reminder_prompt}]
        for ex in p.reminder_examples:
            prefix += [{"role": "user", "content": ex.user}, {"role": "assistant", "content": ex.assistant}]
        g = self.config.generation
        out_rows: list[dict[str, Any]] = []
        for i, (ids, k) in enumerate(groups):
            firsts: dict[str, dict[str, Any]] = {}
            for r in samples:
                if r["prompt_id"] in ids:
                    firsts.setdefault(r["prompt_id"], r)
            if not firsts:
                continue
            rows = list(firsts.values())
            convs = [[*prefix, {"role": "user", "content": r["prompt"]}] for r in rows]
            cfg = GenerationConfig(
                max_new_tokens=g.max_new_tokens,
                temperature=g.temperature,
                top_p=g.top_p,
                samples=k,
                seed=self.config.seed + 1000 * cycle + 7 + i,
            )
            label = "reminder (rescue)" if i == 0 else "reminder (contrast)"
            with stage_progress(label, len(convs), unit="prompts", console=self.console) as bar:
                outs = gen.generate_chat(convs, cfg, progress=lambda n, t: bar.advance(n, t))
            out_rows += [
                {
                    **{k: r[k] for k in ("prompt_id", "prompt", "harm_level", "method", "principle", "base_prompt_id")},
                    "sample": s,
                    "response": c.text,
                    "n_tokens": c.n_tokens,
                    "source": "reminder",
                }
                for r, comps in zip(rows, outs, strict=True)
                for s, c in enumerate(comps)
            ]
        if not out_rows:
            return []
        return judge_rows(out_rows, self._judge(self._training_judge(), gen), self.policy, console=self.console)

    def _gate(self, cycle: int, cdir: Path, policy_gen: Any) -> dict[str, Any]:
        """Judge a slice of this cycle's samples with the reference judge; switch to it when agreement is low.

        The decision is written to ``gate.json`` before the samples are re-judged, so a crash in
        between resumes to the same decision.
        """
        import random

        from carealign.judge_eval.agreement import cohen_kappa, raw_agreement

        gate = self.config.gate
        assert gate.reference is not None
        path = cdir / "gate.json"
        responses = cdir / "samples" / "responses.jsonl"
        rows = read_jsonl(responses)

        def reference_judge() -> Judge:
            self_judging = gate.reference in ("llm", "self", "llm:self")
            return self._judge(gate.reference, policy_gen() if self_judging else None)  # type: ignore[arg-type]

        if path.exists():
            decision = json.loads(path.read_text())
        elif self._training_judge() == gate.reference:
            reason = "the training judge already is the reference (switched in an earlier cycle)"
            decision = {"cycle": cycle, "reference": gate.reference, "switched": False, "value": None, "reason": reason}
            write_json_atomic(path, decision)
        else:
            ref = reference_judge()
            picked = sorted(
                random.Random(self.config.seed + cycle).sample(range(len(rows)), min(gate.slice_size, len(rows)))
            )
            sliced = [rows[i] for i in picked]
            ref_rows = judge_rows(
                strip_judgements(sliced),
                ref, self.policy, console=self.console,
            )  # fmt: skip
            train_v = [r["verdict"] for r in sliced]
            ref_v = [r["verdict"] for r in ref_rows]
            kappa, agreement = cohen_kappa(train_v, ref_v), raw_agreement(train_v, ref_v)
            value = kappa if gate.metric == "kappa" else agreement
            switched = value is None or value < gate.min_agreement
            decision = {
                "cycle": cycle,
                "training_judge": sliced[0]["judge"] if sliced else self._training_judge(),
                "reference": gate.reference,
                "reference_identity": ref.identity,
                "slice": len(sliced),
                "metric": gate.metric,
                "value": value,
                "kappa": kappa,
                "agreement": agreement,
                "min_agreement": gate.min_agreement,
                "switched": switched,
                "reason": (
                    f"{gate.metric} {'undefined' if value is None else f'{value:.3f}'} "
                    f"{'<' if switched else '>='} {gate.min_agreement}"
                ),
            }
            write_json_atomic(path, decision)
        if decision["switched"]:
            self.manifest.data["training_judge"] = gate.reference
            self.manifest.data.setdefault("gate_switches", {})[str(cycle)] = decision["reason"]
            self.manifest.save()
            ref_identity = decision.get("reference_identity")
            if any(r.get("judge") != ref_identity for r in rows):
                ref = reference_judge()
                if not (cdir / "samples" / "responses.training_judge.jsonl").exists():
                    shutil.copyfile(responses, cdir / "samples" / "responses.training_judge.jsonl")
                rejudged = judge_rows(strip_judgements(rows), ref, self.policy, console=self.console)
                write_jsonl_atomic(responses, rejudged)
            style = "yellow"
            self.console.print(
                f"[{style}]reliability gate: {decision['reason']}; training judge is now {gate.reference}[/]"
            )
        elif decision.get("value") is not None:
            self.console.print(f"reliability gate: {decision['reason']}; keeping the training judge")
        return decision
