"""Human feedback from the review app drives the alignment loop: labels override the judge, pairs join the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_align_run import tiny_config

import carealign.align.stages as run_mod  # the stage functions call build_preferences, train_adapter
from carealign.align import AlignmentRun, CycleContext, config_from_dict
from carealign.io import read_jsonl, write_jsonl_atomic


class _Stop(Exception):
    pass


def test_human_labels_override_the_judge_and_pairs_join_the_preferences(
    tiny_model_dir: Path, tmp_path: Path, hash_judge: str, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "run"
    labels, pairs = tmp_path / "labels.jsonl", tmp_path / "dpo.jsonl"
    cfg = tiny_config(tiny_model_dir, out, hash_judge, cycles=1, human_feedback={"sources": [str(labels), str(pairs)]})
    original = CycleContext.feedback

    def stop_once(self):
        raise _Stop

    monkeypatch.setattr(CycleContext, "feedback", property(stop_once))
    run = AlignmentRun.start(config_from_dict(cfg))
    with pytest.raises(_Stop):
        run.run()
    samples = read_jsonl(out / "cycle_1" / "samples" / "responses.jsonl")
    # reviewers relabel the first four samples (to the verdict the judge did not give) ...
    flip = {"Accept": "Refuse", "Caution": "Accept", "Refuse": "Accept"}
    write_jsonl_atomic(
        labels,
        [{"prompt_id": r["prompt_id"], "prompt": r["prompt"], "response": r["response"],
          "verdict": flip[r["verdict"]], "group": "clinicians"} for r in samples[:4]],
    )  # fmt: skip
    # ... and choose between two answers, once on a training prompt and once on a prompt outside the run
    conv = lambda text, role: [{"role": role, "content": text}]  # noqa: E731
    write_jsonl_atomic(
        pairs,
        [
            {"prompt": conv(samples[0]["prompt"], "user"), "chosen": conv("A careful answer.", "assistant"),
             "rejected": conv("A careless answer.", "assistant"), "prompt_id": samples[0]["prompt_id"]},
            {"prompt": conv("A test-split question?", "user"), "chosen": conv("yes", "assistant"),
             "rejected": conv("no", "assistant"), "prompt_id": "not-a-train-prompt"},
        ],
    )  # fmt: skip
    monkeypatch.setattr(CycleContext, "feedback", original)

    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr(run_mod, "train_adapter", stop)
    with pytest.raises(_Stop):
        AlignmentRun.resume(out).run()
    prefs = json.loads((out / "cycle_1" / "preferences.json").read_text())
    assert prefs["human_feedback"] == {"labels_applied": 4, "dpo": 1, "kto": 0}
    dpo = read_jsonl(out / "cycle_1" / "dpo.jsonl")
    human = [r for r in dpo if r.get("source") == "human"]
    assert len(human) == 1 and human[0]["chosen"][0]["content"] == "A careful answer."
    kto = read_jsonl(out / "cycle_1" / "kto.jsonl")
    # the KTO example of a relabelled sample carries the human verdict's score, not the judge's
    first = samples[0]
    human_verdict = flip[first["verdict"]]
    row = next(
        r
        for r in kto
        if r.get("prompt_id") == first["prompt_id"] and r["completion"][0]["content"] == first["response"]
    )
    expected = run.policy.score(first["harm_level"], human_verdict)
    assert row["score"] == pytest.approx(expected)
