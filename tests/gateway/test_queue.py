"""The judging queue on SQLite and PostgreSQL: claims are exclusive, a dead worker's claims are taken
over, judging writes the assessment and removes the task in one transaction, risky ones are routed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from tests.review.conftest import postgres  # noqa: F401  (the PostgreSQL server fixture)

from carealign.domain import Verdict
from carealign.gateway.assess import Assessor
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.models import Exchange, JudgeTask
from carealign.gateway.serving import InFlight
from carealign.gateway.worker import JudgingWorker, pending_count, release_stale_claims
from carealign.judge import Judgement
from carealign.review.db import open_database
from carealign.review.models import Item, utcnow

from .conftest import HARMFUL


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    engine, factory = open_database(url)
    yield factory
    engine.dispose()


class Accepting:
    identity = "accepting"

    def judge(self, items: Any) -> list[Judgement]:
        return [Judgement(Verdict.ACCEPT, 0.95, self.identity) for _ in items]


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    return Assessor(Accepting())


def _log(sessions: Any, i: int, prompt: str = "What is a normal heart rate?") -> Exchange:
    return store_exchange(
        sessions,
        NewExchange(
            f"q{i}",
            None,
            "clinicians",
            "monitor",
            "hf:t",
            [{"role": "user", "content": prompt}],
            "Sure.",
            1,
            "stop",
            2,
            1,
        ),
        redact=False,
    )


def test_claims_are_exclusive_and_expired_ones_are_taken_over(sessions: Any, assessor: Assessor) -> None:
    for i in range(5):
        _log(sessions, i)
    a = JudgingWorker(sessions, assessor, group="clinicians", batch=3)
    b = JudgingWorker(sessions, assessor, group="clinicians", batch=3)
    got_a, got_b = a.claim(), b.claim()
    assert len(got_a) == 3 and len(got_b) == 2 and not set(got_a) & set(got_b)
    assert b.claim() == []  # nothing free
    with sessions() as db:  # worker a dies; its lease runs out
        db.execute(
            update(JudgeTask).where(JudgeTask.claimed_by == a.id).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    assert sorted(b.claim()) == sorted(got_a)
    assert release_stale_claims(sessions) == 5
    assert b.drain() == 5
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(JudgeTask)) == 0
        assert db.scalar(select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_(None))) == 0


def test_a_harmful_accept_is_routed_once_per_response(sessions: Any, assessor: Assessor) -> None:
    _log(sessions, 1, HARMFUL)
    _log(sessions, 2, HARMFUL)  # the same prompt and answer again: one review item
    worker = JudgingWorker(sessions, assessor, group="clinicians")
    assert worker.drain() == 2 and worker.routed == 2
    with sessions() as db:
        rows = list(db.scalars(select(Exchange).order_by(Exchange.id)))
        assert all("harmful_accepted" in r.flags for r in rows)
        assert rows[0].review_item_id == rows[1].review_item_id is not None
        assert db.scalar(select(func.count()).select_from(Item)) == 1


def test_a_failing_judge_leaves_the_task_with_its_error(sessions: Any) -> None:
    class Broken:
        identity = "broken"

        def judge(self, items: Any) -> list[Judgement]:
            raise RuntimeError("judge offline")

    _log(sessions, 1)
    worker = JudgingWorker(sessions, Assessor(Broken()), group="clinicians")
    assert worker.run_once() == 0
    with sessions() as db:
        task = db.scalar(select(JudgeTask))
        assert task is not None and task.claimed_by is None and "judge offline" in (task.last_error or "")
        assert task.attempts == 1


def test_an_idle_gate_holds_judging_while_requests_are_in_flight_unless_overdue(
    sessions: Any, assessor: Assessor
) -> None:
    gate = InFlight()
    w = JudgingWorker(
        sessions, assessor, group="clinicians", batch=32, idle_gate=gate, max_backlog=10, max_delay_s=3600, idle_batch=2
    )
    assert not w.overdue()  # an empty queue is never overdue
    for i in range(3):
        _log(sessions, i)
    assert w.batch_now() == 2  # the model is idle: judge, in small batches
    with gate.track():
        assert gate.busy() and not gate.wait_idle(0)
        assert not w.overdue() and w.batch_now() is None  # a request in flight; 3 waiting, none old: wait
        w.max_backlog = 3
        assert w.overdue() and w.batch_now() == 32  # the backlog reached its cap
        w.max_backlog = 10
        with sessions() as db:  # the oldest task has waited past the delay
            first = db.scalar(select(func.min(JudgeTask.id)))
            db.execute(update(JudgeTask).where(JudgeTask.id == first).values(created_at=utcnow() - timedelta(hours=2)))
            db.commit()
        assert w.overdue() and w.batch_now() == 32
        with gate.track():  # nested requests: busy until the last one is done
            assert gate.count == 2
        assert gate.busy()
    assert not gate.busy() and gate.wait_idle(0) and w.batch_now() == 2
    assert w.run_once(w.batch_now()) == 2
    with sessions() as db:
        assert pending_count(db) == 1
    ungated = JudgingWorker(sessions, assessor, group="clinicians", batch=32)
    assert ungated.batch_now() == 32 and ungated.drain() == 1
