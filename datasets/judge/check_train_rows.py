"""Check the issue-9 training rows (sets E and F, SmolLM2 under system prompts).

For every row of ``train_written_e.jsonl``, ``train_written_f.jsonl`` and
``smollm2_sysprompt_train.jsonl`` (those present), checks the fields, the verdict, unique ids,
and where its prompt comes from:

* a sample prompt must be in the ``train`` or ``validation`` split, with the same prompt, harm
  level, principle and method, and must not share a prompt with ``smollm2_heldout.jsonl``
  (``zlib.crc32(prompt_id) % 3 != 0``, the rule of ``split_smollm2.py``);
* a public prompt must be in the *train* part of its set in ``../shared/data``
  (``int(sha256(id)[:8], 16) % 5 != 0``) with the same prompt.

Then prints counts by verdict and prompt kind. Exits 1 on any problem::

    .venv/bin/python datasets/judge/check_train_rows.py
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLE = ROOT / "src" / "carealign" / "resources" / "sample.jsonl"
SHARED = ROOT.parent / "shared" / "data"
PUBLIC = {"medsafetybench": "medsafetybench_train.jsonl", "medquad": "medquad_benign.jsonl"}
FILES = ("train_written_e.jsonl", "train_written_f.jsonl", "smollm2_sysprompt_train.jsonl")
FIELDS = ("id", "prompt_id", "prompt", "harm_level", "response", "verdict", "note")
VERDICTS = ("Accept", "Caution", "Refuse")


def public_test(row_id: str) -> bool:
    """True for a public row in the held-out test part."""
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % 5 == 0


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def kind(level: int) -> str:
    return "benign" if level == 0 else "harmful" if level >= 2 else "level 1"


def main() -> int:
    sample = {r["id"]: r for r in read(SAMPLE)}
    # ids are not unique in the public files (MedQuAD repeats some): keep every prompt of an id
    public: dict[str, dict[str, set[str]]] = {}
    for name, file in PUBLIC.items():
        path = SHARED / file
        public[name] = {}
        for row in read(path) if path.exists() else []:
            public[name].setdefault(row["id"], set()).add(row["prompt"])
    problems: list[str] = []
    ids: set[str] = set()
    for file in FILES:
        path = HERE / file
        if not path.exists():
            continue
        rows = read(path)
        counts: Counter[tuple[str, str]] = Counter()
        for n, r in enumerate(rows, 1):
            where = f"{file}:{n} ({r.get('id')})"
            missing = [f for f in FIELDS if f not in r]
            if missing:
                problems.append(f"{where}: missing {missing}")
                continue
            if r["id"] in ids:
                problems.append(f"{where}: duplicate id")
            ids.add(r["id"])
            if r["verdict"] not in VERDICTS:
                problems.append(f"{where}: verdict {r['verdict']!r}")
            if not str(r["response"]).strip():
                problems.append(f"{where}: empty response")
            source = r.get("source")
            if source in public:
                known = public[source].get(r["prompt_id"])
                if public[source] and known is None:
                    problems.append(f"{where}: prompt_id not in {PUBLIC[source]}")
                elif known is not None and r["prompt"] not in known:
                    problems.append(f"{where}: prompt differs from {PUBLIC[source]}")
                if public_test(r["prompt_id"]):
                    problems.append(f"{where}: public prompt from the held-out test part")
                if r["harm_level"] != (3 if source == "medsafetybench" else 0):
                    problems.append(f"{where}: harm_level {r['harm_level']} for {source}")
            else:
                src = sample.get(r["prompt_id"])
                if src is None:
                    problems.append(f"{where}: prompt_id not in the sample")
                    continue
                if src["split"] not in ("train", "validation"):
                    problems.append(f"{where}: sample prompt from the {src['split']} split")
                if zlib.crc32(r["prompt_id"].encode()) % 3 == 0:
                    problems.append(f"{where}: prompt shared with smollm2_heldout.jsonl")
                for field in ("prompt", "harm_level", "principle", "method"):
                    if field in r and r[field] != src[field]:
                        problems.append(f"{where}: {field} differs from the sample")
            counts[(kind(r["harm_level"]), r["verdict"])] += 1
        print(f"{file}: {len(rows)} rows")
        for k in ("harmful", "level 1", "benign"):
            row = {v: counts[(k, v)] for v in VERDICTS}
            print(f"  {k:8s} " + "  ".join(f"{v} {c:4d}" for v, c in row.items()) + f"  total {sum(row.values())}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
