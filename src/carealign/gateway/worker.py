"""The judging worker: takes exchanges from the persisted queue, assesses them, routes the risky ones.

Tasks are claimed for a lease (``claimed_until``), assessed in batches, and deleted in the same
transaction that writes the assessment onto the exchange; so an exchange whose worker crashed
keeps its task and is judged by the next worker once the lease has run out (a new worker in the
same database releases leases of workers that are gone at start: :func:`release_stale_claims`).
Runs as a thread inside ``carealign gateway serve`` or alone (``carealign gateway work``).

Inside the serving process the worker judges when the model is idle (``idle_gate``): on a small
machine judging takes the CPU that the next generation needs, so while requests are in flight it
waits, unless the backlog has reached ``max_backlog`` tasks or its oldest task has waited
``max_delay_s`` seconds (then it judges, oldest first, until neither holds). The queue is the
same persisted table either way, so what a crash leaves is judged after the restart.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from carealign.gateway.assess import Assessor
from carealign.gateway.exchanges import apply_assessment
from carealign.gateway.models import Exchange, JudgeTask
from carealign.gateway.routing import route_exchange
from carealign.review.models import utcnow

log = logging.getLogger("carealign.gateway")

#: Attempts after which a task that keeps failing is left alone (its error stays on it).
MAX_ATTEMPTS = 5


def release_stale_claims(sessions: Callable[[], Session], worker_ids: set[str] | None = None) -> int:
    """Release every claim not held by ``worker_ids`` (call at start, when no other worker runs). Commits."""
    with sessions() as db:
        q = update(JudgeTask).where(JudgeTask.claimed_by.is_not(None))
        if worker_ids:
            q = q.where(JudgeTask.claimed_by.not_in(worker_ids))
        n = db.execute(q.values(claimed_by=None, claimed_until=None)).rowcount  # type: ignore[attr-defined]
        db.commit()
    return int(n or 0)


def pending_count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(JudgeTask)) or 0)


class IdleGate(Protocol):
    """What the worker asks before judging (:class:`carealign.gateway.serving.InFlight`)."""

    def busy(self) -> bool: ...

    def wait_idle(self, timeout: float) -> bool: ...


class HttpIdleGate:
    """The idle gate of a gateway in another process, read from its ``GET /health`` (``in_flight``):
    lets ``carealign gateway work --follow --when-idle URL`` judge only while that gateway is idle.
    A gateway that does not answer counts as idle (judging must not stop because serving did)."""

    def __init__(self, url: str, poll_seconds: float = 0.2) -> None:
        self.url = url
        self.poll = poll_seconds

    def busy(self) -> bool:
        import httpx

        try:
            return int(httpx.get(self.url, timeout=2.0).json().get("in_flight", 0)) > 0
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def wait_idle(self, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll)
        return True


class JudgingWorker:
    """Judges queued exchanges until stopped; :meth:`run_once` does one batch (for tests and ``work --once``)."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        assessor: Assessor,
        *,
        group: str | None,
        batch: int = 32,
        lease_seconds: float = 120.0,
        retention_days: float | None = None,
        idle_seconds: float = 0.5,
        idle_gate: IdleGate | None = None,
        max_backlog: int = 500,
        max_delay_s: float = 300.0,
        idle_batch: int = 8,
    ) -> None:
        self.sessions = sessions
        self.assessor = assessor
        self.group = group
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.idle_seconds = idle_seconds
        self.idle_gate = idle_gate
        self.max_backlog = max_backlog
        self.max_delay = timedelta(seconds=max_delay_s)
        self.idle_batch = max(1, min(idle_batch, batch))
        self.id = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.judged = 0
        self.routed = 0

    # ------------------------------------------------------------------ queue

    def overdue(self) -> bool:
        """Whether the backlog is too long or too old to wait for an idle model any longer."""
        with self.sessions() as db:
            n, oldest = db.execute(select(func.count(), func.min(JudgeTask.created_at))).one()
        return bool(n) and (n >= self.max_backlog or (oldest is not None and utcnow() - oldest >= self.max_delay))

    def batch_now(self) -> int | None:
        """How many exchanges to judge now: ``batch`` without an idle gate or when the backlog is
        overdue, a small batch (``idle_batch``) while the model is idle, so that a request arriving
        meanwhile waits little; None while requests are in flight and the backlog can wait."""
        gate = self.idle_gate
        if gate is None:
            return self.batch
        if not gate.busy():
            return self.idle_batch
        return self.batch if self.overdue() else None

    def claim(self, limit: int | None = None) -> list[int]:
        """Claim up to ``limit`` (default ``batch``) free tasks; the ids of their exchanges. Commits."""
        now = utcnow()
        with self.sessions() as db:
            free = or_(JudgeTask.claimed_until.is_(None), JudgeTask.claimed_until < now)
            ids = list(
                db.scalars(
                    select(JudgeTask.id)
                    .where(free, JudgeTask.attempts < MAX_ATTEMPTS)
                    .order_by(JudgeTask.id)
                    .limit(limit or self.batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                db.rollback()
                return []
            until = now + self.lease
            db.execute(
                update(JudgeTask)
                .where(JudgeTask.id.in_(ids), free)
                .values(claimed_by=self.id, claimed_until=until, attempts=JudgeTask.attempts + 1)
            )
            mine = list(
                db.scalars(select(JudgeTask.exchange_id).where(JudgeTask.id.in_(ids), JudgeTask.claimed_by == self.id))
            )
            db.commit()
        return mine

    def run_once(self, limit: int | None = None) -> int:
        """Judge one batch (of at most ``limit``, default ``batch``); how many exchanges were judged."""
        exchange_ids = self.claim(limit)
        if not exchange_ids:
            return 0
        with self.sessions() as db:
            rows = list(db.scalars(select(Exchange).where(Exchange.id.in_(exchange_ids)).order_by(Exchange.id)))
            pairs = [(r.prompt, r.original_response if r.original_response is not None else r.response) for r in rows]
        try:
            assessments = self.assessor.assess(pairs)
        except Exception as exc:  # keep the tasks, with the error, for the next attempt
            log.exception("judging failed")
            with self.sessions() as db:
                db.execute(
                    update(JudgeTask)
                    .where(JudgeTask.exchange_id.in_(exchange_ids), JudgeTask.claimed_by == self.id)
                    .values(claimed_by=None, claimed_until=None, last_error=f"{type(exc).__name__}: {exc}"[:2000])
                )
                db.commit()
            return 0
        routed = 0
        with self.sessions() as db:
            fresh = {r.id: r for r in db.scalars(select(Exchange).where(Exchange.id.in_([r.id for r in rows])))}
            for old, a in zip(rows, assessments, strict=True):
                row = fresh.get(old.id)
                if row is None or row.judged_at is not None:  # deleted, or judged by another worker meanwhile
                    continue
                apply_assessment(row, a)
                if a.route:
                    route_exchange(db, row, row.group_name or self.group or "clinicians")
                    routed += 1
            db.execute(delete(JudgeTask).where(JudgeTask.exchange_id.in_([r.id for r in rows])))
            db.commit()
        self.judged += len(rows)
        self.routed += routed
        return len(rows)

    def purge_expired(self) -> int:
        """Delete exchanges older than the retention period (their tasks go with them). Commits."""
        if self.retention is None:
            return 0
        cutoff = utcnow() - self.retention
        with self.sessions() as db:
            n = db.execute(delete(Exchange).where(Exchange.created_at < cutoff)).rowcount  # type: ignore[attr-defined]
            db.commit()
        return int(n or 0)

    def drain(self) -> int:
        """Judge until the queue holds no free task; how many were judged."""
        total = 0
        while True:
            n = self.run_once()
            if n == 0:
                return total
            total += n

    # ------------------------------------------------------------------ thread

    def wake(self) -> None:
        """Tell the worker there is new work (it also polls)."""
        self._wake.set()

    def _loop(self) -> None:
        last_purge = 0.0
        import time

        while not self._stop.is_set():
            try:
                if self.retention is not None and time.monotonic() - last_purge > 60:
                    self.purge_expired()
                    last_purge = time.monotonic()
                limit = self.batch_now()
                if limit is None and self.idle_gate is not None:
                    self.idle_gate.wait_idle(self.idle_seconds)  # then look again: idle, or overdue by now
                    continue
                if limit is not None and self.run_once(limit):
                    continue
            except Exception:  # a database hiccup must not end the worker
                log.exception("judging worker")
            self._wake.wait(self.idle_seconds)
            self._wake.clear()

    def start(self) -> JudgingWorker:
        self._thread = threading.Thread(target=self._loop, name="gateway-judge", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
