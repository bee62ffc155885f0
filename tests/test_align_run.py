"""The alignment loop end to end on a tiny random model: two cycles, resume after a kill in each stage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import carealign.align.stages as run_mod  # the stage functions call evaluate, train_adapter, ...
from carealign.align import AlignmentRun, config_from_dict, promoted_policy
from carealign.cli import app
from carealign.cli import commands as _commands  # noqa: F401
from carealign.errors import ConfigError
from carealign.io import read_jsonl


def tiny_config(model_dir: Path, out: Path, judge: str, **extra) -> dict:
    return {
        "policy_model": str(model_dir),
        "train_prompts": {"source": "sample", "split": "train", "limit": 12, "subset_seed": 1},
        "validation_prompts": {"source": "sample", "split": "validation", "limit": 8, "subset_seed": 1},
        "generation": {"samples": 2, "max_new_tokens": 6, "validation_max_new_tokens": 6, "batch_size": 16},
        "judge": judge,
        "validator": judge,
        "dpo": {"max_steps": 2, "batch_size": 2, "max_length": 64},
        "kto": {"max_steps": 2, "batch_size": 2, "max_length": 64},
        "selection": {"min_improvement": -1.0, "max_erroneous_refusal_increase": 1.0, "n_resamples": 200},
        "cycles": 2,
        "output_dir": str(out),
        "dtype": "fp32",
        "device": "cpu",
        **extra,
    }


def test_two_cycles_end_to_end(tiny_model_dir: Path, tmp_path: Path, hash_judge: str):
    out = tmp_path / "run"
    cfg_path = tmp_path / "run.yaml"
    from carealign.align import default_config_yaml

    cfg_path.write_text(default_config_yaml(config_from_dict(tiny_config(tiny_model_dir, out, hash_judge))))
    res = CliRunner().invoke(app, ["align", "--config", str(cfg_path)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "align" and manifest["versions"]["trl"]
    for cycle in (1, 2):
        c = out / f"cycle_{cycle}"
        samples = read_jsonl(c / "samples" / "responses.jsonl")
        assert len(samples) == 24 and {r["judge"] for r in samples} == {"hash-test"}
        dpo = read_jsonl(c / "dpo.jsonl")
        assert dpo and {"prompt", "chosen", "rejected"} <= set(dpo[0])
        assert dpo[0]["prompt"][0]["role"] == "user" and dpo[0]["chosen"][0]["role"] == "assistant"
        kto = read_jsonl(c / "kto.jsonl")
        assert {"prompt", "completion", "label"} <= set(kto[0])
        prefs = json.loads((c / "preferences.json").read_text())
        assert prefs["prompts"] == 12 and prefs["dpo_pairs"] == len(dpo)
        for method in ("dpo", "kto"):
            assert (c / method / "adapter" / "adapter_config.json").exists()
            assert read_jsonl(c / method / "log.jsonl")[0]["loss"] is not None
            assert json.loads((c / method / "train.json").read_text())["steps"] == 2
            assert json.loads((c / "validation" / method / "metrics.json").read_text())["n"] == 8
        sel = json.loads((c / "selection.json").read_text())
        assert sel["promoted"] in ("dpo", "kto") and sel["reason"]
        assert set(sel["candidates"]) == {"dpo", "kto", "current"}
        assert (c / "policy" / "config.json").exists()
        assert all(
            manifest["stages"][f"cycle_{cycle}/{s}"]["status"] == "done"
            for s in (
                "samples",
                "reminder",
                "preferences",
                "train_dpo",
                "train_kto",
                "validate_current",
                "validate_dpo",
                "validate_kto",
                "select",
            )
        )
    assert manifest["current_policy"] == "cycle_2/policy"
    # cycle 2 starts from cycle 1's promoted policy, whose validation is reused as "current"
    assert json.loads((out / "cycle_2" / "selection.json").read_text())["policy"] == "cycle_1/policy"
    promoted1 = json.loads((out / "cycle_1" / "selection.json").read_text())["promoted"]
    assert read_jsonl(out / "cycle_2" / "validation" / "current" / "responses.jsonl") == read_jsonl(
        out / "cycle_1" / "validation" / promoted1 / "responses.jsonl"
    )
    # a run directory is a model for eval
    assert promoted_policy(out) == str(out / "cycle_2" / "policy")
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            str(out),
            "--limit",
            "2",
            "--max-new-tokens",
            "3",
            "--dtype",
            "fp32",
            "--out",
            str(tmp_path / "ev"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ev" / "metrics.json").exists()
    # starting again with the same config resumes (nothing to do); another config is refused
    again = AlignmentRun.start(config_from_dict(tiny_config(tiny_model_dir, out, hash_judge))).run()
    assert again.cycles_done == 2
    with pytest.raises(ConfigError, match="another config"):
        AlignmentRun.start(config_from_dict(tiny_config(tiny_model_dir, out, hash_judge, cycles=3)))


class Kill(BaseException):
    """Stands for a kill: not an Exception, so nothing in the loop can swallow it."""


def test_resume_after_a_kill_in_each_stage(
    tiny_model_dir: Path, tmp_path: Path, hash_judge: str, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "run"
    cfg = config_from_dict(tiny_config(tiny_model_dir, out, hash_judge, cycles=1))
    calls: Counter[str] = Counter()
    kill_at: list[str] = []

    def wrap(name, fn, key=lambda *a, **k: None):
        def wrapper(*args, **kwargs):
            stage = name if key(*args, **kwargs) is None else f"{name}:{key(*args, **kwargs)}"
            calls[stage] += 1
            if kill_at and kill_at[0] == stage:
                kill_at.pop(0)
                raise Kill(stage)
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        run_mod, "evaluate", wrap("evaluate", run_mod.evaluate, lambda cfg, out_dir, **k: Path(out_dir).name)
    )
    monkeypatch.setattr(run_mod, "judge_rows", wrap("reminder_judge", run_mod.judge_rows))
    monkeypatch.setattr(run_mod, "build_preferences", wrap("preferences", run_mod.build_preferences))
    monkeypatch.setattr(run_mod, "train_adapter", wrap("train", run_mod.train_adapter, lambda m, *a, **k: m))
    monkeypatch.setattr(run_mod, "merge_adapter", wrap("merge", run_mod.merge_adapter))

    stages = [
        "evaluate:samples",
        "reminder_judge",
        "preferences",
        "train:dpo",
        "train:kto",
        "evaluate:current",
        "evaluate:dpo",
        "evaluate:kto",
        "merge",
    ]
    run = AlignmentRun.start(cfg)
    for stage in stages:
        kill_at[:] = [stage]
        before = Counter(calls)
        with pytest.raises(Kill):
            AlignmentRun.resume(out).run()
        assert not kill_at, f"the run never reached {stage}"
        # the stage killed last time runs again; every stage finished before it must not
        finished = stages[: max(0, stages.index(stage) - 1)]
        redone = [s for s in finished if calls[s] != before[s]]
        assert redone == [], f"resuming before {stage} redid {redone}"
        manifest = json.loads((out / "manifest.json").read_text())
        assert "cycle_1/select" not in manifest["stages"]
    result = AlignmentRun.resume(out).run()
    assert result.cycles_done == 1
    for s in stages:
        if s == "reminder_judge":
            continue
        expected = 2 if s != "merge" or result.promotions[0] != "current" else 1
        assert calls[s] <= expected, (s, calls[s])
    assert json.loads((out / "cycle_1" / "selection.json").read_text())["promoted"] == result.promotions[0]
    assert run.run_dir == out
