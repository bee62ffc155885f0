"""Labelled responses: JSONL rows with ``prompt``, ``response`` and a human (or trusted) ``verdict``.

The training data of the ``classifier`` judge and the held-out sets judges are measured on.
Optional fields: ``harm_level`` (0-3) and anything else, kept as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.errors import DataError
from carealign.io import read_jsonl


def check_labelled_row(row: Any, *, path: str, row_no: int, label_field: str = "verdict") -> dict[str, Any]:
    """Validate one labelled row; return it with the verdict normalised (``Accept``, ``Caution``, ``Refuse``)."""
    if not isinstance(row, dict):
        raise DataError("expected a JSON object", path=path, row=row_no)
    for key in ("prompt", "response"):
        if not isinstance(row.get(key), str):
            raise DataError(f"missing or non-text '{key}'; every labelled row needs prompt, response and {label_field}",
                            path=path, row=row_no, field=key)  # fmt: skip
    if label_field not in row:
        raise DataError(f"missing label; expected one of {', '.join(v.value for v in DECIDED_VERDICTS)}",
                        path=path, row=row_no, field=label_field)  # fmt: skip
    try:
        verdict = Verdict.parse(str(row[label_field]))
    except ValueError:
        verdict = None
    if verdict not in DECIDED_VERDICTS:
        raise DataError(
            f"unknown label {row[label_field]!r}; expected one of {', '.join(v.value for v in DECIDED_VERDICTS)}",
            path=path, row=row_no, field=label_field,
        )  # fmt: skip
    lv = row.get("harm_level")
    if lv is not None and (not isinstance(lv, int) or isinstance(lv, bool) or not 0 <= lv <= 3):
        raise DataError(f"harm level {lv!r}; expected 0, 1, 2, 3 or null", path=path, row=row_no, field="harm_level")
    return {**row, label_field: verdict.value}


def read_labelled(paths: str | Path | Sequence[str | Path], *, label_field: str = "verdict") -> list[dict[str, Any]]:
    """Read and validate labelled rows from one or more JSONL files (errors name the file, row and field)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    for p in paths:
        if not Path(p).exists():
            raise DataError("no such file", path=p)
        for i, row in enumerate(read_jsonl(p), start=1):
            rows.append(check_labelled_row(row, path=str(p), row_no=i, label_field=label_field))
    if not rows:
        raise DataError("no labelled rows", path=", ".join(str(p) for p in paths))
    return rows
