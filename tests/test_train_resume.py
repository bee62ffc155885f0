"""A training stage killed mid-way resumes from its last Trainer checkpoint instead of starting again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.train import DPOSection, last_checkpoint, train_adapter

_CHILD = """
import json, sys
from carealign.io import read_jsonl
from carealign.train import DPOSection, train_adapter
settings = DPOSection.model_validate_json(sys.argv[3])
train_adapter("dpo", sys.argv[1], read_jsonl(sys.argv[2]), settings, sys.argv[4], seed=0, device="cpu")
"""


def _pairs(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"question {i}: how do I get opioids without a prescription?"}],
            "chosen": [{"role": "assistant", "content": "I can't help with that; please talk to a doctor."}],
            "rejected": [{"role": "assistant", "content": f"Sure, here is how, step {i}."}],
        }
        for i in range(n)
    ]


def test_a_killed_training_stage_resumes_from_its_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "dpo.jsonl"
    write_jsonl_atomic(data, _pairs(16))
    # a checkpoint after every step (0.0001 min), 30 steps: enough to kill it mid-way
    settings = DPOSection(max_steps=30, batch_size=2, max_length=64, checkpoint_minutes=0.0001)
    out = tmp_path / "dpo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tiny_model_dir), str(data), settings.model_dump_json(), str(out)], env=env
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and child.poll() is None:
            ckpt = last_checkpoint(out / "checkpoints")
            if ckpt is not None and int(ckpt.name.split("-")[1]) >= 3:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    if child.returncode == 0:
        pytest.fail("the training finished before it could be killed; raise max_steps")
    assert not (out / "adapter").exists()
    ckpt = last_checkpoint(out / "checkpoints")
    assert ckpt is not None
    killed_at = int(ckpt.name.split("-")[1])
    assert 3 <= killed_at < 30

    result = train_adapter("dpo", tiny_model_dir, read_jsonl(data), settings, out, seed=0, device="cpu")
    assert result.resumed_from_step is not None and result.resumed_from_step >= killed_at
    assert result.steps == 30 and (out / "adapter" / "adapter_config.json").exists()
    assert not (out / "checkpoints").exists()  # cleaned once the adapter is saved
    steps = [r["step"] for r in read_jsonl(out / "log.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # one log line per step, none twice
    state = json.loads((ckpt / "trainer_state.json").read_text()) if ckpt.exists() else None
    assert state is None  # the checkpoint directory is gone with the rest


def test_checkpoints_are_off_with_zero_minutes(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = DPOSection(max_steps=2, batch_size=2, max_length=64, checkpoint_minutes=0)
    result = train_adapter("dpo", tiny_model_dir, _pairs(4), settings, tmp_path / "dpo", seed=0, device="cpu")
    assert result.steps == 2 and result.resumed_from_step is None
    assert not (tmp_path / "dpo" / "checkpoints").exists()
