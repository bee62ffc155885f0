"""Errors a user can act on. The CLI prints them without a traceback."""

from __future__ import annotations

from pathlib import Path


class CarealignError(Exception):
    """Base class of every error carealign reports to a user."""


class DataError(CarealignError):
    """Bad input data: names the file, the row (1-based) and the field, and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        self.detail = message
        where = []
        if self.path:
            where.append(self.path)
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ModelError(CarealignError):
    """A model could not be found, loaded or reached."""


class JudgeError(CarealignError):
    """A judge specification is wrong or a judge cannot run."""


class ConfigError(CarealignError):
    """A configuration file or option is wrong."""
