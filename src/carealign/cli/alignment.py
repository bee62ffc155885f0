"""``carealign align``, ``carealign demo`` and ``carealign report``: the alignment loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carealign.cli import app, console, user_errors
from carealign.errors import CarealignError


@app.command("align")
@user_errors
def align_cmd(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config YAML (see --init).")] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Write a commented default config here and exit.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Resume the run in this directory.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (overrides output_dir).")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Delete an existing run with another config in the directory.")
    ] = False,
) -> None:
    """Run the alignment loop: generate, judge, build DPO/KTO preferences, train LoRA candidates,
    validate, promote; cycle after cycle. Every stage is saved; --resume continues a stopped run."""
    from carealign.align import AlignmentRun, default_config_yaml, load_config
    from carealign.io import write_text_atomic

    if init is not None:
        if init.exists() and not overwrite:
            raise CarealignError(f"{init} exists; pass --overwrite to replace it")
        write_text_atomic(init, default_config_yaml())
        console.print(f"wrote the default config to [bold]{init}[/]; run it with carealign align --config {init}")
        return
    if resume is not None:
        run = AlignmentRun.resume(resume, console=console)
    elif config is not None:
        run = AlignmentRun.start(load_config(config), out, overwrite=overwrite, console=console)
    else:
        raise CarealignError("give --config FILE (or --init FILE to write one, or --resume DIR)")
    result = run.run()
    console.print(
        f"run [bold]{result.run_dir}[/]: {result.cycles_done} cycle(s), promotions {result.promotions}; "
        f"final policy {result.final_policy}" + (f"; stopped: {result.stopped}" if result.stopped else "")
    )
    console.print(f"evaluate it with: carealign eval --model {result.run_dir} --prompts sample --split test --out ...")


@app.command("report")
@user_errors
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="An alignment run directory.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default RUN_DIR/report.html).")] = None,
) -> None:
    """Rebuild the HTML report of an alignment run."""
    from carealign.report import build_report

    path = build_report(run_dir, out=out)
    console.print(f"wrote [bold]{path}[/]")


@app.command("demo")
@user_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    test_limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N test prompts.")] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of sampling, training and evaluation (default: the run config's, 0)."),
    ] = None,
) -> None:
    """Align the bundled model (smollm2-135m) on the bundled sample's train/validation splits for two
    cycles, then evaluate base and final policies on the test split and write an HTML report."""
    from carealign.align.demo import demo_config, run_demo

    config = demo_config(out, None if seed is None else {"seed": seed})
    result = run_demo(out, config=config, console=console, test_limit=test_limit)
    console.print(f"demo finished; run directory [bold]{out}[/], report [bold]{result.report}[/]")
