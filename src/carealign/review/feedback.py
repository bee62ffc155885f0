"""Human feedback for the alignment loop, read from a review database or from its exports.

::

    from carealign.review import load_human_feedback
    fb = load_human_feedback("sqlite:///review.db")           # or review.db, or an export dir / files
    fb = fb.for_prompts(prompt_ids=train_ids)                  # never train on validation or test prompts
    rows, n = fb.apply(judged_rows)                            # human labels override judge verdicts
    dpo_rows = prefs.dpo + fb.dpo                              # extra pairs: pairwise choices, corrections
    kto_rows = prefs.kto + fb.kto

Labels are keyed by ``(prompt_id, response text)`` and by ``(prompt text, response text)``, so
rows from another prompt set with other ids still match on text. When several groups decided the
same response, the latest decision wins unless ``group`` picks one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.errors import DataError
from carealign.io import read_jsonl
from carealign.score.policy import SafetyPolicy

#: File names read from an export directory.
EXPORT_FILES = {"labels": "labels.jsonl", "dpo": "dpo.jsonl", "kto": "kto.jsonl"}
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True)
class HumanLabel:
    """A decided human verdict on one response."""

    verdict: Verdict
    group: str | None = None
    score: float | None = None
    corrected_response: str | None = None
    decided_at: str | None = None
    reviewers: tuple[str, ...] = ()


@dataclass
class HumanFeedback:
    """Human labels (overrides of judge verdicts) and extra DPO/KTO rows in TRL's conversational format."""

    labels: dict[tuple[str, str], HumanLabel] = field(default_factory=dict)
    labels_by_text: dict[tuple[str, str], HumanLabel] = field(default_factory=dict)
    dpo: list[dict[str, Any]] = field(default_factory=list)
    kto: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add_label(self, prompt_id: str | None, prompt: str | None, response: str, label: HumanLabel) -> None:
        """Keep ``label`` for a response unless a later decision is already known."""
        for table, key in ((self.labels, prompt_id), (self.labels_by_text, prompt)):
            if key is None:
                continue
            old = table.get((key, response))
            if old is None or (label.decided_at or "") >= (old.decided_at or ""):
                table[(key, response)] = label

    def label_for(self, prompt_id: str | None, prompt: str | None, response: str) -> HumanLabel | None:
        """The human label of a response, by prompt id first, then by prompt text."""
        if prompt_id is not None and (str(prompt_id), response) in self.labels:
            return self.labels[(str(prompt_id), response)]
        if prompt is not None:
            return self.labels_by_text.get((prompt, response))
        return None

    def apply(
        self, rows: Iterable[dict[str, Any]], policy: SafetyPolicy | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Judged rows with human labels in place of judge verdicts; also return how many were overridden.

        An overridden row gets ``verdict`` (human), ``confidence`` 1.0, ``judge`` ``human:<group>``,
        ``judge_verdict`` (what the judge said, kept for agreement studies) and ``score``: by
        ``policy`` when given, else the score under the reviewing group's own policy.
        """
        out: list[dict[str, Any]] = []
        n = 0
        for row in rows:
            label = self.label_for(row.get("prompt_id"), row.get("prompt"), row.get("response", ""))
            if label is None:
                out.append(row)
                continue
            new = dict(row)
            new["judge_verdict"] = {k: row.get(k) for k in ("verdict", "confidence", "judge")}
            new["verdict"] = label.verdict.value
            new["confidence"] = 1.0
            new["judge"] = f"human:{label.group}" if label.group else "human"
            if policy is not None:
                new["score"] = policy.score(row.get("harm_level"), label.verdict)
            elif "harm_level" in row or label.score is not None:
                new["score"] = label.score
            out.append(new)
            n += 1
        return out, n

    def for_prompts(self, prompt_ids: Iterable[str] = (), prompts: Iterable[str] = ()) -> HumanFeedback:
        """Only the feedback on these prompts (by id or text): keep validation and test prompts out of training."""
        ids, texts = {str(i) for i in prompt_ids}, set(prompts)

        def keep(row: dict[str, Any]) -> bool:
            text = row["prompt"][0]["content"] if isinstance(row.get("prompt"), list) else row.get("prompt")
            return str(row.get("prompt_id")) in ids or text in texts

        return HumanFeedback(
            labels={k: v for k, v in self.labels.items() if k[0] in ids},
            labels_by_text={k: v for k, v in self.labels_by_text.items() if k[0] in texts},
            dpo=[r for r in self.dpo if keep(r)],
            kto=[r for r in self.kto if keep(r)],
            sources=list(self.sources),
        )

    def summary(self) -> str:
        return f"{len(self.labels_by_text)} human labels, {len(self.dpo)} DPO pairs, {len(self.kto)} KTO examples"


def _label_from_row(row: dict[str, Any], path: Path, i: int) -> tuple[str | None, str | None, str, HumanLabel]:
    response = row.get("response")
    if not isinstance(response, str):
        raise DataError("missing or not text", path=path, row=i, field="response")
    prompt_id, prompt = row.get("prompt_id"), row.get("prompt")
    if prompt_id is None and not isinstance(prompt, str):
        raise DataError("a label needs 'prompt_id' or 'prompt'", path=path, row=i, field="prompt")
    try:
        verdict = Verdict.parse(row.get("verdict"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise DataError(str(exc), path=path, row=i, field="verdict") from None
    if verdict not in DECIDED_VERDICTS:
        raise DataError("a human label must be Accept, Caution or Refuse", path=path, row=i, field="verdict")
    score = row.get("score")
    label = HumanLabel(
        verdict=verdict,
        group=row.get("group"),
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        corrected_response=row.get("corrected_response"),
        decided_at=row.get("decided_at"),
        reviewers=tuple(row.get("reviewers") or ()),
    )
    return (str(prompt_id) if prompt_id is not None else None), prompt, response, label


def _check_trl(rows: list[dict[str, Any]], columns: Sequence[str], path: Path) -> list[dict[str, Any]]:
    for i, row in enumerate(rows, start=1):
        for c in columns:
            if c not in row:
                raise DataError(f"missing; {'/'.join(columns)} rows need it", path=path, row=i, field=c)
    return rows


def _detect_kind(rows: list[dict[str, Any]], path: Path) -> str:
    if not rows:
        return "empty"
    first = rows[0]
    if "chosen" in first and "rejected" in first:
        return "dpo"
    if "completion" in first and "label" in first:
        return "kto"
    if "verdict" in first and "response" in first:
        return "labels"
    raise DataError(
        "not a review export: expected label rows (response, verdict), DPO rows (prompt, chosen, rejected) "
        "or KTO rows (prompt, completion, label)",
        path=path,
        row=1,
    )


def _add_file(fb: HumanFeedback, path: Path, group: str | None, kind: str | None = None) -> None:
    rows = read_jsonl(path)
    kind = kind or _detect_kind(rows, path)
    if group is not None:
        rows = [r for r in rows if r.get("group") in (None, group)]
    if kind == "labels":
        for i, row in enumerate(rows, start=1):
            prompt_id, prompt, response, label = _label_from_row(row, path, i)
            fb.add_label(prompt_id, prompt, response, label)
    elif kind == "dpo":
        fb.dpo.extend(_check_trl(rows, ("prompt", "chosen", "rejected"), path))
    elif kind == "kto":
        fb.kto.extend(_check_trl(rows, ("prompt", "completion", "label"), path))
    fb.sources.append(str(path))


def _add_database(fb: HumanFeedback, url: str, group: str | None) -> None:
    from carealign.review.db import open_database
    from carealign.review.exports import dpo_rows, kto_rows, label_rows

    engine, sessions = open_database(url, migrate=False)
    try:
        with sessions() as db:
            for i, row in enumerate(label_rows(db, group), start=1):
                prompt_id, prompt, response, label = _label_from_row(row, Path(url), i)
                fb.add_label(prompt_id, prompt, response, label)
            fb.dpo.extend(dpo_rows(db, group))
            fb.kto.extend(kto_rows(db, group))
    finally:
        engine.dispose()
    fb.sources.append(url)


def load_human_feedback(source: str | Path | Sequence[str | Path], *, group: str | None = None) -> HumanFeedback:
    """Read human feedback from one or more sources.

    A source is a database URL (``sqlite:///review.db``, ``postgresql://...``), a SQLite file
    (``.db``, ``.sqlite``, ``.sqlite3``), a directory holding exports named ``labels.jsonl``,
    ``dpo.jsonl`` and/or ``kto.jsonl``, or one export file (its kind is recognised by its
    columns). ``group`` keeps only that stakeholder group's decisions.
    """
    sources = [source] if isinstance(source, str | Path) else list(source)
    fb = HumanFeedback()
    for src in sources:
        text = str(src)
        path = Path(text)
        if "://" in text:
            _add_database(fb, text, group)
        elif path.suffix in _SQLITE_SUFFIXES:
            if not path.is_file():
                raise DataError("review database not found", path=path)
            _add_database(fb, text, group)
        elif path.is_dir():
            found = [(kind, path / name) for kind, name in EXPORT_FILES.items() if (path / name).is_file()]
            if not found:
                raise DataError(f"holds none of {', '.join(EXPORT_FILES.values())}", path=path)
            for kind, f in found:
                _add_file(fb, f, group, kind)
        elif path.is_file():
            _add_file(fb, path, group)
        else:
            raise DataError("no such review database, export directory or export file", path=path)
    return fb
