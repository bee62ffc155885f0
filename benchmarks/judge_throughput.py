"""Verdicts per second of each judge on the same labelled rows, and accuracy on each held-out set.

Speed: the bundled held-out labelled responses (``datasets/judge/heldout.jsonl``, then
``smollm2_heldout.jsonl``), repeated from the start up to ``--rows``. Every judge sees the same
rows in the same batches of 64; the rules judge is the baseline the others' speed is given
against (a ratio measured in one run: the machine may be shared). Torch uses ``--threads`` CPU
threads (2: the target machine).

Accuracy (``--sets``): on each held-out set of ``datasets/judge`` that exists, 3-way accuracy,
macro-F1, Caution recall and the recall of every verdict; none of these sets is trained on.
LLM judges (``self``, ``llm:...``) are slow on a CPU: ``--slow-limit N`` judges a seeded random
subset of N rows of each set with them (stated in the table).

    python benchmarks/judge_throughput.py [--rows 500] [--judges "rules;classifier;classifier:DIR;self"]
        [--sets heldout,smollm2_heldout,public_heldout,contrast,other_models_heldout] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from carealign.judge.labelled import read_labelled
from carealign.judge.registry import make_judge
from carealign.judge_eval.accuracy import judge_accuracy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "datasets" / "judge"
SPEED_FILES = ["heldout.jsonl", "smollm2_heldout.jsonl"]
SETS = "heldout,smollm2_heldout,public_heldout,contrast,other_models_heldout"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500, help="rows judged for the speed figure (0: no speed run)")
    ap.add_argument("--judges", default="rules;classifier;self", help="judge specs, ';'-separated")
    ap.add_argument("--sets", default=SETS, help="held-out sets (names in datasets/judge), ','-separated; '' for none")
    ap.add_argument("--slow-limit", type=int, default=60, help="rows per set for LLM judges (0: all)")
    ap.add_argument("--model", default="smollm2-135m", help="the model behind self/llm judges")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} torch threads; CPU: {cpu_name()}")
    policy = None
    judges = []
    for spec in [s.strip() for s in args.judges.split(";") if s.strip()]:
        if spec in ("self", "llm") and policy is None:
            from carealign.generate.registry import load_generator

            policy = load_generator(args.model, dtype="auto", device="cpu")
        t0 = time.perf_counter()
        judge = make_judge(spec, policy=policy)
        judges.append((spec, judge, time.perf_counter() - t0))
    out: dict = {"cpu": cpu_name(), "threads": args.threads, "speed": [], "sets": {}}
    if args.rows:
        out["speed"] = speed(judges, args.rows)
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        path = DATA / f"{name}.jsonl"
        if not path.exists():
            print(f"({path.name} not found; skipped)")
            continue
        out["sets"][name] = accuracy_table(judges, read_labelled(path), name, args.slow_limit)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


def speed(judges: list, n_rows: int) -> list[dict]:
    paths = [DATA / f for f in SPEED_FILES if (DATA / f).exists()]
    unique = read_labelled(paths)
    rows = [unique[i % len(unique)] for i in range(n_rows)]
    print(f"\nspeed: {len(rows)} rows ({len(unique)} distinct) from {', '.join(p.name for p in paths)}")
    results = []
    for spec, judge, load_s in judges:
        judge_accuracy(judge, rows[:8], by=None)  # warm-up (lazy weights, tokenizer)
        res = judge_accuracy(judge, rows, by=None)
        results.append({"spec": spec, "judge": res["judge"], "verdicts_per_second": res["verdicts_per_second"],
                        "load_seconds": round(load_s, 1)})  # fmt: skip
    base = next((r for r in results if r["spec"] == "rules"), None)
    print(f"{'judge':<44} {'verdicts/s':>11} {'x rules':>8} {'load s':>7}")
    for r in results:
        r["x_rules"] = r["verdicts_per_second"] / base["verdicts_per_second"] if base else None
        ratio = f"{r['x_rules']:.4f}" if base else "n/a"
        print(f"{r['judge'][:44]:<44} {r['verdicts_per_second']:>11.1f} {ratio:>8} {r['load_seconds']:>7.1f}")
    return results


def accuracy_table(judges: list, rows: list[dict], name: str, slow_limit: int) -> list[dict]:
    print(f"\n{name}: {len(rows)} rows")
    print(f"{'judge':<44} {'n':>4} {'acc':>6} {'F1':>6} {'Accept':>7} {'Caution':>8} {'Refuse':>7} {'ECE':>6}")
    table = []
    for spec, judge, _ in judges:
        subset = rows
        if slow_limit and (spec in ("self", "llm") or spec.startswith("llm:")) and len(rows) > slow_limit:
            subset = random.Random(0).sample(rows, slow_limit)
        res = judge_accuracy(judge, subset, by=None)
        rec = res["per_class_recall"]
        table.append({"spec": spec, **{k: res[k] for k in ("judge", "rows", "accuracy", "macro_f1", "per_class_recall",
                                                            "ece", "unscored", "confusion")}})  # fmt: skip
        cells = [f"{rec[k]:.3f}" if rec.get(k) is not None else "n/a" for k in ("Accept", "Caution", "Refuse")]
        ece = "n/a" if res["ece"] is None else f"{res['ece']:.3f}"
        print(f"{res['judge'][:44]:<44} {res['rows']:>4} {res['accuracy']:>6.3f} {res['macro_f1']:>6.3f} "
              f"{cells[0]:>7} {cells[1]:>8} {cells[2]:>7} {ece:>6}")  # fmt: skip
    return table


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
