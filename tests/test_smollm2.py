"""The real bundled model (SmolLM2-135M-Instruct). Slow: run with `make test-slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carealign.cli import app
from carealign.cli import commands as _commands  # noqa: F401
from carealign.io import read_jsonl

pytestmark = pytest.mark.slow


def test_eval_smollm2_with_rules_and_self_judge(tmp_path: Path):
    runner = CliRunner()
    for judge in ("rules", "llm"):
        out = tmp_path / judge
        res = runner.invoke(
            app,
            [
                "eval",
                "--model",
                "smollm2-135m",
                "--prompts",
                "sample",
                "--split",
                "test",
                "--judge",
                judge,
                "--limit",
                "4",
                "--max-new-tokens",
                "48",
                "--out",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
        rows = read_jsonl(out / "responses.jsonl")
        assert len(rows) == 4 and all(r["response"] for r in rows)
        assert json.loads((out / "metrics.json").read_text())["n"] == 4
    self_rows = read_jsonl(tmp_path / "llm" / "responses.jsonl")
    assert {r["judge"] for r in self_rows} == {"llm-self:hf:smollm2-135m"}
