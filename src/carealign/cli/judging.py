"""``carealign judge``: judge responses; ``agree`` (judges vs each other and people), ``train`` (the fine-tuned
judge) and ``ablate`` (would another validator promote another policy?)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.cli.options import JudgeOpt, PolicyOpt
from carealign.errors import ConfigError
from carealign.evaluate import judge_rows
from carealign.generate.registry import load_generator
from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.judge import make_judge
from carealign.manifest import sha256_file
from carealign.score import load_policy

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


@judge_app.command("train")
@user_errors
def judge_train_cmd(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Labelled JSONL (prompt, response, verdict); repeatable.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the trained judge.")],
    name: Annotated[str, typer.Option(help="The judge's name (in its identity string).")] = "classifier",
    embeddings: Annotated[
        str, typer.Option(help="static (fast, MiniLM token embeddings) | contextual (MiniLM encoder, slow) | none.")
    ] = "static",
    epochs: Annotated[int, typer.Option(min=1)] = 25,
    hidden: Annotated[int, typer.Option(min=2)] = 32,
    seed: int = 0,
    calibration: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibration",
            help="Labelled JSONL to fit the confidence temperature on (responses like those the judge will see); "
            "default: a slice of --data held out by prompt. Repeatable.",
        ),
    ] = None,
    heldout: Annotated[
        Path | None, typer.Option("--heldout", help="Labelled JSONL never trained on: report accuracy on it.")
    ] = None,
) -> None:
    """Train the fine-tuned verdict classifier on labelled responses; use it as --judge classifier:DIR."""
    from carealign.classify import FeatureConfig, TrainSettings
    from carealign.judge.classifier import train_classifier_judge
    from carealign.judge.labelled import read_labelled
    from carealign.progress import stage_progress

    if embeddings not in ("static", "contextual", "none"):
        raise ConfigError(f"--embeddings {embeddings!r}; expected static, contextual or none")
    rows = read_labelled(data)
    cal_rows = read_labelled(calibration) if calibration else None
    sources = [f"{p.name} sha256:{sha256_file(p)[:16]}" for p in data]
    sources += [f"calibration {p.name} sha256:{sha256_file(p)[:16]}" for p in calibration or []]
    console.print(f"training on {len(rows)} labelled rows from {len(data)} file(s)")
    settings = TrainSettings(epochs=epochs, hidden=hidden, seed=seed)
    with stage_progress("train classifier", epochs, unit="epochs", console=console) as bar:
        judge = train_classifier_judge(
            rows,
            out,
            name=name,
            settings=settings,
            features=FeatureConfig(embeddings=embeddings),  # type: ignore[arg-type]
            sources=sources,
            calibration_rows=cal_rows,
            progress=lambda e, n, loss: bar.advance(1),
        )
    rep = judge.model.report
    assert rep is not None
    console.print(
        f"wrote [bold]{out}[/] ({judge.identity}): train accuracy {rep.train_accuracy:.3f}, "
        f"calibration accuracy {rep.calibration_accuracy}, temperature {rep.temperature:.2f} "
        f"(calibration NLL {rep.calibration_nll_before} -> {rep.calibration_nll_after}), {rep.seconds:.0f} s"
    )
    if heldout is not None:
        from carealign.judge_eval.accuracy import judge_accuracy

        res = judge_accuracy(judge, read_labelled(heldout), source=str(heldout))
        table = Table(title=f"held-out accuracy on {heldout.name} ({res['rows']} rows)")
        for col in ("accuracy", "macro_f1", "recall Accept", "recall Caution", "recall Refuse", "ECE"):
            table.add_column(col, justify="right")
        rec = res["per_class_recall"]
        recalls = [f"{rec[k]:.3f}" for k in ("Accept", "Caution", "Refuse")]
        table.add_row(f"{res['accuracy']:.3f}", f"{res['macro_f1']:.3f}", *recalls, f"{res['ece']:.3f}")
        console.print(table)


@judge_app.command("ablate")
@user_errors
def judge_ablate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished (or stopped) `carealign align` run directory.")],
    validators: Annotated[
        str,
        typer.Option("--validators", "-V", help="Comma-separated validator judge specs, e.g. rules,classifier,self."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report JSON (default RUN_DIR/ablation.json).")
    ] = None,
) -> None:
    """Re-run each cycle's selection with each validator on the stored candidates: where does the promotion change?"""
    from carealign.io import write_json_atomic
    from carealign.judge_eval.ablate import ablate_validators

    sep = ";" if ";" in validators else ","
    specs = [v.strip() for v in validators.split(sep) if v.strip()]
    report = ablate_validators(run_dir, specs, console=console)
    target = out or run_dir / "ablation.json"
    write_json_atomic(target, report)
    table = Table(title=f"validator ablation of {run_dir}")
    table.add_column("cycle", justify="right")
    table.add_column("run's choice")
    for spec in specs:
        table.add_column(spec)
    for c in report["cycles"]:
        cells = []
        for spec in specs:
            e = c["by_validator"][spec]
            mark = "" if e["promoted"] == c["original"]["promoted"] else " [bold yellow](changed)[/]"
            scores = ", ".join(f"{n} {v:.2f}" for n, v in e["safety_score"].items() if v is not None)
            cells.append(f"{e['promoted']}{mark}\n[dim]{scores}[/]")
        table.add_row(str(c["cycle"]), f"{c['original']['promoted']} ({c['original']['validator']})", *cells)
    console.print(table)
    changed = sum(len(c["changes"]) for c in report["cycles"])
    console.print(f"wrote [bold]{target}[/]: {changed} validator/cycle combination(s) change the promoted policy")
