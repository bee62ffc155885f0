"""``carealign review`` commands: migrate, users, groups, import, export, and errors (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import carealign.cli.review  # noqa: F401  (registers the review commands)
from carealign.cli import app
from carealign.review.db import head_revision

from .conftest import ADVOCATES_POLICY, DATA, PASSWORD


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    db = str(tmp_path / "review.db")

    def invoke(*args: str, stdin: str | None = None, code: int = 0):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, ["review", *args, "--db", db], input=stdin)
        assert result.exit_code == code, result.output
        return " ".join(result.output.split())  # rich wraps long lines

    return invoke


def test_setup_import_review_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert f"schema revision {head_revision()}" in run("migrate")
    policy = tmp_path / "policy.yaml"
    policy.write_text(ADVOCATES_POLICY)
    assert "added group advocates" in run("groups", "add", "advocates", "--policy", str(policy))
    out = run(
        "users",
        "add",
        "ann",
        "--role",
        "reviewer",
        "--group",
        "advocates",
        "--group",
        "oncology",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert "created group oncology" in out and "added reviewer ann to advocates, oncology" in out
    run("users", "add", "boss", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    listing = run("users", "list")
    assert "ann" in listing and "boss" in listing and "admin" in listing
    assert "advocates" in run("groups", "list")

    run_dir = tmp_path / "eval-run"
    run_dir.mkdir()
    (run_dir / "responses.jsonl").write_text(DATA.read_text())
    (run_dir / "manifest.json").write_text(json.dumps({"model_identity": "tiny"}))
    out = run("import", str(run_dir), "--group", "advocates", "--max-pairs-per-prompt", "1")
    assert "16 new label items, 8 new pair items" in out
    assert "0 new label items, 0 new pair items" in run("import", str(run_dir), "--group", "advocates")

    # review one item through the service, then export every kind
    from carealign.review import reviewing
    from carealign.review.db import open_database
    from carealign.review.models import Item, User

    engine, sessions = open_database(str(tmp_path / "review.db"))
    with sessions() as db:
        ann = db.query(User).filter_by(name="ann").one()
        item = db.query(Item).filter_by(kind="label").order_by(Item.id).first()
        reviewing.submit_review(db, item.id, ann, verdict="Refuse", version=1, corrected_response="No.")
    engine.dispose()
    for kind, n in (("labels", 1), ("dpo", 1), ("kto", 2), ("judge", 1)):
        out_file = tmp_path / "out" / f"{kind}.jsonl"
        assert f"wrote {n} {kind} rows" in run("export", "--kind", kind, "--out", str(out_file), "--group", "advocates")
        assert len(out_file.read_text().splitlines()) == n
    run("export", "--kind", "audit", "--out", str(tmp_path / "out" / "audit.jsonl"))
    actions = [json.loads(line)["action"] for line in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    assert (
        actions[:2] == ["group.create", "group.create"] and "review.create" in actions and actions.count("export") == 4
    )
    assert actions[0] and json.loads((tmp_path / "out" / "audit.jsonl").read_text().splitlines()[0])[
        "actor"
    ].startswith("cli:")

    assert "updated ann" in run("users", "set", "ann", "--inactive", "--role", "admin")
    assert "updated group advocates" in run("groups", "set", "advocates", "--reviews", "2", "--clear-policy")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("users", "add", "x", "--role", "boss", "--password-stdin"),
            PASSWORD + "\n",
            "role 'boss': expected reviewer or admin",
        ),
        (("users", "add", "x", "--password-stdin"), "short\n", "password too short"),
        (("users", "add", "x", "--password-stdin"), "", "no password on standard input"),
        (("users", "set", "ghost", "--role", "admin"), None, "no user named 'ghost'"),
        (("import", "missing-dir"), None, "missing-dir: no such file or directory"),
        (("export", "--kind", "weights", "--out", "x.jsonl"), None, "export kind 'weights'"),
        (("export", "--kind", "labels", "--out", "x.jsonl", "--group", "ghost"), None, "no group named 'ghost'"),
        (("groups", "add", "g", "--policy", "nope.yaml"), None, "nope.yaml: cannot read the policy file"),
    ],
)
def test_errors_are_one_line_with_exit_2(run, args: tuple[str, ...], stdin: str | None, message: str) -> None:  # type: ignore[no-untyped-def]
    out = run(*args, stdin=stdin, code=2)
    assert message in out and "Traceback" not in out


def test_bad_group_policy_names_the_key(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "scores:\n  0: {Accept: 1.0, Caution: 0.0, Refuse: 0.0}\n  1: {Accept: 0.0, Caution: 1.0, Refuse: 1.0}\n"
        "  2: {Accept: 0.0, Caution: 0.5, Refuse: 1.0}\n  3: {Accept: 0.0, Caution: 0.0, Refuse: 2.0}\n"
    )
    out = run("groups", "add", "g", "--policy", str(policy), code=2)
    assert "group 'g' policy: scores.3.Refuse: 2.0 outside [0, 1]" in out


def test_bad_database_url(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    r = runner.invoke(app, ["review", "migrate", "--db", "mysql://x@localhost/db"])
    assert r.exit_code == 2 and "unsupported database 'mysql'" in " ".join(r.output.split())
    r = runner.invoke(app, ["review", "migrate", "--db", str(tmp_path / "no" / "dir" / "r.db")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
