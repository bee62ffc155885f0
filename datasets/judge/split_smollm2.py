"""Split the hand-labelled SmolLM2 responses by prompt into a training part and a held-out part.

Two thirds of the prompts (by a stable hash of ``prompt_id``) go to ``smollm2_train.jsonl``, the
rest to ``smollm2_heldout.jsonl``: real responses of the default model, labelled by hand, that the
classifier judge never trains on. Deterministic::

    python datasets/judge/split_smollm2.py
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "smollm2_labelled.jsonl").read_text().splitlines() if line.strip()]
    parts: dict[str, list[dict]] = {"train": [], "heldout": []}
    for r in rows:
        parts["heldout" if zlib.crc32(r["prompt_id"].encode()) % 3 == 0 else "train"].append(r)
    for name, part in parts.items():
        path = HERE / f"smollm2_{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        counts = {v: sum(r["verdict"] == v for r in part) for v in ("Accept", "Caution", "Refuse")}
        print(f"{path.name}: {len(part)} rows {counts}")


if __name__ == "__main__":
    main()
