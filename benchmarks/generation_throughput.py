"""Generation throughput: the Hugging Face backend in several dtypes and batch sizes, and the engines.

Every configuration generates for the same prompts (the sample's test split) with the same
sampling settings, in the same process, and the rounds are interleaved (every configuration
once per round), so that drift on a shared machine hits them alike; each figure is the
median over rounds. Throughput counts useful tokens (up to and including the end-of-turn
token), never padding after it.

Configurations (``--configs`` selects; engines that are not installed are skipped, said so):

- ``hf-auto``: the Hugging Face backend with ``dtype=auto`` (bf16 only where the CPU has bf16
  instructions, see ``carealign.hardware``), batch 32: today's default;
- ``hf-legacy``: the rule ``auto`` used before (bf16 whenever torch reports an AVX-512 CPU);
- ``hf-fp32``, ``hf-bf16``: the backend in each dtype, at each batch size of ``--batch-sizes``;
- ``hf-static`` (not in the default list; slow to compile on small CPUs): fp32 with a static
  KV cache and ``torch.compile`` (compile time excluded: a warm-up at the measured shapes runs first);
- ``ct2-fp32``, ``ct2-int8``: CTranslate2 (``carealign.generate.ct2``) in fp32 and with int8
  weights, at each batch size;
- ``ort-fp32``, ``ort-int4``: onnxruntime-genai (converted with its model builder), measured
  by a small runner in this script (static batches, left padding) since it is not a carealign backend;
- ``default``: ``load_generator(model)``, what carealign uses now (engine ``auto``).

Each batch-size setting is run twice: ``--prompts`` prompts x ``--samples`` samples (the
issue's 8 x 4) and ``--large-prompts`` prompts x ``--samples`` (more work per call, so large
batches can fill). Ratios are against ``hf-auto`` at batch 32 and against the best
``hf-fp32`` measured.

    python benchmarks/generation_throughput.py [--rounds 2] [--configs hf-auto,hf-fp32,ct2-fp32,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from carealign.data import load_prompts
from carealign.generate import Completion, GenerationConfig, build_messages, load_generator
from carealign.generate.registry import resolve_model_path
from carealign.hardware import cpu_flags, cpu_has_bf16, resolve_dtype_name


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


class OrtGenai:
    """onnxruntime-genai, measured here only (it lost; see docs/engines.md): batched, left-padded."""

    def __init__(self, path: str, precision: str, batch: int) -> None:
        import onnxruntime_genai as og
        from transformers import AutoTokenizer

        from carealign.generate.conversion import cached_conversion
        from carealign.generate.hf import stop_token_ids

        def convert(src: Path, out: Path) -> None:
            cmd = [
                sys.executable,
                "-m",
                "onnxruntime_genai.models.builder",
                "-m",
                "HuggingFaceTB/SmolLM2-135M-Instruct",
            ]
            cmd += ["-i", str(src), "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(out / ".hf-cache")]
            subprocess.run(cmd, check=True, capture_output=True)

        self.og = og
        self.dir, self.converted_now = cached_conversion("ortgenai", precision, path, convert)
        self.model = og.Model(str(self.dir))
        self.tok = AutoTokenizer.from_pretrained(path)
        self.stops = set(stop_token_ids(self.tok))
        self.batch = batch
        self.identity = f"onnxruntime-genai[{precision}]"

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[list[Completion]]:
        import numpy as np

        texts = [
            self.tok.apply_chat_template(build_messages(p, None), tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]
        ids = [self.tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        k = 1 if cfg.greedy else cfg.samples
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        per = max(1, self.batch // k)
        out: list[list[Completion]] = [[] for _ in prompts]
        for b, start in enumerate(range(0, len(order), per)):
            idx = order[start : start + per]
            rows = [ids[i] for i in idx for _ in range(k)]
            width = max(map(len, rows))
            arr = np.array([[self.tok.pad_token_id] * (width - len(r)) + r for r in rows], dtype=np.int32)
            params = self.og.GeneratorParams(self.model)
            opts: dict[str, Any] = {"max_length": width + cfg.max_new_tokens, "batch_size": len(rows)}
            if cfg.greedy:
                opts["do_sample"] = False
            else:
                opts.update(
                    do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0, random_seed=cfg.seed + b
                )
            params.set_search_options(**opts)
            gen = self.og.Generator(self.model, params)
            gen.append_tokens(arr)
            while not gen.is_done():
                gen.generate_next_token()
            for r in range(len(rows)):
                seq = list(gen.get_sequence(r))[width:]
                n = next((j + 1 for j, t in enumerate(seq) if t in self.stops), len(seq))
                out[idx[r // k]].append(Completion(self.tok.decode(seq[:n], skip_special_tokens=True), n))
        return out


def hf(path: str, dtype: str, batch: int, *, static: bool = False) -> Any:
    from carealign.generate.hf import HFGenerator

    gen = HFGenerator.from_pretrained(path, name="smollm2-135m", dtype=dtype, device="cpu", batch_size=batch)
    if static:
        gen.model.generation_config.cache_implementation = "static"
        gen.model.forward = torch.compile(gen.model.forward, mode="reduce-overhead", dynamic=False)
    return gen


def ct2(path: str, compute: str, batch: int) -> Any:
    from carealign.generate.ct2 import CT2Generator

    return CT2Generator(path, name="smollm2-135m", compute_type=compute, device="cpu", batch_size=batch)


SMALL_CONFIGS = "hf-auto@32,hf-fp32@32,hf-bf16@32,ct2-fp32@32,ct2-int8@32,ort-fp32@32,ort-int4@32,default"
LARGE_CONFIGS = "hf-fp32@32,hf-fp32@128,ct2-fp32@128,ct2-int8@128,ort-int4@128,default"


def make_generator(kind: str, batch: int, path: str, model: str) -> Any:
    """A generator for one configuration ``kind`` (see the module docstring) at ``batch`` sequences."""
    legacy = "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX") else "fp32"
    dtypes = {"hf-auto": "auto", "hf-legacy": legacy, "hf-fp32": "fp32", "hf-bf16": "bf16"}
    if kind in dtypes:
        return hf(path, dtypes[kind], batch)
    if kind == "hf-static":
        return hf(path, "fp32", batch, static=True)
    if kind in ("ct2-fp32", "ct2-int8"):
        return ct2(path, "float32" if kind == "ct2-fp32" else "int8_float32", batch)
    if kind in ("ort-fp32", "ort-int4"):
        return OrtGenai(path, kind.split("-")[1], batch)
    if kind == "default":
        return load_generator(model, device="cpu")
    raise SystemExit(f"unknown configuration {kind!r}")


def installed(kind: str) -> bool:
    if kind.startswith("ct2"):
        return importlib.util.find_spec("ctranslate2") is not None
    if kind.startswith("ort"):
        return importlib.util.find_spec("onnxruntime_genai") is not None
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=8, help="prompts of the small set (sample test split)")
    ap.add_argument("--large-prompts", type=int, default=32, help="prompts of the large set (0: skip)")
    ap.add_argument("--samples", type=int, default=4, help="samples per prompt (k)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--configs", default=SMALL_CONFIGS, help="KIND@BATCH,... run on the small set")
    ap.add_argument("--large-configs", default=LARGE_CONFIGS, help="KIND@BATCH,... run on the large set")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    path = resolve_model_path(args.model)
    sets = {"small": (args.prompts, args.configs), "large": (args.large_prompts, args.large_configs)}
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, samples=args.samples)
    wide = " ".join(sorted(f for f in cpu_flags() if "avx512" in f or "amx" in f)) or "no avx512/amx flags"
    print(
        f"CPU: {cpu_name()}; torch capability {torch.backends.cpu.get_cpu_capability()}; "
        f"bf16 instructions: {cpu_has_bf16()} ({wide}); dtype auto -> {resolve_dtype_name('auto', 'cpu')}; "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"model {args.model}; k={cfg.samples}, max_new_tokens {cfg.max_new_tokens}, T {cfg.temperature}, "
        f"top_p {cfg.top_p}; {args.rounds} round(s), configurations interleaved, median tok/s"
    )

    labels: dict[str, list[str]] = {}
    loaded: dict[str, Any] = {}
    for set_name, (n, configs) in sets.items():
        if not n:
            continue
        labels[set_name] = []
        for entry in configs.split(","):
            kind, _, batch = entry.partition("@")
            label = kind if kind == "default" else f"{kind} b{batch or 32}"
            if not installed(kind):
                print(f"  {label}: engine not installed, skipped")
                continue
            labels[set_name].append(label)
            if label in loaded:
                continue
            t = time.perf_counter()
            gen = make_generator(kind, int(batch or 32), path, args.model)
            extra = ""
            if getattr(gen, "converted_now", None) is not None:
                extra = f" ({'converted now' if gen.converted_now else 'conversion reused from the cache'})"
            gen.generate(["Hi"], GenerationConfig(max_new_tokens=4))  # warm-up
            loaded[label] = gen
            print(f"  loaded {label:14s} {gen.identity:36s} in {time.perf_counter() - t:6.1f} s{extra}", flush=True)

    rates: dict[tuple[str, str], list[float]] = {}
    tokens: dict[tuple[str, str], int] = {}
    for rnd in range(args.rounds):
        for set_name, names in labels.items():
            prompts = [r.prompt for r in load_prompts("sample", "test", limit=sets[set_name][0])]
            if "hf-static" in " ".join(names) and rnd == 0:
                for label in names:  # compile at the measured shapes before timing
                    if label.startswith("hf-static"):
                        loaded[label].generate(prompts, cfg)
            for label in names:
                c = GenerationConfig(**{**cfg.__dict__, "seed": rnd})
                t = time.perf_counter()
                outs = loaded[label].generate(prompts, c)
                dt = time.perf_counter() - t
                tok = sum(x.n_tokens for o in outs for x in o)
                rates.setdefault((set_name, label), []).append(tok / dt)
                tokens[(set_name, label)] = tok
                print(f"    [{set_name} round {rnd}] {label:14s} {tok / dt:7.1f} tok/s", flush=True)

    for set_name, names in labels.items():
        med = {lab: statistics.median(rates[(set_name, lab)]) for lab in names}
        base = med.get("hf-auto b32")
        fp32 = [v for lab, v in med.items() if lab.startswith("hf-fp32")]
        best32 = max(fp32) if fp32 else None
        n = sets[set_name][0]
        print(f"\n{n} prompts x {args.samples} samples = {n * args.samples} sequences")
        head = ("configuration", "identity", "tok/s", "tokens", "/hf-auto b32", "/best hf-fp32")
        print("{:16s} {:36s} {:>7s} {:>6s} {:>12s} {:>13s}".format(*head))
        for lab in names:
            a = f"{med[lab] / base:.2f}x" if base else "-"
            f = f"{med[lab] / best32:.2f}x" if best32 else "-"
            print(
                f"{lab:16s} {loaded[lab].identity:36s} {med[lab]:7.1f} {tokens[(set_name, lab)]:6d} {a:>12s} {f:>13s}"
            )
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (shared machine: compare ratios, not absolutes)")


if __name__ == "__main__":
    main()
