"""Build the bundled sample (src/carealign/resources/sample.jsonl) and its count tables (docs/sample.md).

Source: one hand-written file per principle in this folder (see docs/sample.md for how they
were written). Splits are assigned per base prompt, so no rewrite crosses a split: within
every (principle, harm level) cell of 10 base prompts, 6 go to train, 2 to validation and
2 to test, chosen by a seeded hash of the base id.

    python datasets/sample/build.py
"""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "src" / "carealign" / "resources" / "sample.jsonl"
DOC = ROOT / "docs" / "sample.md"
sys.path.insert(0, str(ROOT / "src"))

from carealign.domain import METHODS, PRINCIPLES  # noqa: E402

SPLIT_SIZES = (("train", 6), ("validation", 2), ("test", 2))
SEED = "carealign-sample-v1"


def main() -> None:
    for slug in PRINCIPLES:
        subprocess.run([sys.executable, str(HERE / "check_file.py"), str(HERE / f"{slug}.jsonl")], check=True)
    rows = []
    for slug in PRINCIPLES:
        with open(HERE / f"{slug}.jsonl", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    cells: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
    for r in rows:
        cells[(r["principle"], r["harm_level"])].add(r["base_id"])
    split_of: dict[str, str] = {}
    for bases in cells.values():
        ordered = sorted(bases, key=lambda b: hashlib.sha256(f"{SEED}:{b}".encode()).hexdigest())
        i = 0
        for split, size in SPLIT_SIZES:
            for b in ordered[i : i + size]:
                split_of[b] = split
            i += size
        assert i == len(ordered), f"cell with {len(ordered)} base prompts; expected 10"
    out_rows = []
    for r in rows:
        out_rows.append(
            {
                "id": f"{r['base_id']}-{r['method']}",
                "prompt": r["prompt"].strip(),
                "harm_level": r["harm_level"],
                "principle": r["principle"],
                "method": r["method"],
                "base_prompt_id": r["base_id"],
                "source": "sample",
                "split": split_of[r["base_id"]],
            }
        )
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows), encoding="utf-8")
    write_doc(rows, split_of)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(out_rows)} prompts, {len(split_of)} base prompts")


def write_doc(rows: list[dict], split_of: dict[str, str]) -> None:
    lines = [
        "# The bundled sample",
        "",
        "`--prompts sample` loads original prompts written for carealign in the shape of CARES-18K:",
        "every one of the 8 principles at every harm level 0-3, each base prompt once in `direct`",
        "form and in one or two adversarial rewrites (`indirect`, `obfuscate`, `role_play`).",
        "",
        "## How it was written",
        "",
        "The prompts were written for this project (none is copied from a dataset), one file per",
        "principle in `datasets/sample/<principle>.jsonl`, by following one brief: 10 base prompts",
        "per principle and harm level; a plain `direct` request, then the same request rewritten",
        "indirectly (hypothetical, for a story, asking for a friend), obfuscated (euphemism, slang,",
        "misspelling, jargon) or as role play (a persona or scenario); varied askers (patients,",
        "caregivers, clinicians, students, administrators, researchers) and topics (medication and",
        "dosing, diagnostics, records and privacy, billing, misinformation, mental health, devices,",
        "AI in clinics, public health). Level 0 prompts are legitimate questions on sensitive topics",
        "(they measure over-refusal); level 3 prompts are requests only and contain no harmful detail.",
        "`datasets/sample/check_file.py` validates each file; `datasets/sample/build.py` assigns",
        "splits and writes `src/carealign/resources/sample.jsonl` and this page.",
        "",
        "Splits are by base prompt, so no rewrite crosses a split: in every (principle, harm level)",
        "cell, 6 base prompts go to `train`, 2 to `validation` and 2 to `test` (seeded hash).",
        "",
    ]
    splits = collections.Counter(split_of[r["base_id"]] for r in rows)
    base_splits = collections.Counter(split_of.values())
    lines += ["## Counts", "", "| split | base prompts | prompts |", "|---|---|---|"]
    for s, _ in SPLIT_SIZES:
        lines.append(f"| {s} | {base_splits[s]} | {splits[s]} |")
    lines.append(f"| all | {len(split_of)} | {len(rows)} |")
    lines += ["", "Prompts per principle x harm level x method (all splits):", ""]
    header = "| principle | level | " + " | ".join(METHODS) + " | total |"
    lines += [header, "|" + "---|" * (len(METHODS) + 3)]
    counts = collections.Counter((r["principle"], r["harm_level"], r["method"]) for r in rows)
    for slug in PRINCIPLES:
        for lv in range(4):
            cells = [counts[(slug, lv, m)] for m in METHODS]
            lines.append(f"| {slug} | {lv} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    persona = collections.Counter(r["persona"] for r in rows if r["method"] == "direct")
    lines += ["", "Askers (base prompts): " + ", ".join(f"{k} {v}" for k, v in persona.most_common()), ""]
    DOC.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
