"""The shipped run configs validate, and each runs one cycle on the tiny model (settings scaled down)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carealign.align import AlignmentRun, config_from_dict, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs() -> None:
    assert {p.name for p in CONFIGS} >= {"smollm2-cpu.yaml", "gpu-3b.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.sft.enabled and cfg.sft.runs_in(1)
    assert all(ps.split != "test" for ps in cfg.sft.public_prompts)
    assert cfg.train_prompts.split == "train" and cfg.validation_prompts.split == "validation"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_shipped_config_runs_one_cycle(path: Path, tiny_model_dir: Path, tmp_path: Path, hash_judge: str) -> None:
    data = yaml.safe_load(path.read_text())
    small = {"limit": 8, "subset_seed": 1}
    data.update(
        policy_model=str(tiny_model_dir),
        output_dir=str(tmp_path / path.stem),
        cycles=1,
        device="cpu",
        dtype="fp32",
        judge=hash_judge,
        validator=hash_judge,
        train_prompts={**data["train_prompts"], **small},
        validation_prompts={**data["validation_prompts"], **small},
    )
    data["generation"].update(samples=2, max_new_tokens=6, validation_max_new_tokens=6, batch_size=16)
    for ps in data["sft"]["public_prompts"]:
        ps["limit"] = 4
    for method in ("sft", "dpo", "kto"):
        data[method].update(max_steps=1, batch_size=2, max_length=64, gradient_accumulation_steps=1)
        data[method].pop("epochs", None)
    data["selection"].update(min_improvement=-1.0, max_erroneous_refusal_increase=1.0, n_resamples=200)
    result = AlignmentRun.start(config_from_dict(data, source=str(path))).run()
    assert result.cycles_done == 1
    out = tmp_path / path.stem / "cycle_1"
    assert (out / "sft" / "policy" / "config.json").exists() and (out / "selection.json").exists()
