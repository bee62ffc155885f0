"""Options shared by several commands (model, judge, safety policy), with help from the registries."""

from __future__ import annotations

from typing import Annotated

import typer

from carealign.judge.registry import judge_help

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
        help=judge_help(),
    ),
]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="Safety policy YAML (score table); default: CARES' table.")
]
