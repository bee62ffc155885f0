"""``carealign demo``'s options reach the run config (the demo itself is measured, not tested here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

import carealign.align.demo as demo_module
import carealign.cli.alignment  # noqa: F401  (registers the command group)
from carealign.cli import app


def test_demo_seed_and_out_reach_the_config(tmp_path: Path, monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}

    def fake_run_demo(out: Path, *, config: Any, console: Any, test_limit: int | None) -> Any:
        seen.update(out=out, config=config, test_limit=test_limit)
        return type("R", (), {"report": None})()

    monkeypatch.setattr(demo_module, "run_demo", fake_run_demo)
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--seed", "3", "--test-limit", "5"])
    assert res.exit_code == 0, res.output
    cfg = seen["config"]
    assert cfg.seed == 3 and seen["test_limit"] == 5
    assert Path(cfg.output_dir) == tmp_path / "d"
    assert cfg.train_prompts.split == "train" and cfg.policy_model == demo_module.DEMO_CONFIG["policy_model"]
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "e")])
    assert res.exit_code == 0 and seen["config"].seed == 0
