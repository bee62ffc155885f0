"""Validator ablation: would another validator have promoted another policy?

For every finished cycle of an alignment run, the stored validation responses of the current
policy and of each candidate (DPO, KTO) are judged again by each validator, and the run's
selection rule is applied again. Nothing is regenerated: the candidates are exactly the ones
the run trained. Self-judging validators (``self``/``llm``) load each candidate's model, so each
policy judges its own responses, as it would have in the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from carealign.errors import ConfigError
from carealign.evaluate import judge_rows, strip_judgements
from carealign.io import read_jsonl
from carealign.judge.registry import check_judge_spec, is_self_judge
from carealign.rundir import CANDIDATES, RunLayout, read_selection, read_train_record
from carealign.score.metrics import compute_metrics
from carealign.select import select


def ablate_validators(
    run_dir: str | Path,
    validators: Sequence[str],
    *,
    console: Console | None = None,
) -> dict[str, Any]:
    """Re-run each finished cycle's selection with each validator; report where the promoted policy changes.

    Returns ``{"run": ..., "validators": [...], "cycles": [{"cycle", "original": {...},
    "by_validator": {spec: {"promoted", "reason", "safety": {name: score}}}, "changes": [...]}]}``.
    """
    from carealign.align.run import AlignmentRun

    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    if not validators:
        raise ConfigError("name at least one validator (--validators rules,classifier,...)")
    for spec in validators:
        check_judge_spec(spec)
    if not layout.manifest.exists():
        raise ConfigError(f"{run_dir} is not an alignment run directory (no manifest.json)")
    run = AlignmentRun.resume(run_dir, console=console)
    cfg = run.config
    cycles = [n for n in layout.cycle_numbers() if layout.cycle(n).selection.exists()]
    if not cycles:
        raise ConfigError(f"{run_dir} has no finished cycle (no cycle_N/selection.json)")
    report: dict[str, Any] = {"run": str(run_dir), "validators": list(validators), "cycles": []}
    for cycle in cycles:
        cl = layout.cycle(cycle)
        original = read_selection(cl.selection)
        names = ["current"] + [m for m in CANDIDATES if cl.validation(m).responses.exists()]
        stored = {n: read_jsonl(cl.validation(n).responses) for n in names}
        policy_spec = original.policy or cfg.policy_model
        start_path = (
            str(layout.resolve(policy_spec)) if layout.resolve(policy_spec).exists() else run.manifest.base_policy
        )
        entry: dict[str, Any] = {
            "cycle": cycle,
            "original": {"validator": original.validator, "promoted": original.promoted},
            "by_validator": {},
        }
        for spec in validators:
            judged: dict[str, list[dict[str, Any]]] = {}
            for name in names:
                if is_self_judge(spec):
                    adapter = None
                    if name != "current":
                        record = read_train_record(cl.train_record(name))
                        adapter = layout.resolve(record.adapter) if record.adapter else None
                    gen = run.load_generator(start_path, cl.stage(name), adapter)
                    judge = run.judge(spec, gen)
                else:
                    judge = run.judge(spec, None)
                judged[name] = judge_rows(strip_judgements(stored[name]), judge, run.policy, console=console)
            metrics = {n: compute_metrics(rows, n_resamples=200, seed=cfg.seed) for n, rows in judged.items()}
            rule = cfg.selection.model_copy(update={"seed": cfg.selection.seed + cfg.seed + cycle})
            cands = {n: judged[n] for n in names if n != "current"}
            selection = select(
                judged["current"],
                cands,
                rule,
                current_metrics=metrics["current"],
                candidate_metrics={n: metrics[n] for n in cands},
                validator=spec,
            )
            entry["by_validator"][spec] = {
                "promoted": selection.promoted,
                "reason": selection.reason,
                "judge": judged["current"][0]["judge"] if judged["current"] else spec,
                "safety_score": {n: metrics[n]["safety_score"] for n in names},
                "erroneous_refusal_rate": {n: metrics[n]["erroneous_refusal_rate"] for n in names},
            }
        promoted = {v: e["promoted"] for v, e in entry["by_validator"].items()}
        entry["changes"] = [
            f"{v} promotes {p} where the run's validator ({original.validator}) promoted {original.promoted}"
            for v, p in promoted.items()
            if p != original.promoted
        ]
        entry["validators_disagree"] = len(set(promoted.values())) > 1
        report["cycles"].append(entry)
    return report
