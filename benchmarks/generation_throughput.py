"""Generation throughput of carealign's Hugging Face backend against a naive loop.

Both sides use the same loaded model, dtype, prompts and sampling settings, in the same run:

- carealign: ``HFGenerator.generate`` (length-sorted, left-padded batches, k samples per prompt
  drawn in one ``generate`` call with ``num_return_sequences``);
- naive: ``model.generate`` on one prompt and one sample at a time.

Throughput counts useful tokens (up to and including the end-of-turn token), so padding after
EOS is not counted as work. Prints tokens/s of each and the ratio.

    python benchmarks/generation_throughput.py [--model smollm2-135m] [--prompts 8] [--samples 4]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carealign.data import load_prompts
from carealign.generate import GenerationConfig, build_messages, load_generator


def naive_loop(gen, prompts: list[str], cfg: GenerationConfig) -> int:
    tok, model = gen.tokenizer, gen.model
    n_tokens = 0
    for i, p in enumerate(prompts):
        enc = tok(gen.render(build_messages(p, None)), return_tensors="pt", add_special_tokens=False).to(gen.device)
        for s in range(cfg.samples):
            torch.manual_seed(cfg.seed + 1000 * i + s)
            out = model.generate(
                **enc,
                max_new_tokens=cfg.max_new_tokens,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=0,
                pad_token_id=tok.pad_token_id,
                eos_token_id=gen.stop_ids,
            )
            new = out[0, enc["input_ids"].shape[1] :]
            stops = torch.isin(new, torch.tensor(gen.stop_ids, device=new.device)).nonzero()
            n_tokens += int(stops[0, 0]) + 1 if len(stops) else new.shape[0]
    return n_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=8, help="number of prompts (sample test split)")
    ap.add_argument("--samples", type=int, default=4, help="samples per prompt (k)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per batch (carealign)")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args()

    gen = load_generator(args.model, dtype=args.dtype, batch_size=args.batch_size)
    prompts = [r.prompt for r in load_prompts("sample", "test", limit=args.prompts)]
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, samples=args.samples)
    print(f"model {gen.identity}, dtype {gen.model.dtype}, device {gen.device}, threads {torch.get_num_threads()}")
    print(
        f"{len(prompts)} prompts x {cfg.samples} samples, max_new_tokens {cfg.max_new_tokens}, "
        f"temperature {cfg.temperature}, batch size {args.batch_size}"
    )

    gen.generate(prompts[:1], GenerationConfig(max_new_tokens=4))  # warm-up
    t = time.perf_counter()
    outs = gen.generate(prompts, cfg)
    t_batched = time.perf_counter() - t
    tok_batched = sum(c.n_tokens for o in outs for c in o)

    t = time.perf_counter()
    tok_naive = naive_loop(gen, prompts, cfg)
    t_naive = time.perf_counter() - t

    r_b, r_n = tok_batched / t_batched, tok_naive / t_naive
    print(f"carealign batched : {tok_batched:6d} tokens in {t_batched:7.1f} s = {r_b:7.1f} tok/s")
    print(f"naive one-by-one  : {tok_naive:6d} tokens in {t_naive:7.1f} s = {r_n:7.1f} tok/s")
    print(f"speed-up (tok/s ratio): {r_b / r_n:.2f}x")
    print(
        f"padding overhead: batched rows run to the longest sample; mean useful length "
        f"{tok_batched / (len(prompts) * cfg.samples):.1f} of {cfg.max_new_tokens} tokens"
    )


if __name__ == "__main__":
    main()
