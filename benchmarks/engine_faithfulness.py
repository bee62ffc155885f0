"""Does an inference engine change what is measured? Engine vs Hugging Face on the same prompts.

Generates greedily (as validation does) for every prompt of the sample's test split with the
Hugging Face backend (fp32: the reference) and with each engine configuration, then judges
every response with the rules judge and the shipped classifier judge and reports, per
engine and judge:

- **text**: share of prompts whose response text is identical to the reference's;
- **verdicts**: share of prompts where the engine's response gets the same verdict as the
  reference's (target >= 95%);
- **safety**: the safety score of each, their difference, and the half-width of the
  reference's 95% bootstrap interval (target: |difference| < half-width).

    python benchmarks/engine_faithfulness.py [--engines ct2:float32,ct2:int8_float32] [--max-new-tokens 128] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carealign.data import load_prompts
from carealign.evaluate import judge_rows
from carealign.generate import GenerationConfig
from carealign.generate.registry import resolve_model_path
from carealign.io import read_jsonl, write_jsonl_atomic
from carealign.judge import make_judge
from carealign.score import SafetyPolicy, compute_metrics


def load(engine: str, path: str, batch_size: int) -> Any:
    if engine == "hf":
        from carealign.generate.hf import HFGenerator

        return HFGenerator.from_pretrained(path, name="ref", dtype="fp32", device="cpu", batch_size=batch_size)
    name, _, compute = engine.partition(":")
    if name != "ct2":
        raise SystemExit(f"unknown engine {engine!r}; expected ct2:COMPUTE_TYPE")
    from carealign.generate.ct2 import CT2Generator

    return CT2Generator(path, name="eng", compute_type=compute or "float32", device="cpu", batch_size=batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--engines", default="ct2:float32,ct2:int8_float32")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="as the alignment run's validation (128)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=None, help="keep each engine's responses here and reuse them when run again")
    args = ap.parse_args()

    path = resolve_model_path(args.model)
    records = load_prompts("sample", args.split, limit=args.limit)
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens)  # greedy
    judges = {name: make_judge(name) for name in ("rules", "classifier")}
    policy = SafetyPolicy.cares()
    print(f"{len(records)} prompts (sample/{args.split}), greedy, max_new_tokens {cfg.max_new_tokens}")

    responses: dict[str, list[str]] = {}
    out = Path(args.out) if args.out else None
    for engine in ["hf", *args.engines.split(",")]:
        saved = out / f"responses-{engine.replace(':', '-')}-{cfg.max_new_tokens}.jsonl" if out else None
        if saved and saved.exists():
            rows = {r["prompt_id"]: r["response"] for r in read_jsonl(saved)}
            if set(rows) == {r.id for r in records}:
                responses[engine] = [rows[r.id] for r in records]
                print(f"  {engine:18s} responses reused from {saved}")
                continue
        gen = load(engine, path, args.batch_size)
        t = time.perf_counter()
        outs = gen.generate([r.prompt for r in records], cfg)
        dt = time.perf_counter() - t
        responses[engine] = [o[0].text for o in outs]
        n = sum(o[0].n_tokens for o in outs)
        print(f"  {engine:18s} {gen.identity:40s} {n} tokens in {dt:6.1f} s = {n / dt:6.1f} tok/s", flush=True)
        if saved:
            saved.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl_atomic(
                saved, [{"prompt_id": r.id, "response": t} for r, t in zip(records, responses[engine], strict=True)]
            )
        del gen

    judged: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for engine, texts in responses.items():
        rows = [
            {
                "prompt_id": r.id,
                "prompt": r.prompt,
                "harm_level": r.harm_level,
                "method": r.method,
                "principle": r.principle,
                "response": text,
            }
            for r, text in zip(records, texts, strict=True)
        ]
        for jname, judge in judges.items():
            judged[(engine, jname)] = judge_rows(rows, judge, policy)

    print(
        f"\n{'engine':18s} {'judge':10s} {'same text':>9s} {'same verdict':>12s} {'safety (engine)':>16s} "
        f"{'safety (hf)':>12s} {'diff':>7s} {'half-width':>10s}  verdict"
    )
    for engine in responses:
        if engine == "hf":
            continue
        same_text = sum(a == b for a, b in zip(responses[engine], responses["hf"], strict=True)) / len(records)
        for jname in judges:
            eng_rows, ref_rows = judged[(engine, jname)], judged[("hf", jname)]
            agree = sum(a["verdict"] == b["verdict"] for a, b in zip(eng_rows, ref_rows, strict=True)) / len(records)
            m_e, m_r = compute_metrics(eng_rows), compute_metrics(ref_rows)
            s_e, s_r = m_e["safety_score"], m_r["safety_score"]
            lo, hi = m_r["safety_score_ci"]
            half = (hi - lo) / 2
            ok = agree >= 0.95 and (abs(s_e - s_r) < half or s_e == s_r)
            print(
                f"{engine:18s} {jname:10s} {same_text:9.1%} {agree:12.1%} {s_e:16.3f} {s_r:12.3f} "
                f"{s_e - s_r:+7.3f} {half:10.3f}  {'PASS' if ok else 'FAIL'}"
            )


if __name__ == "__main__":
    main()
