"""Watching it: the figures of ``carealign gateway stats`` and the review app's gateway page."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

import carealign.cli.gateway  # noqa: F401  (registers the gateway commands)
from carealign.cli import app as cli_app
from carealign.gateway.assess import Assessment
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.models import Exchange, GuardAction
from carealign.gateway.stats import gateway_stats, stats_plots
from carealign.review import accounts, auth
from carealign.review.audit import Actor
from carealign.review.db import open_database
from carealign.review.models import utcnow
from carealign.review.web import create_app

PASSWORD = "correct-horse-battery"


def _log(sessions, i: int, level: int, verdict: str, policy: str, action: str = "none", route: bool = False):  # type: ignore[no-untyped-def]
    new = NewExchange(
        f"r{i}",
        None,
        "clinicians",
        "guard" if action != "none" else "monitor",
        policy,
        [{"role": "user", "content": f"question {i}"}],
        "answer",
        2,
        "stop",
        40.0 + i,
        30.0,
        original_response="bad" if action != "none" else None,
        guard_action=action,
    )
    flags = ("harmful_accepted",) if route else ()
    a = Assessment(level, 0.9, "harm-estimator:x", verdict, 0.9, "rules-v3", None, flags)
    return store_exchange(sessions, new, redact=False, assessment=a, route_group="clinicians")


@pytest.fixture
def logged(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "stats.db"
    engine, sessions = open_database(path)
    _log(sessions, 1, 0, "Accept", "hf:a#1")
    _log(sessions, 2, 3, "Accept", "hf:a#1", action=GuardAction.DECLINE.value, route=True)
    _log(sessions, 3, 3, "Refuse", "hf:b#2")
    ex = _log(sessions, 4, 2, "Caution", "hf:b#2", action=GuardAction.REGENERATE.value)
    store_exchange(  # one waiting for the judge
        sessions,
        NewExchange(
            "r5", None, "clinicians", "monitor", "hf:b#2", [{"role": "user", "content": "q"}], "a", 1, "stop", 9, 8
        ),
        redact=False,
    )
    with sessions() as db:  # one of them yesterday
        db.execute(update(Exchange).where(Exchange.id == ex.id).values(created_at=utcnow() - timedelta(days=1)))
        db.commit()
    yield path, sessions
    engine.dispose()


def test_stats_figures(logged) -> None:  # type: ignore[no-untyped-def]
    _, sessions = logged
    with sessions() as db:
        s = gateway_stats(db)
    assert (s.exchanges, s.judged, s.pending, s.routed) == (5, 4, 1, 1)
    assert sorted(s.per_day.values()) == [1, 4] and len(s.per_day) == 2
    assert s.verdicts_by_harm["3"] == {"Accept": 1, "Caution": 0, "Refuse": 1, "Unscored": 0}
    assert s.verdicts_by_harm["0"]["Accept"] == 1 and s.verdicts_by_harm["2"]["Caution"] == 1
    assert sum(d.get("decline", 0) for d in s.guard_by_day.values()) == 1
    assert sum(d.get("regenerate", 0) for d in s.guard_by_day.values()) == 1
    assert [p["policy"] for p in s.policies] == ["hf:b#2", "hf:a#1"]  # b served first (yesterday's exchange)
    assert s.flags["guarded"] == 2 and s.flags["harmful_accepted"] == 1
    assert s.overhead_ms["p50"] is not None and s.latency_ms["p99"] >= s.latency_ms["p50"]
    plots = stats_plots(s)
    assert set(plots) == {"traffic", "verdicts", "guard", "policies"}
    assert all(p.startswith("data:image/png;base64,") for p in plots.values())


def test_stats_command(logged) -> None:  # type: ignore[no-untyped-def]
    path, _ = logged
    r = CliRunner().invoke(cli_app, ["gateway", "stats", "--db", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["exchanges"] == 5
    r = CliRunner().invoke(cli_app, ["gateway", "stats", "--db", str(path)])
    assert r.exit_code == 0 and "Verdicts by estimated harm level" in r.output


def test_admin_page_shows_plots_and_sets_a_harm_level(logged, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path, sessions = logged
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    with sessions() as db:
        accounts.create_user(db, "boss", PASSWORD, "admin", Actor("cli:test"))
        accounts.create_user(db, "dr.lee", PASSWORD, "reviewer", Actor("cli:test"))
        db.commit()
    http = TestClient(create_app(str(path)), follow_redirects=False)
    r = http.post("/api/login", json={"name": "dr.lee", "password": PASSWORD})
    assert http.get("/admin/gateway").status_code == 403  # reviewers do not see it
    r = http.post("/api/login", json={"name": "boss", "password": PASSWORD})
    csrf = r.json()["csrf_token"]
    page = http.get("/admin/gateway")
    assert page.status_code == 200
    assert page.text.count('src="data:image/png;base64,') == 4 and "question 2" in page.text
    with sessions() as db:
        flagged = db.query(Exchange).filter(Exchange.review_item_id.is_not(None)).one()
    assert http.post(f"/admin/gateway/exchanges/{flagged.id}/harm", data={"harm_level": "1"}).status_code == 403
    r = http.post(f"/admin/gateway/exchanges/{flagged.id}/harm", data={"harm_level": "1", "csrf_token": csrf})
    assert r.status_code == 303
    with sessions() as db:
        assert db.get(Exchange, flagged.id).reviewed_harm_level == 1
