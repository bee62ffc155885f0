"""The demonstration (SFT) stage: rows from reminder responses and public written responses, trained with
TRL's SFTTrainer before DPO and KTO, which then start from its merged policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_align_run import tiny_config

from carealign.align import AlignmentRun, config_from_dict
from carealign.errors import ConfigError
from carealign.io import read_jsonl


def test_a_cycle_with_the_demonstration_stage(tiny_model_dir: Path, tmp_path: Path, hash_judge: str) -> None:
    out = tmp_path / "run"
    sft = {
        "enabled": True,
        "max_steps": 2,
        "batch_size": 2,
        "max_length": 64,
        "public_prompts": [
            {"source": "medsafetybench", "limit": 6, "subset_seed": 1},
            {"source": "medquad", "limit": 4, "subset_seed": 1},
        ],
    }
    cfg = config_from_dict(tiny_config(tiny_model_dir, out, hash_judge, cycles=1, sft=sft))
    result = AlignmentRun.start(cfg).run()
    assert result.cycles_done == 1
    c = out / "cycle_1"
    rows = read_jsonl(c / "sft.jsonl")
    sources = {r["source"] for r in rows}
    assert {"public:medsafetybench", "public:medquad"} <= sources
    assert sum(r["source"] == "public:medsafetybench" for r in rows) == 6
    # demonstrations are prompt/completion conversations, and public ones come from train parts only
    from carealign.data import public_split

    assert all(public_split(r["prompt_id"]) == "train" for r in rows if r["source"].startswith("public:"))
    assert rows[0]["prompt"][0]["role"] == "user" and rows[0]["completion"][0]["role"] == "assistant"
    # reminder responses join only when they scored at or above the KTO threshold
    reminder = [r for r in rows if r["source"] == "reminder"]
    good = [r for r in read_jsonl(c / "reminder.jsonl") if r.get("score") is not None and r["score"] >= 1.0]
    assert len(reminder) == len(good)
    # the policy's own samples join once per prompt, the first that scored at or above the threshold
    own = [r for r in rows if r["source"] == "samples"]
    good_samples: dict[str, dict] = {}
    for r in read_jsonl(c / "samples" / "responses.jsonl"):
        if r.get("score") is not None and r["score"] >= 1.0:
            good_samples.setdefault(r["prompt_id"], r)
    assert len(own) == len(good_samples) > 0
    assert all(r["completion"][0]["content"] == good_samples[r["prompt_id"]]["response"].strip() for r in own)
    train = json.loads((c / "sft" / "train.json").read_text())
    assert train["steps"] == 2 and train["examples"] == len(rows)
    assert (c / "sft" / "policy" / "config.json").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    stages = list(manifest["stages"])
    assert stages.index("cycle_1/train_sft") < stages.index("cycle_1/train_dpo")
    # the DPO candidate was trained and validated on top of the demonstration stage's policy
    assert manifest["stages"]["cycle_1/validate_dpo"]["status"] == "done"


def test_the_stage_is_off_by_default_and_per_cycle(tiny_model_dir: Path, tmp_path: Path, hash_judge: str) -> None:
    cfg = config_from_dict(tiny_config(tiny_model_dir, tmp_path / "r", hash_judge))
    assert not cfg.sft.runs_in(1)
    cfg = config_from_dict(
        tiny_config(tiny_model_dir, tmp_path / "r", hash_judge, sft={"enabled": True, "cycles": [2]})
    )
    assert not cfg.sft.runs_in(1) and cfg.sft.runs_in(2)


def test_held_out_public_prompts_are_refused_as_demonstrations(
    tiny_model_dir: Path, tmp_path: Path, hash_judge: str
) -> None:
    sft = {"enabled": True, "public_prompts": [{"source": "medquad", "split": "test", "limit": 2}]}
    with pytest.raises(ConfigError, match="held out"):
        config_from_dict(tiny_config(tiny_model_dir, tmp_path / "run", hash_judge, cycles=1, sft=sft))
