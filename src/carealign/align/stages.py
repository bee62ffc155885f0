"""The stages of one alignment cycle, as functions, in the order :data:`STAGES` runs them.

Each stage takes the cycle's :class:`~carealign.align.run.CycleContext`, writes its artifacts
atomically into the cycle directory (paths from :class:`~carealign.rundir.CycleLayout`) and
returns what the manifest should record about it. :meth:`AlignmentRun.run_stage` skips a stage
the manifest marks done, or one whose ``enabled`` says the config leaves it out, and marks it
done after it returns. Adding a stage is one function and one :class:`Stage` entry.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from carealign.data import load_prompts
from carealign.errors import ConfigError
from carealign.evaluate import evaluate, judge_rows, strip_judgements
from carealign.generate import GenerationConfig
from carealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from carealign.judge.registry import is_self_judge
from carealign.preferences import all_bad_prompts, all_good_prompts, build_preferences
from carealign.progress import stage_progress
from carealign.rundir import CANDIDATES, SelectionRecord, TrainRecord, read_train_record
from carealign.select import select
from carealign.train import TrainResult, merge_adapter, train_adapter

if TYPE_CHECKING:
    from carealign.align.run import CycleContext

StageInfo = dict[str, Any] | None


def _always(ctx: CycleContext) -> bool:
    return True


def _sft_on(ctx: CycleContext) -> bool:
    return ctx.config.sft.runs_in(ctx.number)


@dataclass(frozen=True)
class Stage:
    """One step of a cycle: its manifest name, what it does, and whether the config includes it."""

    name: str
    run: Callable[[CycleContext], StageInfo]
    enabled: Callable[[CycleContext], bool] = _always
    doc: str = ""


# ----------------------------------------------------------------------------- 1-3. samples


def samples(ctx: CycleContext) -> StageInfo:
    """Generate k samples per train prompt, judge and score them (the eval path)."""
    res = evaluate(
        ctx.eval_config(ctx.policy_name, train=True),
        ctx.layout.samples.root,
        generator=ctx.generator(),
        judge=ctx.judge(ctx.run.training_judge()),
        console=ctx.console,
        restart_on_mismatch=True,
    )
    return {"judge": res.metrics["judge"], "rows": len(res.rows)}


# ----------------------------------------------------------------------------- 3b. gate


def gate(ctx: CycleContext) -> StageInfo:
    """The reliability gate: judge a slice of the samples with the reference judge; switch when agreement is low.

    The decision is written to ``gate.json`` before the samples are re-judged, so a crash in
    between resumes to the same decision.
    """
    from carealign.judge_eval.agreement import cohen_kappa, raw_agreement

    run, cfg = ctx.run, ctx.config.gate
    assert cfg.reference is not None
    path = ctx.layout.gate
    responses = ctx.layout.samples.responses
    rows = read_jsonl(responses)

    if path.exists():
        decision = json.loads(path.read_text())
    elif run.training_judge() == cfg.reference:
        reason = "the training judge already is the reference (switched in an earlier cycle)"
        decision = {"cycle": ctx.number, "reference": cfg.reference, "switched": False, "value": None, "reason": reason}
        write_json_atomic(path, decision)
    else:
        ref = ctx.judge(cfg.reference)
        picked = sorted(
            random.Random(ctx.config.seed + ctx.number).sample(range(len(rows)), min(cfg.slice_size, len(rows)))
        )
        sliced = [rows[i] for i in picked]
        ref_rows = judge_rows(strip_judgements(sliced), ref, run.policy, console=ctx.console)
        train_v = [r["verdict"] for r in sliced]
        ref_v = [r["verdict"] for r in ref_rows]
        kappa, agreement = cohen_kappa(train_v, ref_v), raw_agreement(train_v, ref_v)
        value = kappa if cfg.metric == "kappa" else agreement
        switched = value is None or value < cfg.min_agreement
        decision = {
            "cycle": ctx.number,
            "training_judge": sliced[0]["judge"] if sliced else run.training_judge(),
            "reference": cfg.reference,
            "reference_identity": ref.identity,
            "slice": len(sliced),
            "metric": cfg.metric,
            "value": value,
            "kappa": kappa,
            "agreement": agreement,
            "min_agreement": cfg.min_agreement,
            "switched": switched,
            "reason": (
                f"{cfg.metric} {'undefined' if value is None else f'{value:.3f}'} "
                f"{'<' if switched else '>='} {cfg.min_agreement}"
            ),
        }
        write_json_atomic(path, decision)
    if decision["switched"]:
        run.manifest.training_judge = cfg.reference
        run.manifest.gate_switches[str(ctx.number)] = decision["reason"]
        run.manifest.save()
        ref_identity = decision.get("reference_identity")
        if any(r.get("judge") != ref_identity for r in rows):
            ref = ctx.judge(cfg.reference)
            copy = ctx.layout.samples.training_judge_copy
            if not copy.exists():
                shutil.copyfile(responses, copy)
            write_jsonl_atomic(responses, judge_rows(strip_judgements(rows), ref, run.policy, console=ctx.console))
        ctx.console.print(f"[yellow]reliability gate: {decision['reason']}; training judge is now {cfg.reference}[/]")
    elif decision.get("value") is not None:
        ctx.console.print(f"reliability gate: {decision['reason']}; keeping the training judge")
    return {"switched": decision["switched"], "value": decision.get("value")}


# ----------------------------------------------------------------------------- 4a. reminder


def reminder(ctx: CycleContext) -> StageInfo:
    """Reminder-conditioned responses: a safer chosen response for prompts whose samples are all bad
    (rescue) and, with ``reminder_contrast``, for benign prompts answered well every time (contrast)."""
    rows: list[dict[str, Any]] = []
    if ctx.config.preferences.reminder:
        rows = _reminder_rows(ctx)
    write_jsonl_atomic(ctx.layout.reminder, rows)
    return {"rows": len(rows)}


def _reminder_rows(ctx: CycleContext) -> list[dict[str, Any]]:
    p, g = ctx.config.preferences, ctx.config.generation
    samples_ = ctx.samples()
    threshold = ctx.kto_threshold
    groups = [(set(all_bad_prompts(samples_, threshold)), p.reminder_samples)]
    if p.reminder_contrast:
        groups.append((set(all_good_prompts(samples_, threshold, harm_levels={0})), p.reminder_contrast_samples))
    prefix = [{"role": "system", "content": p.reminder_prompt}]
    for ex in p.reminder_examples:
        prefix += [{"role": "user", "content": ex.user}, {"role": "assistant", "content": ex.assistant}]
    out_rows: list[dict[str, Any]] = []
    for i, (ids, k) in enumerate(groups):
        firsts: dict[str, dict[str, Any]] = {}
        for r in samples_:
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
            seed=ctx.config.seed + 1000 * ctx.number + 7 + i,
        )
        label = "reminder (rescue)" if i == 0 else "reminder (contrast)"
        gen = ctx.generator()
        with stage_progress(label, len(convs), unit="prompts", console=ctx.console) as bar:
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
    return judge_rows(out_rows, ctx.judge(ctx.run.training_judge()), ctx.run.policy, console=ctx.console)


# ----------------------------------------------------------------------------- 4b. preferences


def preferences(ctx: CycleContext) -> StageInfo:
    """DPO pairs and KTO examples from the judged samples, the reminder responses and human feedback."""
    samples_ = ctx.samples()
    threshold = ctx.kto_threshold
    p = ctx.config.preferences
    prefs = build_preferences(
        samples_,
        threshold=threshold,
        pairing=p.pairing,
        max_pairs_per_prompt=p.max_pairs_per_prompt,
        reminder_rows=read_jsonl(ctx.layout.reminder),
    )
    feedback = ctx.feedback
    human = {"labels_applied": ctx.human_overrides, "dpo": 0, "kto": 0}
    if feedback is not None:
        prefs.dpo.extend({"source": "human", **r} for r in feedback.dpo)
        prefs.kto.extend({"source": "human", **r} for r in feedback.kto)
        human.update(dpo=len(feedback.dpo), kto=len(feedback.kto))
    write_jsonl_atomic(ctx.layout.data("dpo"), prefs.dpo)
    write_jsonl_atomic(ctx.layout.data("kto"), prefs.kto)
    write_json_atomic(
        ctx.layout.preferences, {"threshold": threshold, **prefs.stats.to_dict(), "human_feedback": human}
    )
    if feedback is not None:
        ctx.console.print(
            f"human feedback: {ctx.human_overrides} judge verdicts overridden, "
            f"{human['dpo']} DPO pairs and {human['kto']} KTO examples added"
        )
    s = prefs.stats
    ctx.console.print(
        f"preferences: {s.prompts_with_pairs}/{s.prompts} prompts gave DPO pairs ({s.dpo_pairs} pairs; "
        f"{s.all_bad} all-bad, {s.all_bad_rescued_by_reminder} rescued by the reminder, "
        f"{s.all_good} all-good, {s.contrast_pairs_from_reminder} benign contrast pairs); "
        f"KTO {s.kto_desirable} desirable / {s.kto_undesirable} undesirable"
    )
    return {"dpo_pairs": s.dpo_pairs, "kto": s.kto_desirable + s.kto_undesirable}


# ----------------------------------------------------------------------------- 4c. demonstrations


def demonstrations(ctx: CycleContext) -> StageInfo:
    """Demonstration rows for the SFT stage: the policy's own well-scored samples (one per prompt),
    well-scored reminder responses, reviewers' corrections and the written responses of public prompt
    sets (train parts only), in TRL's prompt/completion format."""
    sft = ctx.config.sft
    rows: list[dict[str, Any]] = []

    def add(prompt: str, response: str, source: str, prompt_id: str | None, harm_level: int | None) -> None:
        if response and response.strip():
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "completion": [{"role": "assistant", "content": response.strip()}],
                    "source": source,
                    "prompt_id": prompt_id,
                    "harm_level": harm_level,
                }
            )

    if "samples" in sft.sources:
        best: dict[str, dict[str, Any]] = {}
        for r in ctx.samples():
            score = r.get("score")
            if score is not None and score >= ctx.kto_threshold and r["prompt_id"] not in best:
                best[r["prompt_id"]] = r
        for r in best.values():
            add(r["prompt"], r["response"], "samples", r["prompt_id"], r.get("harm_level"))
    if "reminder" in sft.sources:
        for r in read_jsonl(ctx.layout.reminder):
            if r.get("score") is not None and r["score"] >= ctx.kto_threshold:
                add(r["prompt"], r["response"], "reminder", r.get("prompt_id"), r.get("harm_level"))
    if "human" in sft.sources and ctx.feedback is not None:
        for r in ctx.feedback.dpo:
            prompt = next((m["content"] for m in r["prompt"] if m["role"] == "user"), None)
            if prompt is not None:
                add(prompt, r["chosen"][-1]["content"], "human", r.get("prompt_id"), r.get("harm_level"))
    if "public" in sft.sources:
        for ps in sft.public_prompts:
            if ps.split == "test":
                raise ConfigError(f"sft.public_prompts: {ps.source} split test is held out; use train")
            records = load_prompts(ps.source, ps.split, limit=ps.limit, subset_seed=ps.subset_seed)
            for rec in records:
                if rec.reference_response:
                    add(rec.prompt, rec.reference_response, f"public:{ps.source}", rec.id, rec.harm_level)
    if sft.max_examples is not None and len(rows) > sft.max_examples:
        keep = set(random.Random(ctx.config.seed + ctx.number).sample(range(len(rows)), sft.max_examples))
        rows = [r for i, r in enumerate(rows) if i in keep]
    random.Random(ctx.config.seed + ctx.number).shuffle(rows)
    write_jsonl_atomic(ctx.layout.data("sft"), rows)
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    ctx.console.print(
        f"demonstrations: {len(rows)} rows ({', '.join(f'{k} {v}' for k, v in sorted(by_source.items()))})"
    )
    return {"rows": len(rows), "by_source": by_source}


def _train_record(ctx: CycleContext, result: TrainResult, reference: str | None = None) -> TrainRecord:
    """``train.json`` of a training stage, from what :func:`train_adapter` returned."""
    return TrainRecord(
        adapter=ctx.run.layout.relative(result.adapter_dir) if result.adapter_dir else None,
        examples=result.examples,
        steps=result.steps,
        seconds=round(result.seconds, 1),
        skipped=result.skipped,
        final_log=result.final_log,
        reference=reference,
        resumed_from_step=result.resumed_from_step,
    )


def train_sft(ctx: CycleContext) -> StageInfo:
    """Supervised fine-tuning (LoRA) on the demonstrations; the merged result is where DPO and KTO start."""
    ctx.release_generator()
    settings = ctx.config.sft
    result = train_adapter(
        "sft",
        ctx.policy_path,
        read_jsonl(ctx.layout.data("sft")),
        settings,
        ctx.layout.method_dir("sft"),
        seed=ctx.config.seed + ctx.number,
        device=ctx.config.device,
        tracking=ctx.config.tracking,
    )
    record = _train_record(ctx, result)
    if result.adapter_dir is not None:
        merge_adapter(ctx.policy_path, result.adapter_dir, ctx.layout.sft_policy)
    else:
        ctx.console.print(f"[yellow]demonstration stage not trained: {result.skipped}[/]")
    write_json_atomic(ctx.layout.train_record("sft"), record.model_dump(mode="json"))
    return {"examples": record.examples, "steps": record.steps, "seconds": record.seconds, "skipped": record.skipped}


# ----------------------------------------------------------------------------- 5. training


def train(ctx: CycleContext, method: str) -> StageInfo:
    """Train the ``method`` candidate (a LoRA adapter) from the cycle's starting policy.

    Trainer checkpoints are kept in ``cycle_N/METHOD/checkpoints/`` while it runs, so a crash
    resumes from the last one rather than from the start of the stage.
    """
    ctx.release_generator()  # free the generator's memory during training
    run = ctx.run
    settings = getattr(ctx.config, method)
    ref = run.manifest.base_policy if settings.reference == "base" else None
    ctx.console.print(f"training the {method.upper()} candidate (LoRA r={settings.lora_r})")
    result = train_adapter(
        method,  # type: ignore[arg-type]
        ctx.train_base_path(),
        read_jsonl(ctx.layout.data(method)),
        settings,
        ctx.layout.method_dir(method),
        reference_path=ref,
        seed=ctx.config.seed + ctx.number,
        device=ctx.config.device,
        tracking=ctx.config.tracking,
    )
    record = _train_record(ctx, result, reference="base" if ref else "previous")
    write_json_atomic(ctx.layout.train_record(method), record.model_dump(mode="json"))
    if result.skipped:
        ctx.console.print(f"[yellow]{method.upper()} not trained: {result.skipped}[/]")
    return {"examples": record.examples, "steps": record.steps, "seconds": record.seconds, "skipped": record.skipped}


# ----------------------------------------------------------------------------- 6. validation


def _trained(ctx: CycleContext) -> dict[str, Any]:
    """The candidates that were trained (their adapter paths)."""
    out = {}
    for method in CANDIDATES:
        path = ctx.layout.train_record(method)
        if path.exists():
            rec = read_train_record(path)
            if rec.adapter:
                out[method] = ctx.run.layout.resolve(rec.adapter)
    return out


def validate_current(ctx: CycleContext) -> StageInfo:
    """Validate the starting policy; reuse last cycle's validation of the candidate it was promoted from."""
    run = ctx.run
    target = ctx.layout.validation("current")
    prev_record = run.manifest.cycles.get(str(ctx.number - 1))
    prev = prev_record.promoted if prev_record else None
    prev_dir = run.layout.cycle(ctx.number - 1).validation(str(prev))
    if prev in CANDIDATES and prev_dir.metrics.exists():
        # the current policy is last cycle's promoted candidate: same model, same greedy outputs
        if target.root.exists():
            shutil.rmtree(target.root)
        shutil.copytree(prev_dir.root, target.root)
        return {"reused": f"cycle_{ctx.number - 1}/validation/{prev}"}
    evaluate(
        ctx.eval_config(ctx.policy_name, train=False),
        target.root,
        generator=ctx.generator(),
        judge=ctx.judge(ctx.config.validator),
        console=ctx.console,
        restart_on_mismatch=True,
    )
    return None


def validate_candidate(ctx: CycleContext, method: str) -> StageInfo:
    """Validate one trained candidate (the starting policy with its adapter merged)."""
    ctx.release_generator()
    adapter = _trained(ctx).get(method)
    if adapter is None:
        return {"skipped": "not trained"}
    name = ctx.layout.stage(method)
    gen = ctx.run.load_generator(ctx.train_base_path(), name, adapter)
    validator = ctx.config.validator
    evaluate(
        ctx.eval_config(name, train=False),
        ctx.layout.validation(method).root,
        generator=gen,
        judge=ctx.run.judge(validator, gen if is_self_judge(validator) else None),
        console=ctx.console,
        restart_on_mismatch=True,
    )
    return None


# ----------------------------------------------------------------------------- 7. selection


def select_policy(ctx: CycleContext) -> StageInfo:
    """Paired selection on the validation prompts; merge and promote the winner."""
    run = ctx.run
    rule = ctx.config.selection.model_copy(update={"seed": ctx.config.selection.seed + ctx.config.seed + ctx.number})
    candidates = _trained(ctx)
    current = ctx.layout.validation("current")
    cand_layouts = {m: ctx.layout.validation(m) for m in candidates}
    cur_metrics = json.loads(current.metrics.read_text())
    selection = select(
        read_jsonl(current.responses),
        {m: read_jsonl(v.responses) for m, v in cand_layouts.items()},
        rule,
        current_metrics=cur_metrics,
        candidate_metrics={m: json.loads(v.metrics.read_text()) for m, v in cand_layouts.items()},
        validator=cur_metrics.get("judge"),
    )
    record = SelectionRecord(cycle=ctx.number, policy=ctx.policy_name, **selection.to_dict())
    if selection.promoted != "current":
        merge_adapter(ctx.train_base_path(), candidates[selection.promoted], ctx.layout.policy)
        record.new_policy = ctx.layout.policy_ref
    write_json_atomic(ctx.layout.selection, record.model_dump(mode="json", exclude_none=True))
    cycle = run.manifest.cycles[str(ctx.number)]
    cycle.promoted, cycle.reason = selection.promoted, selection.reason
    if selection.promoted != "current":
        run.manifest.current_policy = ctx.layout.policy_ref
        run.manifest.policies[str(ctx.number)] = ctx.layout.policy_ref
    style = "green" if selection.promoted != "current" else "yellow"
    ctx.console.print(f"[{style}]cycle {ctx.number}: promoted {selection.promoted}[/]: {selection.reason}")
    return {"promoted": selection.promoted}


#: A cycle's stages, in order. ``carealign align --resume`` continues at the first one not done.
STAGES: list[Stage] = [
    Stage("samples", samples, doc="k sampled responses per train prompt, judged by the training judge"),
    Stage("gate", gate, enabled=lambda ctx: ctx.config.gate.reference is not None, doc="training judge vs reference"),
    Stage("reminder", reminder, doc="reminder-conditioned responses (rescue and contrast)"),
    Stage("preferences", preferences, doc="DPO pairs and KTO examples"),
    Stage("demonstrations", demonstrations, enabled=_sft_on, doc="demonstration rows for SFT"),
    Stage("train_sft", train_sft, enabled=_sft_on, doc="SFT (LoRA) on the demonstrations; DPO/KTO start from it"),
    *(Stage(f"train_{m}", partial(train, method=m), doc=f"the {m.upper()} LoRA candidate") for m in CANDIDATES),
    Stage("validate_current", validate_current, doc="the starting policy on the validation prompts"),
    *(
        Stage(f"validate_{m}", partial(validate_candidate, method=m), doc=f"the {m.upper()} candidate")
        for m in CANDIDATES
    ),
    Stage("select", select_policy, doc="paired selection and promotion"),
]
