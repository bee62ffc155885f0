"""Validate the hand-written judge held-out set (datasets/judge/heldout.jsonl).

Usage:
    .venv/bin/python datasets/judge/check_heldout.py [--file PATH] [--sample PATH]

Checks every row for required fields and types, allowed verdict and style labels,
style/verdict consistency, unique ids, and that each prompt_id exists in the TEST split
of the bundled sample with the same prompt, harm_level, principle and method. Prints
counts by verdict, style and harm level. Exits 1, naming the row and field, on any problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = Path(__file__).resolve().parent / "heldout.jsonl"
DEFAULT_SAMPLE = REPO_ROOT / "src" / "carealign" / "resources" / "sample.jsonl"

VERDICTS = ("Accept", "Caution", "Refuse")

# Which verdicts each phrasing style may carry (see README.md, "Styles").
STYLE_VERDICTS: dict[str, tuple[str, ...]] = {
    "blunt_refusal": ("Refuse",),
    "polite_redirection": ("Refuse",),
    "refusal_with_explanation": ("Refuse",),
    "off_topic_or_deflect": ("Refuse",),
    "partial_with_warning": ("Caution",),
    "safe_redirect_engaged": ("Caution",),
    "full_answer_with_disclaimer": ("Accept", "Caution"),
    "refusal_then_comply": ("Accept", "Caution"),
    "full_answer": ("Accept",),
    "apologetic_then_comply": ("Accept",),
    "mixed_language_or_terse": VERDICTS,
}

# field name -> expected type; all are required. "method" is copied from the sample as well.
FIELDS: dict[str, type] = {
    "id": str,
    "prompt_id": str,
    "prompt": str,
    "harm_level": int,
    "principle": str,
    "method": str,
    "response": str,
    "verdict": str,
    "style": str,
    "note": str,
}

ID_RE = re.compile(r"^heldout-\d{4}$")
MAX_ROWS_PER_PROMPT = 2


def load_test_split(sample_path: Path) -> dict[str, dict]:
    rows = {}
    with sample_path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("split") == "test":
                    rows[row["id"]] = row
    return rows


def check_row(row: object, where: str, test: dict[str, dict]) -> list[str]:
    """Return a list of problems for one parsed row; `where` names the row in messages."""
    if not isinstance(row, dict):
        return [f"{where}: row is not a JSON object"]
    errors = []
    for name, typ in FIELDS.items():
        if name not in row:
            errors.append(f"{where}: field '{name}' is missing")
            continue
        value = row[name]
        # bool is a subclass of int; a harm_level of true/false is still wrong.
        if not isinstance(value, typ) or isinstance(value, bool):
            errors.append(f"{where}: field '{name}' should be {typ.__name__}, got {type(value).__name__}")
        elif typ is str and not value.strip():
            errors.append(f"{where}: field '{name}' is empty")
    extra = sorted(set(row) - set(FIELDS))
    if extra:
        errors.append(f"{where}: unexpected field(s) {', '.join(extra)}")
    if errors:
        return errors

    if not ID_RE.match(row["id"]):
        errors.append(f"{where}: field 'id' should look like heldout-0001, got {row['id']!r}")
    if row["verdict"] not in VERDICTS:
        errors.append(f"{where}: field 'verdict' must be one of {', '.join(VERDICTS)}, got {row['verdict']!r}")
    if row["style"] not in STYLE_VERDICTS:
        errors.append(f"{where}: field 'style' is not a known style: {row['style']!r}")
    elif row["verdict"] in VERDICTS and row["verdict"] not in STYLE_VERDICTS[row["style"]]:
        allowed = "/".join(STYLE_VERDICTS[row["style"]])
        errors.append(
            f"{where}: field 'verdict' {row['verdict']!r} is not allowed for style {row['style']!r} ({allowed})"
        )
    if not 0 <= row["harm_level"] <= 3:
        errors.append(f"{where}: field 'harm_level' must be 0-3, got {row['harm_level']}")

    src = test.get(row["prompt_id"])
    if src is None:
        errors.append(f"{where}: field 'prompt_id' {row['prompt_id']!r} is not in the sample's test split")
    else:
        for name in ("prompt", "harm_level", "principle", "method"):
            if row[name] != src[name]:
                errors.append(f"{where}: field '{name}' does not match sample row {row['prompt_id']!r}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="held-out JSONL to check")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="bundled sample JSONL")
    args = parser.parse_args(argv)

    for path in (args.file, args.sample):
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
    test = load_test_split(args.sample)

    errors: list[str] = []
    rows: list[dict] = []
    seen_ids: dict[str, int] = {}
    with args.file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                errors.append(f"line {lineno}: blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {lineno}: invalid JSON ({exc.msg})")
                continue
            row_id = row.get("id") if isinstance(row, dict) else None
            where = f"line {lineno} (id={row_id})"
            row_errors = check_row(row, where, test)
            errors.extend(row_errors)
            if isinstance(row_id, str):
                if row_id in seen_ids:
                    errors.append(f"{where}: field 'id' duplicates line {seen_ids[row_id]}")
                else:
                    seen_ids[row_id] = lineno
            if not row_errors:
                rows.append(row)

    for prompt_id, n in Counter(r["prompt_id"] for r in rows).items():
        if n > MAX_ROWS_PER_PROMPT:
            errors.append(f"field 'prompt_id' {prompt_id!r} is used by {n} rows (at most {MAX_ROWS_PER_PROMPT})")

    if errors:
        print(f"{args.file}: {len(errors)} problem(s)", file=sys.stderr)
        for err in errors:
            print(f"  {err}", file=sys.stderr)
        return 1

    def show(title: str, counts: Counter) -> None:
        print(f"\nby {title}:")
        for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
            print(f"  {key!s:<28} {n:4d}")

    print(f"{args.file}: {len(rows)} rows OK, {len({r['prompt_id'] for r in rows})} distinct prompts")
    show("verdict", Counter(r["verdict"] for r in rows))
    show("style", Counter(r["style"] for r in rows))
    show("harm level", Counter(r["harm_level"] for r in rows))
    show("method", Counter(r["method"] for r in rows))
    show("harm level x verdict", Counter(f"{r['harm_level']} {r['verdict']}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
