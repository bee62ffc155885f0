"""The ``carealign`` command line."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from carealign.errors import CarealignError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)

app = typer.Typer(
    name="carealign",
    help="Make a healthcare LLM assistant safer without making it useless: evaluate, judge, align.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def user_errors(fn: F) -> F:
    """Print carealign errors (bad files, options, models) as one red line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CarealignError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; finished stages are saved, run the same command to resume[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    """Entry point of the ``carealign`` script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from carealign.cli import commands  # noqa: F401  (registers every command group)

    app(prog_name="carealign")


if __name__ == "__main__":  # pragma: no cover
    main()
