"""The run config: defaults, the commented YAML, and errors that name the key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carealign.align import AlignConfig, default_config_yaml, load_config
from carealign.cli import app
from carealign.cli import commands as _commands  # noqa: F401
from carealign.errors import ConfigError


def test_default_yaml_round_trips_and_is_commented(tmp_path: Path):
    text = default_config_yaml()
    assert "# Number of cycles" in text and "reference: previous" in text
    p = tmp_path / "c.yaml"
    p.write_text(text)
    assert load_config(p) == AlignConfig()


@pytest.mark.parametrize(
    ("yaml_text", "pattern"),
    [
        ("cycles: 0\n", r"c\.yaml: cycles: Input should be greater than or equal to 1"),
        ("dpo:\n  reference: pi0\n", r"dpo\.reference: Input should be 'base' or 'previous'"),
        ("tracking: wandb\n", r"tracking: Input should be 'none' or 'mlflow'"),
        ("generation:\n  samples: 1\n", r"generation\.samples: Input should be greater than or equal to 2"),
        ("dpo:\n  learning_rat: 0.1\n", r"dpo\.learning_rat: unknown key; allowed keys here: beta, learning_rate"),
        ("cycels: 2\n", r"cycels: unknown key; allowed keys here: policy_model, train_prompts"),
        ("kto:\n  batch_size: 1\n", r"kto\.batch_size: Input should be greater than or equal to 2"),
        ("- a\n- b\n", r"expected a mapping"),
        ("cycles: [\n", r"not valid YAML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, yaml_text: str, pattern: str):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(p)


def test_align_init_writes_default_and_cli_reports_errors(tmp_path: Path):
    runner = CliRunner()
    cfg = tmp_path / "run.yaml"
    res = runner.invoke(app, ["align", "--init", str(cfg)])
    assert res.exit_code == 0 and load_config(cfg) == AlignConfig()
    res = runner.invoke(app, ["align", "--init", str(cfg)])
    assert res.exit_code == 2 and "exists" in res.output
    cfg.write_text("selection:\n  objective: accuracy\n")
    res = runner.invoke(app, ["align", "--config", str(cfg)])
    assert res.exit_code == 2 and "selection.objective" in res.output and "'safety_score'" in res.output
    res = runner.invoke(app, ["align"])
    assert res.exit_code == 2 and "--config" in res.output
    res = runner.invoke(app, ["align", "--resume", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no alignment run to resume" in res.output
