"""Loaders for prompt sets: the bundled sample, CARES-18K, and any JSONL/CSV/Parquet file.

Every loader returns a list of :class:`PromptRecord`. Bad input raises
:class:`~carealign.errors.DataError` naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from carealign.data.public import PUBLIC_SOURCES, load_public
from carealign.data.records import PromptRecord
from carealign.domain import METHODS, principle_from_index
from carealign.errors import DataError

SAMPLE_SPLITS = ("train", "validation", "test")
CARES_SPLITS = ("train", "test")
CARES_HUB_ID = "HFXM/CARES-18K"
CARES_COLUMNS = ("principle_index", "generation_model", "harmful_level", "method", "base_prompt", "prompt")

#: CARES spells some methods differently from carealign.
_METHOD_ALIASES = {
    "direct": "direct",
    "indirect": "indirect",
    "obfuscate": "obfuscate",
    "obfuscation": "obfuscate",
    "role_play": "role_play",
    "roleplay": "role_play",
    "role-play": "role_play",
    "role play": "role_play",
}


def sample_path() -> Path:
    """Path of the bundled sample (JSONL, one prompt per line with its split)."""
    return Path(str(resources.files("carealign").joinpath("resources/sample.jsonl")))


def load_prompts(
    source: str | os.PathLike[str],
    split: str | None = None,
    *,
    limit: int | None = None,
    subset_seed: int | None = None,
) -> list[PromptRecord]:
    """Load prompts by name (``sample``, ``cares``) or from a file path.

    Args:
        source: ``"sample"`` (bundled), ``"medsafetybench"``/``"medquad"`` (bundled public sets, see
            :mod:`carealign.data.public`), ``"cares"`` (CARES-18K from the hub, online only),
            ``"cares:PATH"`` (a local CARES copy), or a ``.jsonl``/``.json``/``.csv``/``.parquet`` file.
        split: the split to keep. Sample: train/validation/test (default test). Public sets and
            CARES: train/test (default test).
            Files: rows whose ``split`` column matches, if any.
        limit: keep at most this many prompts: the first ones, or a random subset when ``subset_seed`` is set.
        subset_seed: draw the ``limit`` prompts at random with this seed (original order kept), so a
            subset covers every principle and harm level rather than the first ones in the file.
    """
    name = str(source)
    if name == "sample":
        records = load_sample(split or "test")
    elif name in PUBLIC_SOURCES:
        records = load_public(name, split or "test")
    elif name == "cares":
        records = load_cares(split=split or "test")
    elif name.startswith("cares:"):
        records = load_cares(name.removeprefix("cares:"), split=split)
    else:
        path = Path(name)
        if not path.exists():
            raise DataError(
                "no such file; --prompts takes 'sample', 'medsafetybench', 'medquad', 'cares', 'cares:PATH' "
                "or a .jsonl/.csv/.parquet file",
                path=path,
            )
        if _looks_like_cares(path):
            records = load_cares(path, split=split)
        else:
            records = load_prompt_file(path, split=split)
    if limit is not None and subset_seed is not None and limit < len(records):
        keep = set(random.Random(subset_seed).sample(range(len(records)), limit))
        records = [r for i, r in enumerate(records) if i in keep]
    elif limit is not None:
        records = records[:limit]
    if not records:
        raise DataError(f"no prompts selected (split={split!r})", path=name)
    return records


def load_sample(split: str = "test") -> list[PromptRecord]:
    """The bundled sample: original CARES-shaped prompts, split by base prompt."""
    if split not in (*SAMPLE_SPLITS, "all"):
        raise DataError(f"unknown split {split!r}; the sample has {', '.join(SAMPLE_SPLITS)} (or all)")
    records = load_prompt_file(sample_path(), source="sample")
    if split == "all":
        return records
    return [r for r in records if r.split == split]


def load_prompt_file(path: str | Path, *, split: str | None = None, source: str | None = None) -> list[PromptRecord]:
    """Load a JSONL, JSON, CSV or Parquet file with a ``prompt`` column.

    Optional columns: ``id``, ``harm_level``, ``method``, ``principle``, ``base_prompt_id``, ``split``.
    """
    path = Path(path)
    rows = list(_read_table(path))
    if rows and "prompt" not in rows[0][1]:
        cols = ", ".join(sorted(rows[0][1])) or "none"
        raise DataError(f"missing required column 'prompt' (columns found: {cols})", path=path, field="prompt")
    records = []
    seen: set[str] = set()
    for rowno, row in rows:
        rec = _record_from_row(row, path=path, rowno=rowno, source=source or path.stem)
        if rec.id in seen:
            raise DataError(f"duplicate id {rec.id!r}", path=path, row=rowno, field="id")
        seen.add(rec.id)
        records.append(rec)
    if split is not None and any(r.split is not None for r in records):
        records = [r for r in records if r.split == split]
    return records


def load_cares(path: str | Path | None = None, *, split: str | None = None) -> list[PromptRecord]:
    """CARES-18K: from a local Parquet/JSONL/CSV copy, or from the hub when ``path`` is None.

    Rows keep CARES' columns (``principle_index, generation_model, harmful_level, method,
    base_prompt, prompt``). Rewrites of one base prompt share ``base_prompt_id`` (a hash of
    the base prompt text), so they never straddle a split.
    """
    if path is None:
        split = split or "test"
        if split not in CARES_SPLITS:
            raise DataError(f"unknown CARES split {split!r}; expected one of {', '.join(CARES_SPLITS)}")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise DataError(
                f"CARES-18K comes from the Hugging Face hub ({CARES_HUB_ID}) and HF_HUB_OFFLINE=1; "
                "download it once and pass the local file with --prompts cares:PATH or a file path"
            )
        try:
            from datasets import load_dataset

            ds = load_dataset(CARES_HUB_ID, split=split)
        except Exception as exc:  # network, auth, missing dataset: all user-actionable
            raise DataError(
                f"could not load {CARES_HUB_ID} split {split!r} from the hub ({type(exc).__name__}: {exc}); "
                "pass a local copy with --prompts cares:PATH"
            ) from None
        rows: Iterable[tuple[int, dict[str, Any]]] = enumerate(ds, start=1)
        where: str | Path = f"{CARES_HUB_ID}[{split}]"
    else:
        where = Path(path)
        rows = _read_table(where)
    records = []
    for rowno, row in rows:
        missing = [c for c in ("principle_index", "harmful_level", "method", "prompt") if c not in row]
        if missing:
            raise DataError(
                f"not a CARES row: missing column(s) {', '.join(missing)}", path=where, row=rowno, field=missing[0]
            )
        if split is not None and "split" in row and row["split"] not in (None, split):
            continue
        try:
            principle = principle_from_index(int(row["principle_index"]))
        except (TypeError, ValueError) as exc:
            raise DataError(str(exc), path=where, row=rowno, field="principle_index") from None
        level = _parse_harm_level(row["harmful_level"], path=where, rowno=rowno, field="harmful_level")
        method = _parse_method(row["method"], path=where, rowno=rowno)
        base = str(row.get("base_prompt") or row["prompt"])
        base_id = "cares-" + hashlib.sha1(base.encode("utf-8")).hexdigest()[:12]
        prompt = row["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError("empty prompt; expected non-empty text", path=where, row=rowno, field="prompt")
        records.append(
            PromptRecord(
                id=str(row.get("id") or f"{base_id}-{method}-{rowno}"),
                prompt=prompt,
                harm_level=level,
                principle=principle,
                method=method,
                base_prompt_id=base_id,
                source="cares",
                split=split,
            )
        )
    return records


# ----------------------------------------------------------------------------- helpers


def _looks_like_cares(path: Path) -> bool:
    for _, row in _read_table(path, max_rows=1):
        return "harmful_level" in row and "principle_index" in row
    return False


def _read_table(path: Path, max_rows: int | None = None) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield (1-based row number, row dict). Data rows of a CSV count from 1 after the header."""
    if not path.exists():
        raise DataError("file not found", path=path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl_rows(path, max_rows)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"broken JSON ({exc.msg} at line {exc.lineno})", path=path) from None
        if not isinstance(data, list):
            raise DataError("expected a JSON array of objects", path=path)
        for i, row in enumerate(data[:max_rows] if max_rows else data, start=1):
            if not isinstance(row, dict):
                raise DataError(f"expected an object, got {type(row).__name__}", path=path, row=i)
            yield i, row
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for i, row in enumerate(reader, start=1):
                if max_rows and i > max_rows:
                    return
                yield i, {k: (v if v != "" else None) for k, v in row.items() if k is not None}
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(f"cannot read Parquet ({exc})", path=path) from None
        for i, row in enumerate(table.to_pylist(), start=1):
            if max_rows and i > max_rows:
                return
            yield i, row
    else:
        raise DataError(
            f"unsupported file type {suffix or '(none)'}; expected .jsonl, .json, .csv or .parquet", path=path
        )


def _read_jsonl_rows(path: Path, max_rows: int | None) -> Iterable[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if max_rows and i > max_rows:
                return
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"broken JSON line ({exc.msg} at column {exc.colno})", path=path, row=i) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, row=i)
            yield i, obj


def _parse_harm_level(value: Any, *, path: str | Path, rowno: int, field: str = "harm_level") -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"harm level {value!r} is not a number; expected 0, 1, 2 or 3", path=path, row=rowno, field=field
        ) from None
    if as_float != int(as_float) or not 0 <= as_float <= 3:
        raise DataError(f"harm level {value!r} out of range; expected 0, 1, 2 or 3", path=path, row=rowno, field=field)
    return int(as_float)


def _parse_method(value: Any, *, path: str | Path, rowno: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    key = str(value).strip().lower()
    if key not in _METHOD_ALIASES:
        raise DataError(
            f"unknown method {value!r}; expected one of {', '.join(METHODS)}", path=path, row=rowno, field="method"
        )
    return _METHOD_ALIASES[key]


def _record_from_row(row: dict[str, Any], *, path: Path, rowno: int, source: str) -> PromptRecord:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError("empty or missing prompt; expected non-empty text", path=path, row=rowno, field="prompt")
    level = _parse_harm_level(row.get("harm_level"), path=path, rowno=rowno)
    method = _parse_method(row.get("method"), path=path, rowno=rowno)
    rid = row.get("id")
    try:
        return PromptRecord(
            id=str(rid) if rid not in (None, "") else f"{source}-{rowno}",
            prompt=prompt,
            harm_level=level,
            principle=(str(row["principle"]) if row.get("principle") not in (None, "") else None),
            method=method,
            base_prompt_id=(str(row["base_prompt_id"]) if row.get("base_prompt_id") not in (None, "") else None),
            source=str(row.get("source") or source),
            split=(str(row["split"]) if row.get("split") not in (None, "") else None),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err.get("loc", ())) or None
        raise DataError(err.get("msg", str(exc)), path=path, row=rowno, field=field) from None
