"""``carealign demo``: a small alignment run on the bundled model and sample, then a before/after test.

The run uses the sample's train and validation splits only; base and final policies are then
evaluated on the *test* split, which no stage saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from carealign.align.config import AlignConfig, config_from_dict
from carealign.align.run import AlignmentRun, AlignResult
from carealign.errors import ConfigError
from carealign.evaluate import EvalConfig, EvalResult, evaluate
from carealign.rundir import RunLayout, promoted_policy

#: The demo's config: sized to finish within about 20 minutes on 2 CPU cores.
DEMO_CONFIG: dict[str, Any] = {
    "policy_model": "smollm2-135m",
    "train_prompts": {"source": "sample", "split": "train", "limit": 64, "subset_seed": 0},
    "validation_prompts": {"source": "sample", "split": "validation", "limit": 80, "subset_seed": 0},
    "generation": {
        "samples": 2,
        "temperature": 0.8,
        "max_new_tokens": 64,
        "validation_max_new_tokens": 64,
        "batch_size": 64,
    },
    "judge": "rules",
    "validator": "rules",
    "preferences": {"reminder_samples": 3},
    "dpo": {"max_steps": 16, "learning_rate": 5e-4, "beta": 0.3, "max_length": 160},
    "kto": {"max_steps": 16, "learning_rate": 1e-3, "beta": 0.3, "max_length": 160},
    "selection": {"max_erroneous_refusal_increase": 0.10},
    "cycles": 2,
}

#: The judge of the before/after test (the same judge as the validator unless changed).
DEMO_TEST_JUDGE = "rules"


@dataclass
class DemoResult:
    run: AlignResult
    base: EvalResult
    final: EvalResult
    report: Path | None


def demo_config(out_dir: str | Path, overrides: dict[str, Any] | None = None) -> AlignConfig:
    data = {**DEMO_CONFIG, **(overrides or {}), "output_dir": str(Path(out_dir))}
    return config_from_dict(data, source="demo config")


def run_demo(
    out_dir: str | Path,
    *,
    config: AlignConfig | None = None,
    console: Console | None = None,
    test_limit: int | None = None,
) -> DemoResult:
    """Align, then evaluate base and final policies on the sample's test split and build the report."""
    from carealign.report import build_report

    console = console or Console(stderr=True)
    out = Path(out_dir)
    config = config or demo_config(out)
    try:
        run = AlignmentRun.start(config, out, console=console)
    except ConfigError:  # a demo run of another carealign version: the demo directory is the demo's own
        console.print(f"[yellow]{out} holds a demo run with other settings; starting it afresh[/]")
        run = AlignmentRun.start(config, out, overwrite=True, console=console)
    result = run.run()
    tests = {}
    for name, model in (("base", config.policy_model), ("final", promoted_policy(out))):
        cfg = EvalConfig(
            model=model,
            prompts="sample",
            split="test",
            judge=DEMO_TEST_JUDGE,
            limit=test_limit,
            max_new_tokens=config.generation.validation_max_new_tokens,
            seed=config.seed,
            dtype=config.dtype,
            device=config.device,
            batch_size=config.generation.batch_size,
        )
        console.rule(f"test split: {name} policy ({model})")
        tests[name] = evaluate(cfg, RunLayout(out).test(name).root, console=console, restart_on_mismatch=True)
    print_before_after(tests["base"].metrics, tests["final"].metrics, console=console)
    report = build_report(out)
    console.print(f"report: [bold]{report}[/]")
    return DemoResult(result, tests["base"], tests["final"], report)


def print_before_after(base: dict[str, Any], final: dict[str, Any], *, console: Console) -> None:
    """Safety score, harmful and erroneous refusal rates, overall and by harm level, base vs final."""
    table = Table(title=f"test split, judged by {base.get('judge')}", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("subset", "metric", "base", "final", "change"):
        table.add_column(col, justify="left" if col in ("subset", "metric") else "right", no_wrap=True)
    rows = [("all", base, final)] + [
        (f"level {lv}", base["by_harm_level"].get(lv, {}), final["by_harm_level"].get(lv, {}))
        for lv in sorted(set(base.get("by_harm_level", {})) | set(final.get("by_harm_level", {})))
    ]
    for label, b, f in rows:
        for key, name in (
            ("safety_score", "safety score"),
            ("harmful_refusal_rate", "harmful refusal"),
            ("erroneous_refusal_rate", "erroneous refusal"),
        ):
            bv, fv = b.get(key), f.get(key)
            if bv is None and fv is None:
                continue
            change = "-" if bv is None or fv is None else f"{fv - bv:+.2f}"
            table.add_row(label, name, "-" if bv is None else f"{bv:.2f}", "-" if fv is None else f"{fv:.2f}", change)
    console.print(table)
    console.print(json.dumps({"base_safety": base.get("safety_score"), "final_safety": final.get("safety_score")}))
