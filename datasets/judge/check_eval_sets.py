"""Validate the judge evaluation sets (contrast, public held-out, other-models held-out).

Usage:
    .venv/bin/python datasets/judge/check_eval_sets.py [FILE ...] [--data-dir DIR] [--sample PATH]

With no FILE, checks every set in SETS that exists next to this script. For each row it checks
required fields and types, no unknown fields, the verdict label, the id pattern, ids unique across
all checked files, the source and voice labels, and that the prompt comes from a held-out part:
the bundled sample's test split (same prompt and harm level), or the test part of MedSafetyBench
(harm level 3) or MedQuAD (harm level 0), where a public row is in the test part when
int(sha256(id)[:8], 16) % 5 == 0. It then prints counts by verdict, prompt kind, source, voice and
style. On any problem it exits 1, naming the file, line, id and field.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_SAMPLE = REPO_ROOT / "src" / "carealign" / "resources" / "sample.jsonl"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
PUBLIC_FILES = {"medsafetybench": "medsafetybench_train.jsonl", "medquad": "medquad_benign.jsonl"}
PUBLIC_HARM = {"medsafetybench": 3, "medquad": 0}

VERDICTS = ("Accept", "Caution", "Refuse")
MODEL_VOICES = ("gpt4", "claude", "llama2_chat", "llama3", "mistral", "gemma")
CONTRAST_VOICES = (*MODEL_VOICES, "small_model", "casual", "persona")
STYLES = (
    "plain",
    "list",
    "markdown",
    "terse",
    "typos",
    "role_play",
    "apology_then_comply",
    "disclaimer_then_comply",
    "long_polite_refusal",
    "firm_refusal",
    "partial_with_warning",
    "safe_redirect",
)

COMMON = {
    "id": str,
    "prompt_id": str,
    "source": str,
    "prompt": str,
    "harm_level": int,
    "response": str,
    "verdict": str,
    "voice": str,
    "note": str,
}

# file name -> (id pattern, fields, allowed sources, allowed voices)
SETS: dict[str, tuple[re.Pattern[str], dict[str, type], tuple[str, ...], tuple[str, ...]]] = {
    "contrast.jsonl": (
        re.compile(r"^contrast-\d{4}$"),
        {**COMMON, "style": str},
        ("medsafetybench", "medquad", "sample"),
        CONTRAST_VOICES,
    ),
    "public_heldout.jsonl": (
        re.compile(r"^public-\d{4}$"),
        dict(COMMON),
        ("medsafetybench", "medquad"),
        ("smollm2",),
    ),
    "other_models_heldout.jsonl": (
        re.compile(r"^other-\d{4}$"),
        {**COMMON, "style": str},
        ("medsafetybench", "medquad", "sample"),
        MODEL_VOICES,
    ),
}


def in_test_part(row_id: str) -> bool:
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % 5 == 0


def load_prompts(data_dir: Path, sample_path: Path) -> dict[str, dict[str, dict[str, int]]]:
    """source -> prompt_id -> {prompt: harm_level}, held-out parts only (public ids may repeat)."""
    prompts: dict[str, dict[str, dict[str, int]]] = {}
    for source, name in PUBLIC_FILES.items():
        table: dict[str, dict[str, int]] = {}
        with (data_dir / name).open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if in_test_part(row["id"]):
                        table.setdefault(row["id"], {})[row["prompt"]] = PUBLIC_HARM[source]
        prompts[source] = table
    table = {}
    with sample_path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("split") == "test":
                    table[row["id"]] = {row["prompt"]: row["harm_level"]}
    prompts["sample"] = table
    return prompts


def check_row(row: object, where: str, spec: tuple, prompts: dict) -> list[str]:
    """Return the problems of one parsed row; `where` names it in messages."""
    id_re, fields, sources, voices = spec
    if not isinstance(row, dict):
        return [f"{where}: row is not a JSON object"]
    errors = []
    for name, typ in fields.items():
        if name not in row:
            errors.append(f"{where}: field '{name}' is missing")
            continue
        value = row[name]
        if not isinstance(value, typ) or isinstance(value, bool):
            errors.append(f"{where}: field '{name}' should be {typ.__name__}, got {type(value).__name__}")
        elif typ is str and not value.strip():
            errors.append(f"{where}: field '{name}' is empty")
    extra = sorted(set(row) - set(fields))
    if extra:
        errors.append(f"{where}: unexpected field(s) {', '.join(extra)}")
    if errors:
        return errors

    if not id_re.match(row["id"]):
        errors.append(f"{where}: field 'id' does not match {id_re.pattern}")
    if row["verdict"] not in VERDICTS:
        errors.append(f"{where}: field 'verdict' must be one of {', '.join(VERDICTS)}, got {row['verdict']!r}")
    if row["voice"] not in voices:
        errors.append(f"{where}: field 'voice' must be one of {', '.join(voices)}, got {row['voice']!r}")
    if "style" in fields and row["style"] not in STYLES:
        errors.append(f"{where}: field 'style' is not a known style: {row['style']!r}")
    if row["source"] not in sources:
        errors.append(f"{where}: field 'source' must be one of {', '.join(sources)}, got {row['source']!r}")
        return errors

    if row["source"] != "sample" and not in_test_part(row["prompt_id"]):
        errors.append(f"{where}: field 'prompt_id' {row['prompt_id']!r} is in the train part of {row['source']}")
        return errors
    known = prompts[row["source"]].get(row["prompt_id"])
    if known is None:
        errors.append(f"{where}: field 'prompt_id' {row['prompt_id']!r} is not a held-out {row['source']} prompt")
    elif row["prompt"] not in known:
        errors.append(f"{where}: field 'prompt' does not match {row['source']} row {row['prompt_id']!r}")
    elif row["harm_level"] != known[row["prompt"]]:
        errors.append(
            f"{where}: field 'harm_level' is {row['harm_level']}, "
            f"{row['source']} row {row['prompt_id']!r} has {known[row['prompt']]}"
        )
    return errors


def prompt_kind(row: dict) -> str:
    return "benign" if row["harm_level"] == 0 else "harmful"


def check_file(path: Path, prompts: dict, seen_ids: dict[str, str]) -> tuple[list[str], list[dict]]:
    spec = SETS[path.name]
    errors: list[str] = []
    rows: list[dict] = []
    pairs: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                errors.append(f"{path.name} line {lineno}: blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path.name} line {lineno}: invalid JSON ({exc.msg})")
                continue
            row_id = row.get("id") if isinstance(row, dict) else None
            where = f"{path.name} line {lineno} (id={row_id})"
            row_errors = check_row(row, where, spec, prompts)
            errors.extend(row_errors)
            if isinstance(row_id, str):
                if row_id in seen_ids:
                    errors.append(f"{where}: field 'id' duplicates {seen_ids[row_id]}")
                else:
                    seen_ids[row_id] = f"{path.name} line {lineno}"
            if not row_errors:
                key = (row["prompt"], row["response"])
                if key in pairs:
                    errors.append(f"{where}: field 'response' repeats line {pairs[key]} for the same prompt")
                pairs[key] = lineno
                rows.append(row)
    return errors, rows


def show(title: str, counts: Counter) -> None:
    print(f"  by {title}:")
    for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        print(f"    {key!s:<30} {n:4d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="sets to check (default: all present)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with the public sets")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="bundled sample JSONL")
    args = parser.parse_args(argv)

    files = args.files or [HERE / name for name in SETS if (HERE / name).is_file()]
    needed = [args.sample, *(args.data_dir / name for name in PUBLIC_FILES.values()), *files]
    for path in needed:
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
    unknown = [p for p in files if p.name not in SETS]
    if unknown:
        print(f"error: not an evaluation set: {', '.join(map(str, unknown))}", file=sys.stderr)
        return 1
    prompts = load_prompts(args.data_dir, args.sample)

    errors: list[str] = []
    seen_ids: dict[str, str] = {}
    checked = []
    for path in files:
        file_errors, rows = check_file(path, prompts, seen_ids)
        errors.extend(file_errors)
        checked.append((path, rows))

    if errors:
        print(f"{len(errors)} problem(s)", file=sys.stderr)
        for err in errors:
            print(f"  {err}", file=sys.stderr)
        return 1

    for path, rows in checked:
        n_prompts = len({(r["source"], r["prompt_id"], r["prompt"]) for r in rows})
        print(f"{path.name}: {len(rows)} rows OK, {n_prompts} distinct prompts")
        show("verdict", Counter(r["verdict"] for r in rows))
        show("prompt kind x verdict", Counter(f"{prompt_kind(r)} {r['verdict']}" for r in rows))
        show("harm level x verdict", Counter(f"{r['harm_level']} {r['verdict']}" for r in rows))
        show("source", Counter(r["source"] for r in rows))
        show("voice", Counter(r["voice"] for r in rows))
        if rows and "style" in rows[0]:
            show("style", Counter(r["style"] for r in rows))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
