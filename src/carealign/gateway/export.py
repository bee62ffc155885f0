"""Feeding the next cycle: the logged traffic as training prompts.

Prompts are the last user turn of each exchange, deduplicated (whitespace and case folded). Each
carries a harm level and where it came from: ``reviewer`` where a person set it (on the gateway's
admin page, :func:`set_reviewed_harm_level`), else ``estimated`` (the harm-level estimator's, from
judging; prompts not judged yet are estimated at export). The rows load with
:func:`carealign.data.load_prompts` (a JSONL file, or ``gateway:DB`` directly) and so serve as an
alignment run's ``train_prompts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carealign.errors import DataError
from carealign.gateway.models import Exchange
from carealign.io import write_jsonl_atomic
from carealign.review.audit import Actor, record
from carealign.review.errors import InvalidInput, NotFound
from carealign.review.models import Item, Prompt


def parse_since(value: str | date | datetime | None, *, where: str = "since") -> datetime | None:
    """A ``since`` bound: an ISO date (midnight UTC) or date-time; None for no bound."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise DataError(f"{value!r} is not a date; expected YYYY-MM-DD or an ISO date-time", field=where) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class _Agg:
    prompt: str
    first: datetime
    last: datetime
    n: int
    groups: set[str]
    reviewed: int | None
    estimated: int | None
    confidence: float | None
    model: str | None


def export_rows(
    db: Session,
    *,
    since: str | date | datetime | None = None,
    group: str | None = None,
    estimate_missing: bool = True,
) -> list[dict[str, Any]]:
    """One row per distinct prompt of the exchanges since ``since`` (of ``group``), oldest first."""
    q = select(Exchange).order_by(Exchange.id)
    bound = parse_since(since)
    if bound is not None:
        q = q.where(Exchange.created_at >= bound)
    if group is not None:
        q = q.where(Exchange.group_name == group)
    found: dict[str, _Agg] = {}
    for ex in db.scalars(q.execution_options(yield_per=1000)):
        if not ex.prompt.strip():
            continue
        agg = found.get(ex.prompt_sha256)
        if agg is None:
            agg = found[ex.prompt_sha256] = _Agg(
                ex.prompt, ex.created_at, ex.created_at, 0, set(), None, None, None, None
            )
        agg.n += 1
        agg.last = ex.created_at
        if ex.group_name:
            agg.groups.add(ex.group_name)
        if ex.reviewed_harm_level is not None:
            agg.reviewed = ex.reviewed_harm_level
        if ex.harm_level is not None:
            agg.estimated, agg.confidence, agg.model = ex.harm_level, ex.harm_confidence, ex.harm_model
    missing = [a for a in found.values() if a.reviewed is None and a.estimated is None]
    if missing and estimate_missing:
        from carealign.harm import HarmEstimator

        estimator = HarmEstimator.load()
        for a, (level, conf, _) in zip(missing, estimator.predict([a.prompt for a in missing]), strict=True):
            a.estimated, a.confidence, a.model = level, round(conf, 4), estimator.identity
    rows = []
    for digest, a in found.items():
        source = "reviewer" if a.reviewed is not None else ("estimated" if a.estimated is not None else None)
        rows.append(
            {
                "id": f"gateway-{digest[:16]}",
                "prompt": a.prompt,
                "harm_level": a.reviewed if a.reviewed is not None else a.estimated,
                "harm_level_source": source,
                "harm_level_confidence": None if a.reviewed is not None else a.confidence,
                "harm_level_model": None if a.reviewed is not None else a.model,
                "exchanges": a.n,
                "first_seen": a.first.isoformat(),
                "last_seen": a.last.isoformat(),
                "groups": sorted(a.groups),
                "source": "gateway",
            }
        )
    return rows


def export_to_file(
    db: Session, out: str | Path, *, since: str | date | datetime | None = None, group: str | None = None
) -> int:
    """Write :func:`export_rows` to a JSONL file atomically; the number of rows."""
    return write_jsonl_atomic(out, export_rows(db, since=since, group=group))


def iter_prompt_records(rows: list[dict[str, Any]]) -> Iterator[Any]:
    """The export rows as :class:`~carealign.data.PromptRecord` (for ``load_prompts('gateway:...')``)."""
    from carealign.data.records import PromptRecord

    for r in rows:
        yield PromptRecord(id=r["id"], prompt=r["prompt"], harm_level=r["harm_level"], source="gateway")


def set_reviewed_harm_level(db: Session, exchange_id: int, level: int | None, actor: Actor) -> int:
    """A person's harm level for an exchange's prompt: set on every exchange with the same prompt
    and on the review prompt it was routed to. Audited; the number of exchanges changed. Flushes."""
    if level is not None and level not in (0, 1, 2, 3):
        raise InvalidInput(f"harm level {level!r}: expected 0, 1, 2 or 3")
    ex = db.get(Exchange, exchange_id)
    if ex is None:
        raise NotFound(f"no exchange {exchange_id}")
    old = ex.reviewed_harm_level
    n = db.execute(  # type: ignore[attr-defined]
        update(Exchange)
        .where(Exchange.prompt_sha256 == ex.prompt_sha256)
        .values(reviewed_harm_level=level)
        .execution_options(synchronize_session=False)
    ).rowcount
    prompt_ids = set(
        db.scalars(
            select(Item.prompt_id)
            .join(Exchange, Exchange.review_item_id == Item.id)
            .where(Exchange.prompt_sha256 == ex.prompt_sha256)
        )
    )
    for pid in prompt_ids:
        p = db.get(Prompt, pid)
        if p is not None and level is not None:
            p.harm_level = level
    record(
        db,
        actor,
        "gateway.harm_level",
        target=f"exchange:{ex.request_id}",
        old={"harm_level": old},
        new={"harm_level": level, "exchanges": int(n or 0)},
    )
    db.flush()
    return int(n or 0)
