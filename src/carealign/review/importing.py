"""Importing judged responses into a group's review queue.

Sources:

- an evaluation run directory (``carealign eval``): ``responses.jsonl`` (+ ``manifest.json`` for
  the model's identity);
- an alignment run directory: every ``responses.jsonl`` below it (each cycle's samples and the
  validation runs of the current policy and the candidates), each named by its relative path;
- a JSONL file of rows with the prompt's fields (``prompt`` required; ``prompt_id`` or ``id``,
  ``harm_level``, ``principle``, ``method``, ``base_prompt_id`` optional), ``response``, and the
  judges' verdicts, either as ``verdict``/``confidence``/``judge`` (what ``carealign eval`` and
  ``carealign judge`` write), as ``judges: [{"judge", "verdict", "confidence"}, ...]``, as a
  panel judge's member ``votes`` (each member's verdict is kept, so their disagreement raises
  the item's priority), or as the ``verdict_<name>``/``confidence_<name>`` columns of
  ``carealign judge agree``'s ``judged.jsonl``.

Import is idempotent: a prompt is identified by its id (or a hash of its text), a response by
its prompt and text, a judge verdict by its response and judge identity, an item by its group
and response(s). Importing the same responses judged by another judge adds that judge's verdicts
to the existing items (and updates their priority). Everything is checked before anything is
written: a bad row aborts the import with an error naming file, row and field.

Pair items compare two different responses to the same prompt found in one import (k samples of a
cycle, or the same prompt set answered by two runs): per prompt, up to ``max_pairs_per_prompt``
pairs, preferring responses from different sources, then responses the judges rate differently.
Which response is shown as A is decided by a hash of the pair, so no source is always first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carealign.domain import Verdict
from carealign.errors import DataError
from carealign.io import read_jsonl
from carealign.review.audit import Actor, record
from carealign.review.models import Group, Item, ItemKind, ItemStatus, JudgeVerdict, Prompt, Response
from carealign.review.queue import label_priority, pair_priority

_TEXT_LIMIT = 100_000


@dataclass
class SourceRows:
    """Rows read from one source, with the name they are imported under."""

    name: str
    path: Path
    rows: list[dict[str, Any]]
    model: str | None = None


@dataclass
class ImportReport:
    """What an import added or changed."""

    sources: list[str] = field(default_factory=list)
    rows: int = 0
    prompts_added: int = 0
    responses_added: int = 0
    verdicts_added: int = 0
    verdicts_changed: int = 0
    items_added: int = 0
    pairs_added: int = 0
    items_reprioritised: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.rows} rows from {len(self.sources)} source(s): {self.prompts_added} new prompts, "
            f"{self.responses_added} new responses, {self.verdicts_added} new judge verdicts "
            f"({self.verdicts_changed} changed), {self.items_added} new label items, {self.pairs_added} new pair items"
        )


def read_source(path: str | Path) -> list[SourceRows]:
    """Read an evaluation run directory, an alignment run directory or a JSONL file."""
    p = Path(path)
    if p.is_file():
        if p.suffix != ".jsonl":
            raise DataError("expected a .jsonl file or a run directory", path=p)
        return [SourceRows(p.name if p.name != "responses.jsonl" else p.parent.name, p, read_jsonl(p))]
    if not p.is_dir():
        raise DataError("no such file or directory", path=p)
    if (p / "responses.jsonl").is_file():
        return [SourceRows(p.name, p / "responses.jsonl", read_jsonl(p / "responses.jsonl"), _run_model(p))]
    found = sorted(p.rglob("responses.jsonl"))
    if not found:
        raise DataError("holds no responses.jsonl (expected an eval or alignment run directory)", path=p)
    return [
        SourceRows(f"{p.name}/{f.parent.relative_to(p).as_posix()}", f, read_jsonl(f), _run_model(f.parent))
        for f in found
    ]


def _run_model(run_dir: Path) -> str | None:
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError("not valid JSON", path=manifest) from None
    model = data.get("model_identity") or (data.get("config") or {}).get("model")
    return str(model)[:255] if model else None


@dataclass
class _Row:
    key: str
    prompt: str
    harm_level: int | None
    principle: str | None
    method: str | None
    base_prompt_id: str | None
    response: str
    sample: int | None
    model: str | None
    judges: list[tuple[str, str, float | None]]
    where: tuple[Path, int]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _opt_str(row: dict[str, Any], key: str, path: Path, i: int, limit: int = 255) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(f"expected text, got {type(value).__name__}", path=path, row=i, field=key)
    text = str(value)
    if len(text) > limit:
        raise DataError(f"longer than {limit} characters", path=path, row=i, field=key)
    return text


def _verdict_entry(
    obj: dict[str, Any],
    prefix: str,
    path: Path,
    i: int,
    *,
    verdict_key: str = "verdict",
    confidence_key: str = "confidence",
) -> tuple[str, str, float | None]:
    judge = obj.get("judge")
    if not isinstance(judge, str) or not judge.strip():
        raise DataError(
            "a verdict needs the identity of the judge that gave it", path=path, row=i, field=f"{prefix}judge"
        )
    if len(judge) > 255:
        raise DataError("longer than 255 characters", path=path, row=i, field=f"{prefix}judge")
    try:
        verdict = Verdict.parse(obj.get(verdict_key))  # type: ignore[arg-type]
    except ValueError as exc:
        raise DataError(str(exc), path=path, row=i, field=f"{prefix}{verdict_key}") from None
    conf = obj.get(confidence_key)
    if conf is not None:
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= float(conf) <= 1.0:
            raise DataError(
                f"confidence {conf!r}; expected a number in [0, 1]", path=path, row=i, field=f"{prefix}{confidence_key}"
            )
        conf = float(conf)
    return judge.strip(), verdict.value, conf


def _judges(row: dict[str, Any], path: Path, i: int) -> list[tuple[str, str, float | None]]:
    """Every judge verdict a row carries: ``verdict``/``confidence``/``judge``; ``judges: [...]``;
    a panel's member ``votes: {judge: verdict}``; and the ``verdict_<name>``/``confidence_<name>``
    columns that ``carealign judge agree`` writes."""
    found: list[tuple[str, str, float | None]] = []
    if row.get("verdict") is not None:
        found.append(_verdict_entry(row, "", path, i))
    extra = row.get("judges")
    if extra is not None:
        if not isinstance(extra, list):
            raise DataError("expected a list of {judge, verdict, confidence} objects", path=path, row=i, field="judges")
        for j, obj in enumerate(extra):
            if not isinstance(obj, dict):
                raise DataError("expected an object", path=path, row=i, field=f"judges[{j}]")
            found.append(_verdict_entry(obj, f"judges[{j}].", path, i))
    for key in sorted(k for k in row if k == "votes" or k.startswith("votes_")):
        votes = row[key]
        if votes is None:
            continue
        if not isinstance(votes, dict):
            raise DataError("expected an object of judge -> verdict", path=path, row=i, field=key)
        for member, verdict in votes.items():
            found.append(_verdict_entry({"judge": member, "verdict": verdict}, f"{key}.", path, i))
    for key in sorted(k for k in row if k.startswith("verdict_")):
        if row[key] is None:
            continue
        name = key[len("verdict_") :]
        obj = {"judge": name, key: row[key], f"confidence_{name}": row.get(f"confidence_{name}")}
        found.append(_verdict_entry(obj, "", path, i, verdict_key=key, confidence_key=f"confidence_{name}"))
    return list({judge: (judge, v, c) for judge, v, c in found}.values())


def parse_row(row: dict[str, Any], path: Path, i: int, model: str | None = None) -> _Row:
    """Check one row; errors name the file, the row (1-based) and the field."""
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError("missing or empty; every row needs the prompt's text", path=path, row=i, field="prompt")
    response = row.get("response")
    if not isinstance(response, str):
        raise DataError("missing or not text; every row needs the response", path=path, row=i, field="response")
    for key, text in (("prompt", prompt), ("response", response)):
        if len(text) > _TEXT_LIMIT:
            raise DataError(f"longer than {_TEXT_LIMIT} characters", path=path, row=i, field=key)
    key_field = "prompt_id" if row.get("prompt_id") is not None else "id"
    key = _opt_str(row, key_field, path, i) or f"sha256:{_sha(prompt)[:32]}"
    level = row.get("harm_level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 3):
        raise DataError(f"harm level {level!r}; expected 0, 1, 2 or 3", path=path, row=i, field="harm_level")
    sample = row.get("sample")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)):
        raise DataError(f"sample {sample!r}; expected an integer", path=path, row=i, field="sample")
    return _Row(
        key=key,
        prompt=prompt,
        harm_level=level,
        principle=_opt_str(row, "principle", path, i, 128),
        method=_opt_str(row, "method", path, i, 32),
        base_prompt_id=_opt_str(row, "base_prompt_id", path, i),
        response=response,
        sample=sample,
        model=_opt_str(row, "model", path, i) or model,
        judges=_judges(row, path, i),
        where=(path, i),
    )


def _chunks(values: list[Any], n: int = 500) -> list[list[Any]]:
    return [values[i : i + n] for i in range(0, len(values), n)]


def import_sources(
    db: Session,
    sources: list[SourceRows],
    group: Group,
    actor: Actor,
    *,
    reviews_required: int | None = None,
    pairs: bool = True,
    max_pairs_per_prompt: int = 1,
) -> ImportReport:
    """Add the sources' prompts, responses and judge verdicts, and queue them in ``group``. Commits.

    ``reviews_required`` (1 or 2) applies to new items; by default the group's setting.
    """
    required = group.reviews_required if reviews_required is None else reviews_required
    if required not in (1, 2):
        raise DataError(f"reviews required {required!r}; expected 1 or 2")
    if max_pairs_per_prompt < 0:
        raise DataError(f"max pairs per prompt {max_pairs_per_prompt!r}; expected 0 or more")
    parsed = [
        (src, parse_row(row, src.path, i, src.model)) for src in sources for i, row in enumerate(src.rows, start=1)
    ]
    report = ImportReport(sources=[s.name for s in sources], rows=len(parsed))

    # prompts: one per key, with the same text and harm level everywhere
    keys = list(dict.fromkeys(r.key for _, r in parsed))
    prompts: dict[str, Prompt] = {}
    for part in _chunks(keys):
        prompts.update({p.key: p for p in db.scalars(select(Prompt).where(Prompt.key.in_(part)))})
    for _, r in parsed:
        p = prompts.get(r.key)
        if p is None:
            p = Prompt(
                key=r.key,
                text=r.prompt,
                text_sha256=_sha(r.prompt),
                harm_level=r.harm_level,
                principle=r.principle,
                method=r.method,
                base_prompt_id=r.base_prompt_id,
            )
            prompts[r.key] = p
            db.add(p)
            report.prompts_added += 1
            continue
        path, i = r.where
        if p.text != r.prompt:
            raise DataError(
                f"prompt id {r.key!r} is already imported with a different text", path=path, row=i, field="prompt"
            )
        if r.harm_level is not None and p.harm_level is not None and r.harm_level != p.harm_level:
            raise DataError(
                f"prompt id {r.key!r} is already imported with harm level {p.harm_level}",
                path=path,
                row=i,
                field="harm_level",
            )
        if p.harm_level is None and r.harm_level is not None:
            p.harm_level = r.harm_level
    db.flush()

    # responses: one per (prompt, text)
    responses: dict[tuple[int, str], Response] = {}
    prompt_ids = list({p.id for p in prompts.values()})
    for part in _chunks(prompt_ids):
        for resp in db.scalars(select(Response).where(Response.prompt_id.in_(part))):
            responses[(resp.prompt_id, resp.text_sha256)] = resp
    row_responses: list[tuple[SourceRows, _Row, Response]] = []
    for src, r in parsed:
        pid = prompts[r.key].id
        sha = _sha(r.response)
        found = responses.get((pid, sha))
        if found is not None:
            resp = found
        else:
            resp = Response(
                prompt_id=pid, text=r.response, text_sha256=sha, source=src.name[:512], model=r.model, sample=r.sample
            )
            responses[(pid, sha)] = resp
            db.add(resp)
            report.responses_added += 1
        row_responses.append((src, r, resp))
    db.flush()

    # judge verdicts: one per (response, judge); a changed verdict replaces the old one
    touched = {resp.id for _, _, resp in row_responses}
    verdicts: dict[tuple[int, str], JudgeVerdict] = {}
    for part in _chunks(sorted(touched)):
        for v in db.scalars(select(JudgeVerdict).where(JudgeVerdict.response_id.in_(part))):
            verdicts[(v.response_id, v.judge)] = v
    changed_responses: set[int] = set()
    for src, r, resp in row_responses:
        for judge, verdict, conf in r.judges:
            current = verdicts.get((resp.id, judge))
            if current is None:
                current = JudgeVerdict(
                    response_id=resp.id, judge=judge, verdict=verdict, confidence=conf, source=src.name[:512]
                )
                verdicts[(resp.id, judge)] = current
                db.add(current)
                report.verdicts_added += 1
                changed_responses.add(resp.id)
            elif (current.verdict, current.confidence) != (verdict, conf):
                current.verdict, current.confidence, current.source = verdict, conf, src.name[:512]
                report.verdicts_changed += 1
                changed_responses.add(resp.id)
    db.flush()
    by_response: dict[int, list[JudgeVerdict]] = {}
    for (rid, _), v in sorted(verdicts.items(), key=lambda kv: kv[0][1]):
        by_response.setdefault(rid, []).append(v)

    # label items
    existing: dict[str, Item] = {}
    item_keys = [f"label:{rid}" for rid in touched]
    for part in _chunks(item_keys):
        existing.update(
            {it.key: it for it in db.scalars(select(Item).where(Item.group_id == group.id, Item.key.in_(part)))}
        )
    for _, r, resp in row_responses:
        key = f"label:{resp.id}"
        prio = label_priority(
            r.harm_level if r.harm_level is not None else prompts[r.key].harm_level, by_response.get(resp.id, [])
        )
        item = existing.get(key)
        if item is None:
            item = Item(
                group_id=group.id,
                key=key,
                kind=ItemKind.LABEL.value,
                prompt_id=resp.prompt_id,
                response_id=resp.id,
                required_reviews=required,
                status=ItemStatus.OPEN.value,
                priority=prio.score,
                priority_reasons=prio.text[:512],
            )
            existing[key] = item
            db.add(item)
            report.items_added += 1
        elif resp.id in changed_responses and item.status == ItemStatus.OPEN.value and item.priority != prio.score:
            _reprioritise(db, item, prio.score, prio.text)
            report.items_reprioritised += 1

    # pair items
    if pairs and max_pairs_per_prompt > 0:
        report.pairs_added = _add_pairs(db, group, row_responses, by_response, prompts, required, max_pairs_per_prompt)
    record(
        db,
        actor,
        "import",
        target=f"group:{group.name}",
        new={**report.to_dict(), "group": group.name, "reviews_required": required},
    )
    db.commit()
    return report


def _reprioritise(db: Session, item: Item, score: float, reasons: str) -> None:
    # a plain UPDATE: a new judge verdict must not bump the version a reviewer's open form holds
    db.execute(
        update(Item)
        .where(Item.id == item.id)
        .values(priority=score, priority_reasons=reasons[:512])
        .execution_options(synchronize_session=False)
    )


def _majority(vs: list[JudgeVerdict]) -> str | None:
    return Counter(v.verdict for v in vs).most_common(1)[0][0] if vs else None


def _add_pairs(
    db: Session,
    group: Group,
    row_responses: list[tuple[SourceRows, _Row, Response]],
    by_response: dict[int, list[JudgeVerdict]],
    prompts: dict[str, Prompt],
    required: int,
    max_pairs: int,
) -> int:
    per_prompt: dict[str, list[tuple[str, Response]]] = {}
    for src, r, resp in row_responses:
        seen = per_prompt.setdefault(r.key, [])
        if all(other.id != resp.id for _, other in seen):
            seen.append((src.name, resp))
    wanted: list[tuple[Prompt, Response, Response]] = []
    for key, cands in per_prompt.items():
        if len(cands) < 2:
            continue
        ranked = sorted(
            itertools.combinations(range(len(cands)), 2),
            key=lambda ij: (
                cands[ij[0]][0] == cands[ij[1]][0],  # different sources first
                _majority(by_response.get(cands[ij[0]][1].id, []))
                == _majority(by_response.get(cands[ij[1]][1].id, [])),
                ij,
            ),
        )
        for i, j in ranked[:max_pairs]:
            a, b = cands[i][1], cands[j][1]
            lo, hi = sorted((a.id, b.id))
            if int(_sha(f"{lo}:{hi}")[:8], 16) % 2:  # deterministic shuffle of which one is A
                lo, hi = hi, lo
            wanted.append((prompts[key], db.get(Response, lo), db.get(Response, hi)))  # type: ignore[arg-type]
    keys = [f"pair:{min(a.id, b.id)}:{max(a.id, b.id)}" for _, a, b in wanted]
    existing: set[str] = set()
    for part in _chunks(keys):
        existing.update(db.scalars(select(Item.key).where(Item.group_id == group.id, Item.key.in_(part))))
    added = 0
    for (prompt, a, b), key in zip(wanted, keys, strict=True):
        if key in existing:
            continue
        existing.add(key)
        prio = pair_priority(prompt.harm_level, by_response.get(a.id, []), by_response.get(b.id, []))
        db.add(
            Item(
                group_id=group.id,
                key=key,
                kind=ItemKind.PAIR.value,
                prompt_id=prompt.id,
                response_id=a.id,
                response_b_id=b.id,
                required_reviews=required,
                status=ItemStatus.OPEN.value,
                priority=prio.score,
                priority_reasons=prio.text[:512],
            )
        )
        added += 1
    return added


def import_paths(
    db: Session,
    paths: list[str | Path],
    group: Group,
    actor: Actor,
    *,
    reviews_required: int | None = None,
    pairs: bool = True,
    max_pairs_per_prompt: int = 1,
) -> ImportReport:
    """Read every path (:func:`read_source`) and import them together (pairs may span them). Commits."""
    sources = [s for p in paths for s in read_source(p)]
    return import_sources(
        db,
        sources,
        group,
        actor,
        reviews_required=reviews_required,
        pairs=pairs,
        max_pairs_per_prompt=max_pairs_per_prompt,
    )
