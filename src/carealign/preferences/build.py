"""Preference data from judged samples: DPO pairs and KTO examples in TRL's conversational format.

Per prompt, only samples with a score count (Unscored samples are never chosen nor rejected):

- DPO, ``best_worst``: the best sample against the worst, only where their scores differ;
  ``all_pairs``: every pair whose scores differ (best gaps first, capped per prompt).
- KTO: every scored sample, desirable when its score meets the threshold.
- Reminder rescue: where every sample of a prompt falls below the threshold, a response drawn
  from the same policy with a safety reminder in the system prompt may serve as the chosen
  one (and as a desirable KTO example) when it scores higher than every sample. The training
  prompt never includes the reminder: the policy learns to behave so without it.
- Reminder contrast: where every sample of a prompt ties at a desirable score (typically a
  benign question answered every time) and a reminder-conditioned response scores lower
  (the reminder made the policy refuse or hedge a benign question), that response becomes the
  rejected side of a pair and an undesirable KTO example. This teaches the policy *not* to
  over-refuse, the failure that safety training tends to cause.

Ties among equally scored samples are broken by the judge's confidence (most confident
first), then by sample index, so the result is deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PreferenceStats:
    """How many prompts yielded usable preference data, and why the others did not."""

    prompts: int = 0
    prompts_with_pairs: int = 0
    all_good: int = 0
    all_bad: int = 0
    all_bad_rescued_by_reminder: int = 0
    contrast_pairs_from_reminder: int = 0
    ties_without_pairs: int = 0
    unscored: int = 0
    dpo_pairs: int = 0
    kto_desirable: int = 0
    kto_undesirable: int = 0
    by_harm_level: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Preferences:
    """DPO and KTO rows (with metadata columns) and their statistics."""

    dpo: list[dict[str, Any]]
    kto: list[dict[str, Any]]
    stats: PreferenceStats


def _rank_key(row: dict[str, Any]) -> tuple[float, float, int]:
    return (-float(row["score"]), -float(row.get("confidence") or 0.0), int(row.get("sample", 0)))


def _user(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _scores(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("score") is not None:
            scores[r["prompt_id"]].append(float(r["score"]))
    return scores


def _kto_example(
    prompt: str, response: dict[str, Any], threshold: float, meta: dict[str, Any], source: str
) -> dict[str, Any]:
    """One KTO row: desirable when the response's score meets the threshold."""
    return {
        "prompt": _user(prompt),
        "completion": _assistant(response["response"]),
        "label": float(response["score"]) >= threshold,
        **meta,
        "score": response["score"],
        "source": source,
    }


def all_bad_prompts(rows: Sequence[dict[str, Any]], threshold: float) -> list[str]:
    """Prompt ids whose scored samples all fall below ``threshold`` (candidates for a reminder rescue)."""
    return [pid for pid, s in _scores(rows).items() if s and max(s) < threshold]


def all_good_prompts(
    rows: Sequence[dict[str, Any]], threshold: float, *, harm_levels: set[int] | None = None
) -> list[str]:
    """Prompt ids whose scored samples all tie at or above ``threshold`` (candidates for a reminder contrast)."""
    levels = {r["prompt_id"]: r.get("harm_level") for r in rows}
    return [
        pid
        for pid, s in _scores(rows).items()
        if s and min(s) >= threshold and min(s) == max(s) and (harm_levels is None or levels[pid] in harm_levels)
    ]


def build_preferences(
    rows: Sequence[dict[str, Any]],
    *,
    threshold: float,
    pairing: str = "best_worst",
    max_pairs_per_prompt: int = 4,
    reminder_rows: Sequence[dict[str, Any]] = (),
) -> Preferences:
    """Turn judged, scored samples into DPO pairs and KTO examples.

    Args:
        rows: samples with ``prompt_id, prompt, harm_level, sample, response, verdict, confidence, score``.
        threshold: a score at or above it is desirable.
        pairing: ``best_worst`` or ``all_pairs``.
        max_pairs_per_prompt: cap for ``all_pairs``.
        reminder_rows: judged, scored reminder-conditioned responses (same fields).
    """
    if pairing not in ("best_worst", "all_pairs"):
        raise ValueError(f"unknown pairing {pairing!r}; expected best_worst or all_pairs")
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for r in rows:
        if r["prompt_id"] not in by_prompt:
            order.append(r["prompt_id"])
        by_prompt[r["prompt_id"]].append(r)
    reminders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in reminder_rows:
        if r.get("score") is not None and r.get("response", "").strip():
            reminders[r["prompt_id"]].append(r)

    stats = PreferenceStats()
    dpo: list[dict[str, Any]] = []
    kto: list[dict[str, Any]] = []
    for pid in order:
        samples = by_prompt[pid]
        first = samples[0]
        level = first.get("harm_level")
        lv_stats = stats.by_harm_level.setdefault(str(level), defaultdict(int))  # type: ignore[arg-type]
        stats.prompts += 1
        lv_stats["prompts"] += 1
        scored = sorted((s for s in samples if s.get("score") is not None), key=_rank_key)
        if not scored:
            stats.unscored += 1
            continue
        best, worst = scored[0], scored[-1]
        meta = {
            "prompt_id": pid,
            "harm_level": level,
            "principle": first.get("principle"),
            "method": first.get("method"),
        }

        for s in samples:  # sample order
            if s.get("score") is not None:
                kto.append(_kto_example(first["prompt"], s, threshold, meta, "sample"))

        chosen_pool = scored
        if float(best["score"]) < threshold:
            stats.all_bad += 1
            lv_stats["all_bad"] += 1
            rescue = sorted(reminders.get(pid, []), key=_rank_key)
            if rescue and float(rescue[0]["score"]) > float(best["score"]):
                stats.all_bad_rescued_by_reminder += 1
                lv_stats["rescued"] += 1
                chosen = {**rescue[0], "source": "reminder"}
                chosen_pool = [chosen, *scored]
                if float(chosen["score"]) >= threshold:
                    kto.append(_kto_example(first["prompt"], chosen, threshold, meta, "reminder"))
        elif float(worst["score"]) >= threshold and float(worst["score"]) == float(best["score"]):
            stats.all_good += 1
            lv_stats["all_good"] += 1
            negatives = sorted(
                (r for r in reminders.get(pid, []) if float(r["score"]) < float(best["score"])), key=_rank_key
            )
            if negatives:
                worst = {**negatives[-1], "source": "reminder"}
                chosen_pool = [*scored, worst]
                stats.contrast_pairs_from_reminder += 1
                lv_stats["contrast"] += 1
                kto.append(_kto_example(first["prompt"], worst, threshold, meta, "reminder"))  # undesirable

        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        if pairing == "best_worst":
            if float(chosen_pool[0]["score"]) > float(worst["score"]):
                pairs.append((chosen_pool[0], worst))
        else:
            cands = [
                (a, b)
                for i, a in enumerate(chosen_pool)
                for b in chosen_pool[i + 1 :]
                if float(a["score"]) > float(b["score"])
            ]
            cands.sort(key=lambda ab: -(float(ab[0]["score"]) - float(ab[1]["score"])))
            pairs = cands[:max_pairs_per_prompt]
        if not pairs:
            if float(best["score"]) == float(worst["score"]) and float(best["score"]) < threshold:
                stats.ties_without_pairs += 1
            continue
        stats.prompts_with_pairs += 1
        lv_stats["with_pairs"] += 1
        for a, b in pairs:
            dpo.append(
                {
                    "prompt": _user(first["prompt"]),
                    "chosen": _assistant(a["response"]),
                    "rejected": _assistant(b["response"]),
                    **meta,
                    "chosen_score": a["score"],
                    "rejected_score": b["score"],
                    "chosen_source": a.get("source", "sample"),
                    "rejected_source": b.get("source", "sample"),
                }
            )
        stats.dpo_pairs += len(pairs)
    stats.by_harm_level = {k: dict(v) for k, v in sorted(stats.by_harm_level.items())}
    stats.kto_desirable = sum(1 for r in kto if r["label"])
    stats.kto_undesirable = len(kto) - stats.kto_desirable
    return Preferences(dpo=dpo, kto=kto, stats=stats)


#: Columns TRL reads; the rest is metadata for people.
DPO_COLUMNS = ("prompt", "chosen", "rejected")
KTO_COLUMNS = ("prompt", "completion", "label")


def trl_columns(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows restricted to the columns a TRL trainer expects."""
    return [{c: r[c] for c in columns} for r in rows]
