"""``carealign judge train`` and ``carealign judge ablate``: the fine-tuned judge and the validator ablation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import console, user_errors
from carealign.cli.commands import judge_app
from carealign.errors import ConfigError
from carealign.manifest import sha256_file


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
