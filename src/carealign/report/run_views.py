"""The run report's view models: what each section of ``run_report.html`` shows, already formatted.

Each ``*_view`` function takes the loaded run (:mod:`carealign.report.run_data`) and returns plain
dicts and lists of strings for the template; no HTML is written here (the template escapes it all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carealign.domain import PRINCIPLES
from carealign.report.formatting import (
    DASH,
    change_class,
    ci_pair,
    fmt_ci,
    fmt_number,
    fmt_signed,
    fmt_value,
    group_keys,
    harm_level,
    is_num,
    level_label,
    truncate,
)
from carealign.report.plots import TradeoffPoint
from carealign.report.run_data import CANDIDATES, POLICIES, BeforeAfter, RunData

#: How many changed examples the report shows at most.
MAX_EXAMPLES = 12


@dataclass(frozen=True)
class MetricSpec:
    """A headline metric: its key in metrics.json, how to show it, and which direction is better."""

    key: str
    label: str
    percent: bool
    better: int  # +1: higher is better, -1: lower is better
    help: str


HEADLINE: tuple[MetricSpec, ...] = (
    MetricSpec("safety_score", "Safety score", False, +1, "mean CARES score (1 = the ideal response)"),
    MetricSpec("harmful_refusal_rate", "Harmful refusal rate", True, +1, "share of level 2-3 prompts refused"),
    MetricSpec("erroneous_refusal_rate", "Erroneous refusal rate", True, -1, "share of harmless prompts refused"),
    MetricSpec("over_caution_rate", "Over-caution rate", True, -1, "share of harmless prompts answered with Caution"),
    MetricSpec("unscored_rate", "Unscored rate", True, -1, "share of responses the judge could not decide"),
)

#: The report's sections: (anchor id, title in the navigation bar).
TOC: tuple[tuple[str, str], ...] = (
    ("run", "Run"),
    ("before-after", "Before/after"),
    ("cycles", "Per cycle"),
    ("breakdown", "By level and method"),
    ("tradeoff", "Refusal trade-off"),
    ("selection", "DPO vs KTO"),
    ("preferences", "Preference data"),
    ("training", "Training"),
    ("examples", "Examples"),
)


def _judge_ids(metrics: Iterable[Mapping[str, Any] | None]) -> list[str]:
    ids: list[str] = []
    for m in metrics:
        j = (m or {}).get("judge")
        if j and str(j) not in ids:
            ids.append(str(j))
    return ids


def header_view(run: RunData, ba: BeforeAfter) -> dict[str, Any]:
    """Run identity, judges, cycles, promotions, why it stopped, versions and key settings."""
    m, cfg = run.manifest, run.config
    stages = m.get("stages") or {}
    train_ids = _judge_ids(c.samples_metrics for c in run.cycles)
    if not train_ids:
        train_ids = _judge_ids(s for k, s in stages.items() if str(k).endswith("/samples"))
    val_ids = _judge_ids(ev.metrics for c in run.cycles for ev in c.validation.values())
    if not val_ids:
        val_ids = [str(c.selection["validator"]) for c in run.cycles if c.selection and c.selection.get("validator")]
    done = [c for c in run.cycles if c.promoted is not None]
    n_cfg = cfg.get("cycles")
    if m.get("stopped"):
        stopped = f"Stopped early: {m['stopped']}"
    elif not m.get("finished"):
        stopped = "Not finished: manifest.json has no finish time; the report shows the stages done so far."
    elif n_cfg is not None and len(done) >= int(n_cfg):
        stopped = f"Completed all {n_cfg} configured cycle(s)."
    else:
        stopped = "Finished."
    base_model = m.get("base_policy") or cfg.get("policy_model") or DASH
    spec = cfg.get("policy_model")
    if spec and spec != base_model:
        base_model = f"{spec} ({base_model})"
    versions = m.get("versions") or {}
    inputs = m.get("inputs") or {}

    def prompts(key: str) -> str:
        p = cfg.get(key) or {}
        n = (inputs.get(key) or {}).get("n")
        parts = [str(p.get("source", "?")), str(p.get("split", "?"))]
        return " / ".join(parts) + (f", {n} prompts" if n is not None else "")

    gen = cfg.get("generation") or {}
    sel = cfg.get("selection") or {}
    settings = [
        ("Train prompts", prompts("train_prompts")),
        ("Validation prompts", prompts("validation_prompts")),
        ("Samples per train prompt", fmt_number(gen.get("samples"))),
        (
            "Selection rule",
            f"paired {fmt_value(sel.get('confidence'), percent=True)} interval of the safety gain must clear "
            f"{fmt_signed(sel.get('min_improvement'))}; erroneous refusals may rise by at most "
            f"{fmt_value(sel.get('max_erroneous_refusal_increase'), percent=True)}",
        ),
    ]
    for method in CANDIDATES:
        s = cfg.get(method) or {}
        if s:
            settings.append(
                (
                    f"{method.upper()} training",
                    f"beta {fmt_number(s.get('beta'))}, lr {fmt_number(s.get('learning_rate'))}, "
                    f"LoRA r={fmt_number(s.get('lora_r'))}, max steps {fmt_number(s.get('max_steps'))}, "
                    f"reference {s.get('reference', DASH)}",
                )
            )
    return {
        "run_dir": str(run.path.resolve()),
        "base_model": str(base_model),
        "final_policy": str(m.get("current_policy") or "the base policy (nothing was promoted)"),
        "train_judge": ", ".join(train_ids) or DASH,
        "train_judge_spec": str(cfg.get("judge") or DASH),
        "validator": ", ".join(val_ids) or DASH,
        "validator_spec": str(cfg.get("validator") or DASH),
        "eval_judge": ", ".join(_judge_ids([ev.metrics for ev in (ba.base, ba.final) if ev is not None])) or DASH,
        "cycles_done": len(done),
        "cycles_configured": DASH if n_cfg is None else str(n_cfg),
        "promotions": [{"cycle": c.number, "promoted": c.promoted or "unfinished"} for c in run.cycles],
        "stopped": stopped,
        "created": str(m.get("created") or DASH),
        "finished": str(m.get("finished") or DASH),
        "versions": [(k, str(v)) for k, v in versions.items() if k != "platform" and v is not None],
        "platform": str(versions.get("platform") or ""),
        "settings": settings,
    }


def _metric_cells(m: Mapping[str, Any] | None, spec: MetricSpec) -> dict[str, str]:
    m = m or {}
    return {
        "value": fmt_value(m.get(spec.key), percent=spec.percent),
        "ci": fmt_ci(m.get(f"{spec.key}_ci"), percent=spec.percent),
    }


def before_after_view(ba: BeforeAfter) -> dict[str, Any] | None:
    """Rows of the before/after table: each headline metric, overall and per harm level."""
    if ba.base is None or ba.final is None:
        return None
    b, f = ba.base.metrics, ba.final.metrics
    groups: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [("All prompts", b, f)]
    bl, fl = b.get("by_harm_level") or {}, f.get("by_harm_level") or {}
    groups += [(level_label(k).capitalize(), bl.get(k) or {}, fl.get(k) or {}) for k in group_keys(bl, fl)]
    out = []
    for title, bm, fm in groups:
        rows = []
        for spec in HEADLINE:
            bv, fv = bm.get(spec.key), fm.get(spec.key)
            if not is_num(bv) and not is_num(fv):
                continue
            delta = fv - bv if is_num(bv) and is_num(fv) else None
            support = [((x.get("support") or {}).get(spec.key)) for x in (bm, fm)]
            rows.append(
                {
                    "label": spec.label,
                    "help": spec.help,
                    "base": _metric_cells(bm, spec),
                    "final": _metric_cells(fm, spec),
                    "change": fmt_signed(delta, percent=spec.percent),
                    "cls": change_class(delta, spec.better),
                    "n": " / ".join(DASH if s is None else str(s) for s in support),
                }
            )
        if rows:
            out.append({"title": title, "rows": rows})
    return {
        "groups": out,
        "base_model": str(b.get("model") or DASH),
        "final_model": str(f.get("model") or DASH),
        "judge": ", ".join(_judge_ids([b, f])) or DASH,
        "n_base": b.get("n_prompts", b.get("n")),
        "n_final": f.get("n_prompts", f.get("n")),
    }


def cycles_view(run: RunData) -> list[dict[str, Any]]:
    """One row per cycle and validated (or skipped) policy."""
    rows = []
    for c in run.cycles:
        for name in POLICIES:
            m = c.candidate_metrics(name)
            skipped = c.skipped(name) if name in CANDIDATES else None
            if m is None and skipped is None and name not in c.train:
                continue
            if name == "current":
                status = "starting policy" + (" (copy of last cycle's promoted outputs)" if c.number > 1 else "")
            elif skipped:
                status = f"not trained: {skipped}"
            elif m is None:
                status = "not validated"
            else:
                status = "candidate"
            rows.append(
                {
                    "cycle": c.number,
                    "policy": name if name == "current" else name.upper(),
                    "model": str((m or {}).get("model") or ""),
                    "status": status,
                    "promoted": c.promoted == name,
                    "n": fmt_number((m or {}).get("n_prompts", (m or {}).get("n"))),
                    "cells": [_metric_cells(m, spec) for spec in HEADLINE],
                }
            )
    return rows


def _paired(d: Mapping[str, Any] | None, *, percent: bool) -> dict[str, str]:
    d = d or {}
    ci = [d.get("low"), d.get("high")]
    return {
        "mean": fmt_signed(d.get("mean"), percent=percent),
        "ci": "" if ci_pair(ci) is None else "[" + ", ".join(fmt_signed(v, percent=percent) for v in ci) + "]",
        "n": fmt_number(d.get("n")),
        "p": fmt_value(d.get("p_not_better"), percent=True),
    }


def selection_view(run: RunData) -> dict[str, Any]:
    """Per cycle: each candidate's paired comparison with the current policy, why not, and the decision."""
    cycles = []
    wins: dict[str, int] = defaultdict(int)
    for c in run.cycles:
        if c.promoted:
            wins[c.promoted] += 1
        cands = (c.selection or {}).get("candidates") or {}
        rows = []
        for method in CANDIDATES:
            info = cands.get(method)
            skipped = c.skipped(method)
            if info is None:
                why = [f"not trained: {skipped}"] if skipped else ["no comparison (not validated)"]
                rows.append(
                    {
                        "method": method.upper(),
                        "promoted": False,
                        "qualifies": None,
                        "why_not": why,
                        "gain": _paired(None, percent=False),
                        "err": _paired(None, percent=True),
                    }
                )
                continue
            rows.append(
                {
                    "method": method.upper(),
                    "promoted": c.promoted == method,
                    "qualifies": bool(info.get("qualifies")),
                    "why_not": [str(w) for w in info.get("why_not") or []],
                    "gain": _paired(info.get("safety_gain"), percent=False),
                    "err": _paired(info.get("erroneous_refusal_change"), percent=True),
                }
            )
        cycles.append(
            {
                "cycle": c.number,
                "promoted": c.promoted or "unfinished",
                "reason": c.reason or DASH,
                "rows": rows,
            }
        )
    summary = ", ".join(f"{k.upper() if k in CANDIDATES else k} {v}×" for k, v in sorted(wins.items())) or DASH
    return {"cycles": cycles, "summary": summary}


def preferences_view(run: RunData) -> list[dict[str, Any]]:
    """The preference-data statistics of each cycle (preferences.json)."""
    rows = []
    for c in run.cycles:
        p = c.preferences
        if p is None:
            continue
        total, with_pairs = p.get("prompts"), p.get("prompts_with_pairs")
        share = with_pairs / total if is_num(with_pairs) and is_num(total) and total else None
        levels = []
        for k, v in sorted((p.get("by_harm_level") or {}).items(), key=lambda kv: str(kv[0])):
            levels.append(f"L{k}: {fmt_number((v or {}).get('with_pairs'))}/{fmt_number((v or {}).get('prompts'))}")
        rows.append(
            {
                "cycle": c.number,
                "threshold": fmt_number(p.get("threshold")),
                "pairs": f"{fmt_number(with_pairs)} / {fmt_number(total)}"
                + ("" if share is None else f" ({share:.0%})"),
                "all_bad": fmt_number(p.get("all_bad")),
                "rescued": fmt_number(p.get("all_bad_rescued_by_reminder")),
                "all_good": fmt_number(p.get("all_good")),
                "ties": fmt_number(p.get("ties_without_pairs")),
                "unscored": fmt_number(p.get("unscored")),
                "dpo_pairs": fmt_number(p.get("dpo_pairs")),
                "kto": f"{fmt_number(p.get('kto_desirable'))} / {fmt_number(p.get('kto_undesirable'))}",
                "levels": " · ".join(levels),
            }
        )
    return rows


def training_view(run: RunData) -> list[dict[str, Any]]:
    """Steps, time, final loss and reward margin of each trained (or skipped) candidate."""
    rows = []
    for c in run.cycles:
        for method in CANDIDATES:
            info = c.train.get(method)
            if info is None:
                continue
            log = info.get("final_log") or {}
            skipped = c.skipped(method)
            rows.append(
                {
                    "cycle": c.number,
                    "method": method.upper(),
                    "status": skipped or "trained",
                    "skipped": bool(skipped),
                    "examples": fmt_number(info.get("examples")),
                    "steps": fmt_number(info.get("steps")),
                    "seconds": fmt_number(info.get("seconds")),
                    "loss": fmt_number(log.get("loss")),
                    "train_loss": fmt_number(log.get("train_loss")),
                    "margin": fmt_number(log.get("rewards/margins")),
                    "kl": fmt_number(log.get("kl")),
                    "reference": str(info.get("reference") or DASH),
                }
            )
    return rows


def tradeoff_points(run: RunData, ba: BeforeAfter) -> list[TradeoffPoint]:
    """(erroneous refusal, harmful refusal) of every evaluated policy that has both."""
    pts: list[TradeoffPoint] = []
    for c in run.cycles:
        for name in POLICIES:
            m = c.candidate_metrics(name)
            if m and is_num(m.get("erroneous_refusal_rate")) and is_num(m.get("harmful_refusal_rate")):
                x, y = float(m["erroneous_refusal_rate"]), float(m["harmful_refusal_rate"])
                pts.append(TradeoffPoint(f"c{c.number} {name}", x, y, name))
    for kind, ev in (("base", ba.base), ("final", ba.final)):
        m = ev.metrics if ev else None
        if m and is_num(m.get("erroneous_refusal_rate")) and is_num(m.get("harmful_refusal_rate")):
            x, y = float(m["erroneous_refusal_rate"]), float(m["harmful_refusal_rate"])
            pts.append(TradeoffPoint(f"{kind} ({ba.split})", x, y, kind))
    return pts


def _sample_number(row: Mapping[str, Any]) -> float:
    """A response's sample number (0 when missing)."""
    value = row.get("sample")
    return value if is_num(value) else 0


def _first_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The first sample of each prompt, keyed by prompt id, in file order."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in sorted(rows, key=_sample_number):
        if r.get("prompt_id") is not None:
            out.setdefault(str(r["prompt_id"]), r)
    return out


def _score(row: Mapping[str, Any]) -> float | None:
    return float(row["score"]) if is_num(row.get("score")) else None


def _describe(level: int | None, before: str, after: str, delta: float | None) -> tuple[str, int, str]:
    """(what happened, priority (0 = most telling), css class) of a verdict change."""
    if level is not None and level >= 2 and before == "Accept" and after == "Refuse":
        return "now refuses a harmful request", 0, "good"
    if level == 0 and after == "Refuse":
        return "regression: now refuses a harmless question", 0, "bad"
    if level == 0 and before == "Refuse":
        return "now answers a harmless question it refused", 1, "good"
    if level is not None and level >= 1 and after == "Accept":
        return "regression: now accepts a harmful request", 1, "bad"
    if delta is not None and delta > 0:
        return "safer verdict", 1, "good"
    if delta is not None and delta < 0:
        return "less safe verdict", 1, "bad"
    return "verdict changed (same score)", 2, ""


def examples_view(ba: BeforeAfter, limit: int = MAX_EXAMPLES) -> dict[str, Any]:
    """Prompts whose verdict changed between base and final, spread over harm levels, plus a transition table."""
    if ba.base is None or ba.final is None:
        return {"examples": [], "matched": 0, "changed": 0, "transitions": None}
    base, final = _first_rows(ba.base.rows), _first_rows(ba.final.rows)
    common = [pid for pid in base if pid in final]
    verdicts = ["Accept", "Caution", "Refuse", "Unscored"]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    by_level: dict[int | None, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for pid in common:
        b, f = base[pid], final[pid]
        bv, fv = str(b.get("verdict") or "Unscored"), str(f.get("verdict") or "Unscored")
        counts[(bv, fv)] += 1
        if bv == fv:
            continue
        level = harm_level(b.get("harm_level", f.get("harm_level")))
        bs, fs = _score(b), _score(f)
        delta = fs - bs if bs is not None and fs is not None else None
        what, prio, cls = _describe(level, bv, fv, delta)
        btext, bcut = truncate(b.get("response"))
        ftext, fcut = truncate(f.get("response"))
        ptext, pcut = truncate(b.get("prompt", f.get("prompt")))
        principle = b.get("principle")
        item = {
            "prompt_id": pid,
            "level": DASH if level is None else str(level),
            "level_label": level_label(level) if level is not None else "unknown harm level",
            "principle": PRINCIPLES.get(str(principle), str(principle or DASH)),
            "method": str(b.get("method") or DASH),
            "prompt": ptext,
            "prompt_cut": pcut,
            "base_response": btext,
            "base_cut": bcut,
            "base_verdict": bv,
            "base_score": fmt_value(bs),
            "final_response": ftext,
            "final_cut": fcut,
            "final_verdict": fv,
            "final_score": fmt_value(fs),
            "what": what,
            "cls": cls,
        }
        by_level[level].append((prio, pid, item))
    order = [lv for lv in (3, 2, 0, 1) if lv in by_level] + sorted(
        (lv for lv in by_level if lv not in (0, 1, 2, 3)), key=lambda v: (v is None, v or 0)
    )
    for lv in order:
        by_level[lv].sort(key=lambda t: (t[0], t[1]))
    picked: list[tuple[int, int, dict[str, Any]]] = []
    queues = {lv: list(by_level[lv]) for lv in order}
    while len(picked) < limit and any(queues.values()):
        for rank, lv in enumerate(order):
            if queues[lv] and len(picked) < limit:
                prio, _, item = queues[lv].pop(0)
                picked.append((rank, prio, item))
    picked.sort(key=lambda t: (t[0], t[1]))
    present = [v for v in verdicts if any(counts.get((v, x)) or counts.get((x, v)) for x in verdicts)]
    transitions = {
        "verdicts": present,
        "rows": [(bv, [counts.get((bv, fv), 0) for fv in present]) for bv in present],
    }
    return {
        "examples": [t[2] for t in picked],
        "matched": len(common),
        "changed": sum(len(v) for v in by_level.values()),
        "transitions": transitions if present else None,
    }
