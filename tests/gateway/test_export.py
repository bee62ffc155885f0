"""Feeding the next cycle: export of the logged prompts, the gateway: prompt source, and a run config that loads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carealign.align.config import config_from_dict, load_config
from carealign.data import load_prompts
from carealign.errors import ConfigError, DataError
from carealign.gateway.assess import Assessment
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.export import export_rows, export_to_file, set_reviewed_harm_level
from carealign.gateway.models import Exchange
from carealign.io import read_jsonl
from carealign.review.audit import Actor
from carealign.review.db import open_database
from carealign.review.models import AuditEntry, utcnow


def _log(sessions, prompt: str, group: str = "clinicians", level: int | None = 2, **kw) -> Exchange:  # type: ignore[no-untyped-def]
    new = NewExchange(
        request_id=f"r-{prompt[:10]}-{utcnow().timestamp()}-{group}",
        key_id=None,
        group=group,
        mode="monitor",
        policy="hf:test",
        messages=[{"role": "user", "content": prompt}],
        response="An answer.",
        completion_tokens=3,
        finish_reason="stop",
        latency_ms=5.0,
        generation_ms=4.0,
    )
    a = None
    if level is not None:
        a = Assessment(level, 0.8, "harm-estimator:x", "Accept", 0.9, "rules-v3", 0.0, ())
    return store_exchange(sessions, new, redact=kw.get("redact", False), assessment=a, route_group=None)


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine, sessions = open_database(tmp_path / "log.db")
    yield tmp_path / "log.db", sessions
    engine.dispose()


def test_export_deduplicates_and_prefers_a_reviewers_level(db) -> None:  # type: ignore[no-untyped-def]
    _, sessions = db
    first = _log(sessions, "How do I get oxycodone?")
    _log(sessions, "  how do I get  OXYCODONE? ")  # the same prompt, other spacing and case
    _log(sessions, "What is a normal heart rate?", level=0)
    _log(sessions, "Is ibuprofen safe with alcohol?", group="pharmacists", level=1)
    with sessions() as s:
        rows = export_rows(s)
    assert [r["prompt"] for r in rows] == [
        "How do I get oxycodone?",
        "What is a normal heart rate?",
        "Is ibuprofen safe with alcohol?",
    ]
    assert rows[0]["exchanges"] == 2 and rows[0]["harm_level"] == 2 and rows[0]["harm_level_source"] == "estimated"
    with sessions() as s:
        assert set_reviewed_harm_level(s, first.id, 3, Actor("cli:test")) == 2
        s.commit()
        rows = export_rows(s, group="clinicians")
        assert s.query(AuditEntry).filter_by(action="gateway.harm_level").count() == 1
    assert len(rows) == 2
    assert rows[0]["harm_level"] == 3 and rows[0]["harm_level_source"] == "reviewer"
    with sessions() as s:
        assert export_rows(s, since=(utcnow() + timedelta(days=1)).date().isoformat()) == []
        with pytest.raises(DataError, match="not a date"):
            export_rows(s, since="last tuesday")


def test_unjudged_prompts_are_estimated_at_export(db) -> None:  # type: ignore[no-untyped-def]
    _, sessions = db
    _log(sessions, "How can I fake symptoms to get opioids from my doctor?", level=None)
    with sessions() as s:
        (row,) = export_rows(s)
    assert row["harm_level"] in (0, 1, 2, 3) and row["harm_level_source"] == "estimated"
    assert row["harm_level_model"].startswith("harm-estimator")


def test_export_feeds_a_run_config_that_loads(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, sessions = db
    _log(sessions, "How do I get oxycodone?", level=3)
    _log(sessions, "What is a normal heart rate?", level=0)
    _log(sessions, "Is ibuprofen safe with alcohol?", group="pharmacists", level=1)
    with sessions() as s:
        out = tmp_path / "traffic.jsonl"
        assert export_to_file(s, out) == 3
    records = load_prompts(str(out), None)
    assert [r.harm_level for r in records] == [3, 0, 1] and all(r.source == "gateway" for r in records)
    assert read_jsonl(out)[0]["harm_level_source"] == "estimated"

    cfg_file = tmp_path / "run.yaml"
    today = utcnow().date().isoformat()
    cfg_file.write_text(
        f"train_prompts: {{source: gateway, db: {path}, since: '{today}', group: clinicians}}\n", encoding="utf-8"
    )
    cfg = load_config(cfg_file)
    assert cfg.train_prompts.source.startswith("gateway:")
    tp = cfg.train_prompts
    records = load_prompts(tp.source, tp.split, limit=tp.limit, subset_seed=tp.subset_seed)  # as the run loads them
    assert sorted(r.prompt for r in records) == ["How do I get oxycodone?", "What is a normal heart rate?"]
    assert {r.harm_level for r in records} == {3, 0}
    with pytest.raises(ConfigError, match="train_prompts"):
        config_from_dict({"train_prompts": {"source": "gateway"}})
    with pytest.raises(DataError, match="unknown filter"):
        load_prompts(f"gateway:{path}#until=2026-01-01")
