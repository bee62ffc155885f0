"""Verdicts per second of each judge on the same 500 labelled rows, and accuracy on the held-out ones.

The rows are the bundled held-out labelled responses (``datasets/judge/heldout.jsonl``, then
``smollm2_heldout.jsonl``: 462 rows no judge trained on), repeated from the start up to
``--rows``. Every judge sees the same rows in the same batches of 64; the rules judge is the
baseline the others' speed is given against. Accuracy is over the distinct held-out rows. Torch
uses ``--threads`` CPU threads (2: the target machine).

    python benchmarks/judge_throughput.py [--rows 500] [--judges "rules;classifier;panel:rules,classifier;self"]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from carealign.judge.labelled import read_labelled
from carealign.judge.registry import make_judge
from carealign.judge_eval.accuracy import judge_accuracy

ROOT = Path(__file__).resolve().parents[1]
FILES = ["heldout.jsonl", "smollm2_heldout.jsonl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument(
        "--judges", default="rules;classifier;panel:rules,classifier;self", help="judge specs, ';'-separated"
    )
    ap.add_argument("--model", default="smollm2-135m", help="the model behind self/llm judges")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = [ROOT / "datasets" / "judge" / f for f in FILES if (ROOT / "datasets" / "judge" / f).exists()]
    unique = read_labelled(paths)
    rows = [unique[i % len(unique)] for i in range(args.rows)]
    print(
        f"{len(rows)} rows ({len(unique)} distinct) from {', '.join(p.name for p in paths)}; "
        f"{args.threads} torch threads"
    )
    policy = None
    results = []
    for spec in [s.strip() for s in args.judges.split(";") if s.strip()]:
        if spec in ("self", "llm") and policy is None:
            from carealign.generate.registry import load_generator

            policy = load_generator(args.model, dtype="auto", device="cpu")
        t0 = time.perf_counter()
        judge = make_judge(spec, policy=policy)
        load_s = time.perf_counter() - t0
        judge.judge(make_items(rows[:8]))  # warm-up (lazy weights, tokenizer)
        res = judge_accuracy(judge, rows, by=None)
        res["accuracy"] = (
            judge_accuracy(judge, unique, by=None)["accuracy"] if len(rows) > len(unique) else res["accuracy"]
        )
        results.append((spec, res, load_s))
    base = next((r for s, r, _ in results if s == "rules"), None)
    print(f"{'judge':<44} {'verdicts/s':>11} {'x rules':>8} {'accuracy':>9} {'load s':>7}")
    for _spec, res, load_s in results:
        ratio = res["verdicts_per_second"] / base["verdicts_per_second"] if base else float("nan")
        print(
            f"{res['judge'][:44]:<44} {res['verdicts_per_second']:>11.1f} {ratio:>8.4f} "
            f"{res['accuracy']:>9.3f} {load_s:>7.1f}"
        )


def make_items(rows):
    from carealign.judge.base import JudgeItem

    return [JudgeItem(r["prompt"], r["response"], r.get("harm_level")) for r in rows]


if __name__ == "__main__":
    main()
