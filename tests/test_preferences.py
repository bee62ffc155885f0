"""Preference building on hand-made cases: ties, all-bad prompts, reminder rescue, no usable pairs."""

from __future__ import annotations

from carealign.preferences import build_preferences, trl_columns


def row(pid: str, sample: int, score: float | None, level: int = 3, conf: float = 0.9, text: str | None = None) -> dict:
    verdict = "Unscored" if score is None else ("Refuse" if score == 1.0 else "Accept")
    return {
        "prompt_id": pid,
        "prompt": f"prompt {pid}",
        "harm_level": level,
        "sample": sample,
        "response": text or f"{pid} response {sample}",
        "verdict": verdict,
        "confidence": conf,
        "score": score,
    }


def test_best_vs_worst_pair_only_where_scores_differ():
    rows = [
        row("a", 0, 0.0),
        row("a", 1, 1.0),
        row("a", 2, 0.5),  # usable: 1.0 vs 0.0
        row("b", 0, 1.0),
        row("b", 1, 1.0),
    ]  # all good: no pair
    p = build_preferences(rows, threshold=1.0)
    assert len(p.dpo) == 1
    pair = p.dpo[0]
    assert pair["chosen"] == [{"role": "assistant", "content": "a response 1"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "a response 0"}]
    assert pair["prompt"] == [{"role": "user", "content": "prompt a"}]
    assert (pair["chosen_score"], pair["rejected_score"]) == (1.0, 0.0)
    s = p.stats
    assert (s.prompts, s.prompts_with_pairs, s.all_good, s.all_bad, s.dpo_pairs) == (2, 1, 1, 0, 1)
    assert [r["label"] for r in p.kto] == [False, True, False, True, True]
    assert (s.kto_desirable, s.kto_undesirable) == (3, 2)


def test_ties_are_broken_by_confidence_then_sample_index():
    rows = [
        row("a", 0, 1.0, conf=0.6),
        row("a", 1, 1.0, conf=0.95),
        row("a", 2, 0.0, conf=0.7),
        row("a", 3, 0.0, conf=0.99),
    ]
    pair = build_preferences(rows, threshold=1.0).dpo[0]
    assert pair["chosen"][0]["content"] == "a response 1"  # the more confident good sample
    assert pair["rejected"][0]["content"] == "a response 2"  # worst = last of the ranking: least confident bad
    again = build_preferences(list(reversed(rows)), threshold=1.0).dpo[0]
    assert again["chosen"] == pair["chosen"] and again["rejected"] == pair["rejected"]


def test_all_bad_prompt_without_reminder_gives_no_pair():
    rows = [row("a", 0, 0.0), row("a", 1, 0.0)]
    p = build_preferences(rows, threshold=1.0)
    assert p.dpo == []
    assert (p.stats.all_bad, p.stats.ties_without_pairs, p.stats.prompts_with_pairs) == (1, 1, 0)


def test_reminder_rescues_an_all_bad_prompt():
    rows = [row("a", 0, 0.0), row("a", 1, 0.0)]
    reminder = [
        {**row("a", 0, 0.0, text="still bad"), "source": "reminder"},
        {**row("a", 1, 1.0, text="I can't help with that; please see a doctor."), "source": "reminder"},
    ]
    p = build_preferences(rows, threshold=1.0, reminder_rows=reminder)
    assert len(p.dpo) == 1
    assert p.dpo[0]["chosen"][0]["content"].startswith("I can't help")
    assert p.dpo[0]["chosen_source"] == "reminder"
    assert p.dpo[0]["prompt"] == [{"role": "user", "content": "prompt a"}]  # no reminder in the training prompt
    assert p.stats.all_bad_rescued_by_reminder == 1
    assert [r["source"] for r in p.kto if r["label"]] == ["reminder"]


def test_reminder_no_better_than_samples_is_not_used():
    rows = [row("a", 0, 0.5, level=2), row("a", 1, 0.0, level=2)]
    reminder = [row("a", 0, 0.5, level=2, text="also half")]
    p = build_preferences(rows, threshold=1.0, reminder_rows=reminder)
    assert p.stats.all_bad_rescued_by_reminder == 0
    assert p.dpo[0]["chosen"][0]["content"] == "a response 0"


def test_unscored_samples_are_never_chosen_or_rejected():
    rows = [row("a", 0, None), row("a", 1, 1.0), row("b", 0, None), row("b", 1, None)]
    p = build_preferences(rows, threshold=1.0)
    assert p.dpo == [] and p.stats.unscored == 1
    assert len(p.kto) == 1 and p.kto[0]["completion"][0]["content"] == "a response 1"


def test_no_usable_pairs_at_all():
    rows = [row(f"p{i}", s, 1.0) for i in range(3) for s in range(2)]
    p = build_preferences(rows, threshold=1.0)
    assert p.dpo == [] and p.stats.all_good == 3 and p.stats.prompts_with_pairs == 0


def test_all_pairs_ordered_by_gap_and_capped():
    rows = [row("a", 0, 1.0), row("a", 1, 0.5), row("a", 2, 0.0), row("a", 3, 0.0)]
    p = build_preferences(rows, threshold=1.0, pairing="all_pairs", max_pairs_per_prompt=3)
    gaps = [r["chosen_score"] - r["rejected_score"] for r in p.dpo]
    assert gaps == [1.0, 1.0, 0.5]
    assert p.stats.dpo_pairs == 3


def test_level_stats_and_trl_columns():
    rows = [row("a", 0, 0.0, level=0), row("a", 1, 1.0, level=0), row("b", 0, 0.0), row("b", 1, 0.0)]
    p = build_preferences(rows, threshold=1.0)
    assert p.stats.by_harm_level["0"] == {"prompts": 1, "with_pairs": 1}
    assert p.stats.by_harm_level["3"] == {"prompts": 1, "all_bad": 1}
    assert set(trl_columns(p.dpo, ("prompt", "chosen", "rejected"))[0]) == {"prompt", "chosen", "rejected"}


def test_reminder_contrast_pairs_teach_not_to_over_refuse():
    rows = [row("b", 0, 1.0, level=0, text="60 to 100 bpm."), row("b", 1, 1.0, level=0, text="Between 60 and 100.")]
    reminder = [
        {**row("b", 0, 0.0, level=0, text="I'm sorry, I can't give medical advice."), "source": "reminder"},
        {**row("b", 1, 1.0, level=0, text="Usually 60-100."), "source": "reminder"},
    ]
    p = build_preferences(rows, threshold=1.0, reminder_rows=reminder)
    assert p.stats.contrast_pairs_from_reminder == 1 and p.stats.all_good == 1
    pair = p.dpo[0]
    assert pair["chosen"][0]["content"] == "60 to 100 bpm."
    assert pair["rejected"][0]["content"] == "I'm sorry, I can't give medical advice."
    assert (pair["chosen_source"], pair["rejected_source"]) == ("sample", "reminder")
    assert [(r["label"], r["source"]) for r in p.kto] == [(True, "sample"), (True, "sample"), (False, "reminder")]
    # a reminder response as good as the samples gives no contrast
    p = build_preferences(rows, threshold=1.0, reminder_rows=reminder[1:])
    assert p.dpo == [] and p.stats.contrast_pairs_from_reminder == 0
