"""Redaction before storage and the retention period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from carealign.gateway.assess import Assessor
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.models import Exchange, JudgeTask
from carealign.gateway.redact import redact_text
from carealign.gateway.worker import JudgingWorker
from carealign.review.db import open_database
from carealign.review.models import utcnow

from .conftest import ask, start_gateway


def test_redact_text() -> None:
    text, hit = redact_text(
        "Mail jane.doe@example.org or call +1 (555) 123-4567 / 020 7946 0958 about MRN 00123456 and record #A-99812."
    )
    assert hit
    assert "jane.doe" not in text and "555" not in text and "7946" not in text
    assert "00123456" not in text and "99812" not in text
    assert text.count("[EMAIL]") == 1 and text.count("[PHONE]") == 2 and text.count("[RECORD]") == 2
    plain = "Take 200 mg every 6 hours, at most 3 times a day, for 2-3 days."
    assert redact_text(plain) == (plain, False)


def test_redaction_before_storage(tmp_path: Path, tiny_generator: Any) -> None:
    gw = start_gateway(tmp_path, tiny_generator, redact=True)
    try:
        prompt = "I am jane.doe@example.org, phone 555-123-4567, MRN 00123456. Is my dose of metformin right?"
        resp = ask(gw.client(), prompt)
        ex = gw.exchange(resp.id)
        assert ex is not None
        assert "jane.doe" not in ex.prompt and "555-123-4567" not in ex.prompt and "00123456" not in ex.prompt
        assert "[EMAIL]" in ex.messages[0]["content"] and ex.redacted and "redacted" in ex.flags
    finally:
        gw.server.stop()


def _exchange(sessions: Any, i: int) -> Exchange:
    return store_exchange(
        sessions,
        NewExchange(
            f"r{i}",
            None,
            "clinicians",
            "monitor",
            "hf:t",
            [{"role": "user", "content": f"q{i}"}],
            "a",
            1,
            "stop",
            2.0,
            1.0,
        ),
        redact=False,
    )


def test_retention_deletes_old_exchanges_with_their_tasks(tmp_path: Path) -> None:
    engine, sessions = open_database(tmp_path / "r.db")
    old, new = _exchange(sessions, 1), _exchange(sessions, 2)
    with sessions() as db:
        db.execute(update(Exchange).where(Exchange.id == old.id).values(created_at=utcnow() - timedelta(days=40)))
        db.commit()
    worker = JudgingWorker(sessions, Assessor("rules"), group="clinicians", retention_days=30)
    assert worker.purge_expired() == 1
    with sessions() as db:
        assert [e.id for e in db.scalars(select(Exchange))] == [new.id]
        assert db.scalar(select(func.count()).select_from(JudgeTask)) == 1  # only the kept exchange's task
    engine.dispose()
