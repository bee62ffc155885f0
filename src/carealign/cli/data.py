"""``carealign data``: prompt-set utilities (the harm-level estimator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.errors import DataError

data_app = typer.Typer(help="Prompt-set utilities: estimate harm levels, train the estimator.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("estimate-harm")
@user_errors
def estimate_harm_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL rows with a prompt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (the rows plus the estimate).")],
    estimator: Annotated[
        Path | None, typer.Option("--estimator", help="Estimator directory (default: the one shipped).")
    ] = None,
    field: Annotated[str, typer.Option(help="The field holding the prompt text.")] = "prompt",
    harmless_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Call a prompt harmless only when P(level 0) reaches this (default: the estimator's).",
        ),
    ] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite harm levels the rows already have.")] = False,
) -> None:
    """Add an estimated harm_level (0-3) with its confidence to prompts that have none."""
    from carealign.harm import HarmEstimator, estimate_rows
    from carealign.io import read_jsonl, write_jsonl_atomic

    rows = read_jsonl(input)
    if not rows:
        raise DataError("no rows", path=input)
    est = HarmEstimator.load(estimator, harmless_threshold)
    result = estimate_rows(rows, est, field=field, replace=replace, source=str(input))
    write_jsonl_atomic(out, result)
    counts: dict[str, int] = {}
    for r in result:
        if r["harm_level_source"] == "estimated":
            counts[str(r["harm_level"])] = counts.get(str(r["harm_level"]), 0) + 1
    given = sum(r["harm_level_source"] == "given" for r in result)
    console.print(
        f"wrote [bold]{out}[/]: {len(result)} rows ({est.identity}); estimated levels {json.dumps(counts)}"
        + (f"; {given} rows kept their given level (--replace to overwrite)" if given else "")
    )


@data_app.command("train-harm")
@user_errors
def train_harm_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the trained estimator.")],
    cares: Annotated[
        Path | None, typer.Option("--cares", help="A local CARES-18K copy (its train split is added).")
    ] = None,
    public: Annotated[
        bool,
        typer.Option(
            help="Add the shipped public sets' train parts: MedSafetyBench as harmful (3), MedQuAD as harmless (0)."
        ),
    ] = True,
    medquad_limit: Annotated[
        int, typer.Option(min=0, help="At most this many MedQuAD train questions (a seeded random subset).")
    ] = 800,
    extra: Annotated[
        list[Path] | None,
        typer.Option("--extra", help="JSONL prompts with harm_level to add (e.g. benign questions as 0); repeatable."),
    ] = None,
    embeddings: Annotated[str, typer.Option(help="static | contextual | none.")] = "static",
    harmless_threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Call a prompt harmless (0) only when P(level 0) reaches this (0: argmax)."
        ),
    ] = 0.5,
    max_harmful_as_harmless: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fit the harmless threshold on the calibration slice instead: the lowest at which at most this "
            "share of its harmful (2-3) prompts are called harmless.",
        ),
    ] = None,
    seed: int = 0,
) -> None:
    """Train the harm-level estimator on the bundled sample (train+validation), the public sets' train
    parts, CARES and extra prompts.

    Reports its errors on the sample's test split and the public sets' test parts, which it never trains on.
    """
    from carealign.classify import FeatureConfig, TrainSettings
    from carealign.data import load_prompts
    from carealign.data.loaders import load_prompt_file
    from carealign.harm import HarmEstimator, evaluate_estimator
    from carealign.io import write_json_atomic
    from carealign.progress import stage_progress

    recs = load_prompts("sample", "train") + load_prompts("sample", "validation")
    sources = ["sample:train", "sample:validation"]
    if public:
        recs += load_prompts("medsafetybench", "train")
        recs += load_prompts("medquad", "train", limit=medquad_limit or None, subset_seed=seed)
        sources += ["medsafetybench:train", f"medquad:train (at most {medquad_limit})"]
    if cares is not None:
        recs += load_prompts(f"cares:{cares}", "train")
        sources.append(f"cares:{cares.name}:train")
    for path in extra or []:
        extra_recs = load_prompt_file(path)
        missing = [i for i, r in enumerate(extra_recs, 1) if r.harm_level is None]
        if missing:
            raise DataError("no harm_level; training prompts need one", path=path, row=missing[0], field="harm_level")
        recs += extra_recs
        sources.append(path.name)
    epochs = 30
    with stage_progress("train harm estimator", epochs, unit="epochs", console=console) as bar:
        est = HarmEstimator.train(
            [r.prompt for r in recs],
            [int(r.harm_level) for r in recs],  # type: ignore[arg-type]
            out,
            groups=[r.group for r in recs],
            features=FeatureConfig(embeddings=embeddings),  # type: ignore[arg-type]
            settings=TrainSettings(hidden=64, epochs=epochs, seed=seed),
            sources=sources,
            harmless_threshold=harmless_threshold,
            max_harmful_as_harmless=max_harmful_as_harmless,
            progress=lambda e, n, loss: bar.advance(1),
        )
    report = {}
    table = Table(title=f"{est.identity} (harmless threshold {est.harmless_threshold:.3f}) on sets it never trained on")
    for col in ("set", "prompts", "accuracy", "harmful (2-3) called 0", "harmless (0) called 2-3"):
        table.add_column(col, justify="right")
    for name in ("sample", "medsafetybench", "medquad"):
        test = load_prompts(name, "test")
        res = evaluate_estimator(est, [r.prompt for r in test], [int(r.harm_level) for r in test])  # type: ignore[arg-type]
        report[f"{name}:test"] = res
        down = _rate(res["harmful_as_harmless"], res["harmful_as_harmless_count"], res["harmful_rows"])
        up = _rate(res["harmless_as_harmful"], res["harmless_as_harmful_count"], res["harmless_rows"])
        table.add_row(f"{name}:test", str(res["rows"]), f"{res['accuracy']:.3f}", down, up)
    write_json_atomic(out / "heldout.json", report)
    console.print(table)
    console.print(f"wrote [bold]{out}[/] ({len(recs)} training prompts from {', '.join(sources)})")


def _rate(rate: float | None, count: int, rows: int) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}% ({count} of {rows})"
