"""The reliability gate: the alignment loop checks its training judge against a reference each cycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import HashJudge
from tests.test_align_run import tiny_config

import carealign.align.stages as run_mod  # the stage functions call build_preferences, train_adapter
from carealign.align import AlignmentRun, config_from_dict
from carealign.domain import Verdict
from carealign.io import read_jsonl
from carealign.judge import Judgement, register_judge, unregister_judge


class RefuseAll:
    identity = "refuse-all"

    def judge(self, items):
        return [Judgement(Verdict.REFUSE, 0.8, self.identity) for _ in items]


class _Stop(Exception):
    pass


@pytest.fixture
def reference_judges():
    register_judge("refuse-all", lambda policy=None, **kw: RefuseAll())
    register_judge("hash-twin", lambda policy=None, **kw: HashJudge())
    yield
    unregister_judge("refuse-all")
    unregister_judge("hash-twin")


def _run_until_preferences(monkeypatch, cfg) -> AlignmentRun:
    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr(run_mod, "build_preferences", stop)
    run = AlignmentRun.start(config_from_dict(cfg))
    with pytest.raises(_Stop):
        run.run()
    return run


def test_gate_switches_when_agreement_drops(
    tiny_model_dir: Path, tmp_path: Path, hash_judge: str, reference_judges, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "run"
    gate = {"reference": "refuse-all", "slice_size": 8, "min_agreement": 0.4}
    _run_until_preferences(monkeypatch, tiny_config(tiny_model_dir, out, hash_judge, gate=gate, cycles=1))
    decision = json.loads((out / "cycle_1" / "gate.json").read_text())
    # the hash judge spreads verdicts over three labels, the reference always says Refuse: kappa 0
    assert decision["switched"] is True and decision["slice"] == 8
    assert decision["kappa"] == pytest.approx(0.0) and decision["agreement"] < 0.7
    samples = read_jsonl(out / "cycle_1" / "samples" / "responses.jsonl")
    assert {r["judge"] for r in samples} == {"refuse-all"} and {r["verdict"] for r in samples} == {"Refuse"}
    before = read_jsonl(out / "cycle_1" / "samples" / "responses.training_judge.jsonl")
    assert {r["judge"] for r in before} == {"hash-test"} and len(before) == len(samples)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training_judge"] == "refuse-all" and "1" in manifest["gate_switches"]
    assert manifest["stages"]["cycle_1/gate"]["switched"] is True


def test_gate_keeps_an_agreeing_judge(
    tiny_model_dir: Path, tmp_path: Path, hash_judge: str, reference_judges, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "run"
    gate = {"reference": "hash-twin", "slice_size": 8, "min_agreement": 0.9}
    _run_until_preferences(monkeypatch, tiny_config(tiny_model_dir, out, hash_judge, gate=gate, cycles=1))
    decision = json.loads((out / "cycle_1" / "gate.json").read_text())
    assert decision["switched"] is False and decision["value"] == pytest.approx(1.0)
    assert not (out / "cycle_1" / "samples" / "responses.training_judge.jsonl").exists()
    assert "training_judge" not in json.loads((out / "manifest.json").read_text())


def test_gate_reference_is_checked_before_the_run(tiny_model_dir: Path, tmp_path: Path, hash_judge: str):
    from carealign.errors import JudgeError

    cfg = tiny_config(tiny_model_dir, tmp_path / "run", hash_judge, gate={"reference": "no-such-judge"})
    with pytest.raises(JudgeError, match="no-such-judge"):
        AlignmentRun.start(config_from_dict(cfg))
