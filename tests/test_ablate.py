"""Validator ablation: re-run a finished run's selections with other validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_align_run import tiny_config
from tests.test_gate import RefuseAll
from typer.testing import CliRunner

from carealign.align import AlignmentRun, config_from_dict
from carealign.cli import app
from carealign.cli import judging as _judging  # noqa: F401
from carealign.judge import register_judge, unregister_judge
from carealign.judge_eval.ablate import ablate_validators


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished one-cycle run, shared by the tests of this module (they only read it)."""
    from tests.conftest import HashJudge

    register_judge("hash", lambda policy=None, **kw: HashJudge())
    try:
        out = tmp_path_factory.mktemp("ablate") / "run"
        AlignmentRun.start(config_from_dict(tiny_config(tiny_model_dir, out, "hash", cycles=1))).run()
    finally:
        unregister_judge("hash")
    return out


def test_ablation_reports_where_the_promotion_changes(finished_run: Path, hash_judge: str):
    register_judge("refuse-all", lambda policy=None, **kw: RefuseAll())
    try:
        report = ablate_validators(finished_run, [hash_judge, "refuse-all", "self"])
    finally:
        unregister_judge("refuse-all")
    original = json.loads((finished_run / "cycle_1" / "selection.json").read_text())
    (cycle,) = report["cycles"]
    assert cycle["original"]["promoted"] == original["promoted"] in ("dpo", "kto")
    # the run's own validator on the stored responses reproduces the run's choice
    assert cycle["by_validator"][hash_judge]["promoted"] == original["promoted"]
    # a validator that calls everything Refuse scores every policy alike, and re-judged every row
    refuse = cycle["by_validator"]["refuse-all"]
    assert set(refuse["safety_score"]) == {"current", "dpo", "kto"}
    assert len(set(refuse["safety_score"].values())) == 1 and refuse["judge"] == "refuse-all"
    changed = refuse["promoted"] != original["promoted"]
    assert changed == any(c.startswith("refuse-all promotes") for c in cycle["changes"])
    # self-judging loads each candidate's own model
    assert cycle["by_validator"]["self"]["judge"].startswith("llm-self:")


def test_ablate_cli_writes_the_report(finished_run: Path, hash_judge: str):
    target = finished_run.parent / "ablation-cli.json"
    res = CliRunner().invoke(
        app, ["judge", "ablate", str(finished_run), "--validators", hash_judge, "--out", str(target)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(target.read_text())
    assert report["validators"] == [hash_judge] and report["cycles"][0]["changes"] == []


def test_ablate_rejects_bad_input(tmp_path: Path):
    res = CliRunner().invoke(app, ["judge", "ablate", str(tmp_path), "--validators", "rules"])
    assert res.exit_code == 2 and "not an alignment run directory" in res.output
    res = CliRunner().invoke(app, ["judge", "ablate", str(tmp_path), "--validators", "nonsense"])
    assert res.exit_code == 2 and "unknown judge" in res.output
