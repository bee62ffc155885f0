"""The ``gateway:`` prompt source: what a gateway's users asked, as training prompts.

A spec is ``gateway:DB`` with optional filters after ``#``: ``gateway:review.db#since=2026-11-01&group=clinicians``
(``DB`` a SQLite path or a database URL, as ``carealign gateway export --db`` takes). An alignment
run config writes it as ``train_prompts: {source: gateway, db: URL, since: DATE, group: G}``
(:func:`gateway_source_spec` turns that into the spec).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from carealign.data.records import PromptRecord
from carealign.errors import DataError

PREFIX = "gateway:"
_FILTERS = ("since", "group")


def gateway_source_spec(db: str, since: str | None = None, group: str | None = None) -> str:
    """The ``gateway:`` spec of a database and filters (``ValueError`` for a missing or unusable database,
    so that a run config names the key)."""
    if not db or not str(db).strip():
        raise ValueError("a gateway prompt source needs the database: add db: URL-or-path")
    if "#" in str(db):
        raise ValueError(f"database {db!r} may not contain '#'")
    filters = {k: str(v) for k, v in (("since", since), ("group", group)) if v not in (None, "")}
    return PREFIX + str(db) + (f"#{urlencode(filters)}" if filters else "")


def parse_gateway_spec(spec: str) -> tuple[str, dict[str, str]]:
    """(database, filters) of a ``gateway:`` spec."""
    body = spec.removeprefix(PREFIX)
    db, _, query = body.partition("#")
    filters = dict(parse_qsl(query, keep_blank_values=False)) if query else {}
    unknown = sorted(set(filters) - set(_FILTERS))
    if unknown:
        raise DataError(f"{spec!r}: unknown filter(s) {', '.join(unknown)}; expected since=DATE, group=NAME")
    if not db:
        raise DataError(f"{spec!r}: no database; write gateway:DB[#since=DATE&group=NAME]")
    return db, filters


def load_gateway_prompts(spec: str) -> list[PromptRecord]:
    """Deduplicated prompts of a gateway's exchange log (see :mod:`carealign.gateway.export`)."""
    from carealign.gateway.export import export_rows, iter_prompt_records
    from carealign.review.db import open_database

    db, filters = parse_gateway_spec(spec)
    engine, sessions = open_database(db, migrate=False)
    try:
        with sessions() as s:
            rows = export_rows(s, since=filters.get("since"), group=filters.get("group"))
    finally:
        engine.dispose()
    return list(iter_prompt_records(rows))
