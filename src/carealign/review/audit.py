"""The audit log: every change is recorded in the same transaction as the change itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from carealign.review.models import AuditEntry, User, utcnow


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a logged-in user, or a command-line operator (``cli:<os user>``)."""

    name: str
    user_id: int | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.name, user.id)

    @classmethod
    def cli(cls) -> Actor:
        import getpass

        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # pragma: no cover - no user name in this environment
            who = "unknown"
        return cls(f"cli:{who}")


def record(
    db: Session,
    actor: Actor,
    action: str,
    *,
    item_id: int | None = None,
    target: str | None = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    note: str | None = None,
) -> AuditEntry:
    """Add an audit entry to the session (committed with the change it describes)."""
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor.user_id,
        actor=actor.name,
        action=action,
        item_id=item_id,
        target=target,
        old_value=old,
        new_value=new,
        note=note or None,
    )
    db.add(entry)
    return entry


def audit_query(
    *, item_id: int | None = None, actor: str | None = None, action: str | None = None
) -> Select[AuditEntry]:
    """Audit entries, newest first, filtered by item, actor name and action (prefix, e.g. ``review``)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc())
    if item_id is not None:
        q = q.where(AuditEntry.item_id == item_id)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action.startswith(action, autoescape=True))
    return q


def entry_row(entry: AuditEntry) -> dict[str, Any]:
    """An audit entry as a JSON-friendly row."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "item_id": entry.item_id,
        "target": entry.target,
        "old": entry.old_value,
        "new": entry.new_value,
        "note": entry.note,
    }


def iter_audit_rows(db: Session, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every matching audit entry, oldest first, as rows (for export)."""
    q = audit_query(**filters).order_by(None).order_by(AuditEntry.id)
    for entry in db.scalars(q.execution_options(yield_per=500)):
        yield entry_row(entry)
