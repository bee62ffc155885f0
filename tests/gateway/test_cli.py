"""``carealign gateway keys`` and ``export`` from the command line."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

import carealign.cli.gateway  # noqa: F401  (registers the gateway commands)
from carealign.cli import app
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.keys import KeyChecker, key_digest
from carealign.gateway.models import ApiKey
from carealign.io import read_jsonl
from carealign.review.db import open_database


def test_keys_add_list_revoke_and_export(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    r = runner.invoke(
        app, ["gateway", "keys", "add", "app-1", "--group", "pharmacists", "--rate-limit", "5", "--db", db]
    )
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("ca-") and len(secret) > 40
    engine, sessions = open_database(db)
    with sessions() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.name == "app-1"))
        assert row is not None and row.key_sha256 == key_digest(secret) and secret not in row.prefix + "..."
        assert (row.group_name, row.rate_per_minute, row.admin) == ("pharmacists", 5, False)
    checker = KeyChecker(sessions, cache_seconds=0)
    info = checker.check(secret)
    assert info is not None and info.group == "pharmacists"
    r = runner.invoke(app, ["gateway", "keys", "add", "app-1", "--db", db])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["gateway", "keys", "list", "--db", db])
    assert r.exit_code == 0 and "app-1" in r.output and secret not in r.output
    assert runner.invoke(app, ["gateway", "keys", "revoke", "app-1", "--db", db]).exit_code == 0
    assert checker.check(secret) is None

    store_exchange(
        sessions,
        NewExchange(
            "r1", None, "pharmacists", "monitor", "hf:t", [{"role": "user", "content": "Q?"}], "A.", 1, "stop", 2, 1
        ),
        redact=False,
    )
    out = tmp_path / "traffic.jsonl"
    r = runner.invoke(app, ["gateway", "export", "--db", db, "--out", str(out), "--group", "pharmacists"])
    assert r.exit_code == 0, r.output
    (row,) = read_jsonl(out)
    assert row["prompt"] == "Q?" and row["harm_level_source"] == "estimated"
    r = runner.invoke(app, ["gateway", "export", "--db", db, "--out", str(out), "--since", "yesterday-ish"])
    assert r.exit_code == 2 and "not a date" in r.output
    engine.dispose()
