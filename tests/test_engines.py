"""Inference engines and dtypes: the dtype decision by CPU flags, the conversion cache, engine
selection, and the CTranslate2 backend against the Hugging Face backend on the tiny model."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from carealign import hardware
from carealign.errors import ModelError
from carealign.generate import GenerationConfig
from carealign.generate.conversion import DONE_MARKER, cached_conversion, checkpoint_hash
from carealign.generate.hf import pick_dtype
from carealign.generate.registry import load_generator, pick_engine

HAS_CT2 = importlib.util.find_spec("ctranslate2") is not None
needs_ct2 = pytest.mark.skipif(not HAS_CT2, reason="CTranslate2 is not installed (pip install ctranslate2)")

PROMPTS = [
    "What is a normal resting heart rate?",
    "List the symptoms of type 2 diabetes and explain which ones need a doctor soon.",
    "Hi",
    "How should I store insulin pens when travelling by plane in summer?",
    "Is ibuprofen safe with high blood pressure?",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREALIGN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------- dtypes


def fake_cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Fake CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
    return path


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("", "fp32"),  # AVX2 only (this machine)
        ("avx512f avx512bw avx512_vnni", "fp32"),  # AVX-512 without bf16 instructions: bf16 is emulated, slower
        ("avx512f avx512bw avx512_bf16", "bf16"),  # Cooper Lake, Zen 4
        ("avx512f amx_tile amx_bf16 amx_int8", "bf16"),  # Sapphire Rapids
    ],
)
def test_auto_dtype_follows_cpu_flags_not_torch_capability(tmp_path, monkeypatch, flags, expected):
    monkeypatch.delenv("CAREALIGN_CPU_FLAGS", raising=False)
    monkeypatch.setattr(hardware, "CPUINFO", fake_cpuinfo(tmp_path, flags))
    # torch reports AVX512 on Xeons with and without bf16 instructions: it must not decide
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert hardware.resolve_dtype_name("auto", "cpu") == expected
    assert pick_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if expected == "bf16" else torch.float32)
    assert hardware.train_bf16(on_cpu=True) is (expected == "bf16")
    assert hardware.resolve_dtype_name("fp32", "cpu") == "fp32"  # an explicit dtype is kept
    assert hardware.resolve_dtype_name("bfloat16", "cpu") == "bf16"


def test_cpu_flags_env_override_and_missing_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    monkeypatch.delenv("CAREALIGN_CPU_FLAGS", raising=False)
    assert hardware.cpu_flags() == frozenset()
    assert hardware.resolve_dtype_name("auto", "cpu") == "fp32"
    monkeypatch.setenv("CAREALIGN_CPU_FLAGS", "AVX512F AVX512_BF16")
    assert hardware.cpu_has_bf16()
    assert hardware.resolve_dtype_name("auto", "cpu") == "bf16"


def test_unknown_dtype_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown dtype 'int3'"):
        hardware.resolve_dtype_name("int3", "cpu")


def test_trl_args_bf16_follows_the_cpu(tmp_path, monkeypatch):
    from carealign.train.config import TrainSection
    from carealign.train.trainer import trl_args

    monkeypatch.setenv("CAREALIGN_CPU_FLAGS", "avx2 avx512f")
    assert trl_args("dpo", TrainSection(), tmp_path, device="cpu").bf16 is False
    monkeypatch.setenv("CAREALIGN_CPU_FLAGS", "avx2 avx512f avx512_bf16")
    assert trl_args("kto", TrainSection(), tmp_path, device="cpu").bf16 is True
    assert trl_args("dpo", TrainSection(), tmp_path, device="cpu", precision="fp32").bf16 is False


# ---------------------------------------------------------------------------------- conversion cache


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_conversion_cache_reuses_and_invalidates_on_content(tiny_model_dir, tmp_path, cache):
    calls: list[Path] = []

    def convert(src: Path, out: Path) -> None:
        calls.append(src)
        (out / "model.txt").write_text(checkpoint_hash(src))

    a = copy_model(tiny_model_dir, tmp_path / "a")
    first, converted = cached_conversion("fake", "fp32", a, convert)
    assert converted and (first / DONE_MARKER).exists() and first.is_relative_to(cache)
    again, converted = cached_conversion("fake", "fp32", a, convert)
    assert again == first and not converted and len(calls) == 1
    # the same content elsewhere (a copied policy) reuses the conversion: keyed by content, not path
    b = copy_model(tiny_model_dir, tmp_path / "b")
    assert cached_conversion("fake", "fp32", b, convert) == (first, False)
    # a changed checkpoint in the same place (a new promoted policy) is converted again
    cfg = (a / "config.json").read_text()
    (a / "config.json").write_text(cfg.replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05'))
    assert checkpoint_hash(a) != checkpoint_hash(b)
    changed, converted = cached_conversion("fake", "fp32", a, convert)
    assert converted and changed != first and len(calls) == 2
    # another variant of the same checkpoint has its own entry
    assert cached_conversion("fake", "int8", b, convert)[0] != first


def test_failed_conversion_leaves_nothing_behind(tiny_model_dir, cache):
    def broken(src: Path, out: Path) -> None:
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        cached_conversion("fake", "fp32", tiny_model_dir, broken)
    assert not any(p.name != "fake" for p in (cache / "engines" / "fake").iterdir())


def test_checkpoint_hash_needs_a_model_dir(tmp_path):
    with pytest.raises(ModelError, match=r"no config\.json"):
        checkpoint_hash(tmp_path)


# ---------------------------------------------------------------------------------- selection


def test_engine_selection(tiny_model_dir, monkeypatch):
    from carealign.generate import ct2

    assert pick_engine("hf", str(tiny_model_dir), "cpu") == "hf"
    assert pick_engine("auto", "some-org/some-model", "cpu") == "hf"  # not a local directory
    with pytest.raises(ModelError, match="unknown engine 'vllm2'"):
        pick_engine("vllm2", str(tiny_model_dir), "cpu")
    monkeypatch.setattr(ct2, "available", lambda: False)
    assert pick_engine("auto", str(tiny_model_dir), "cpu") == "hf"
    with pytest.raises(ModelError, match=r"not installed: pip install 'carealign\[ct2\]'"):
        pick_engine("ct2", str(tiny_model_dir), "cpu")
    monkeypatch.setattr(ct2, "available", lambda: True)
    assert pick_engine("auto", str(tiny_model_dir), "cpu") == "ct2"
    with pytest.raises(ModelError, match="needs a local model directory"):
        pick_engine("ct2", "some-org/some-model", "cpu")


def test_auto_engine_skips_unsupported_architectures(tiny_model_dir, tmp_path, monkeypatch):
    from carealign.generate import ct2

    monkeypatch.setattr(ct2, "available", lambda: True)
    other = copy_model(tiny_model_dir, tmp_path / "other")
    cfg = (other / "config.json").read_text()
    (other / "config.json").write_text(cfg.replace('"model_type": "llama"', '"model_type": "mamba"'))
    assert pick_engine("auto", str(other), "cpu") == "hf"
    with pytest.raises(ModelError, match="does not support"):
        pick_engine("ct2", str(other), "cpu")


# ---------------------------------------------------------------------------------- CTranslate2 vs HF


@pytest.fixture(scope="module")
def ct2_generator(tiny_model_dir, tmp_path_factory):
    if not HAS_CT2:
        pytest.skip("CTranslate2 is not installed (pip install ctranslate2)")
    import os

    from carealign.generate.ct2 import CT2Generator

    old = os.environ.get("CAREALIGN_CACHE")
    os.environ["CAREALIGN_CACHE"] = str(tmp_path_factory.mktemp("ct2-cache"))
    try:
        yield CT2Generator(tiny_model_dir, name="tiny", dtype="fp32", device="cpu", batch_size=8)
    finally:
        if old is None:
            os.environ.pop("CAREALIGN_CACHE", None)
        else:
            os.environ["CAREALIGN_CACHE"] = old


@needs_ct2
def test_ct2_greedy_matches_hf_or_diverges_only_at_near_ties(ct2_generator, tiny_generator):
    """fp32 on both sides: the same tokens, except where HF's top two logits are (nearly) tied,
    which different but correct matrix kernels may order either way."""
    tok, model = tiny_generator.tokenizer, tiny_generator.model
    cfg = GenerationConfig(max_new_tokens=16)
    same = 0
    for p in PROMPTS:
        prompt = tok(tiny_generator.render([{"role": "user", "content": p}]), add_special_tokens=False)["input_ids"]
        ((engine_ids, _),) = ct2_generator.generate_ids([prompt], cfg)[0]
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=tiny_generator.stop_ids,
            pad_token_id=tok.pad_token_id,
        )[0, len(prompt) :].tolist()
        hf_ids = out[: next((i for i, t in enumerate(out) if t in tiny_generator.stop_ids), len(out))]
        if engine_ids == hf_ids:
            same += 1
            continue
        n = next(i for i, (a, b) in enumerate(zip([*engine_ids, -1], [*hf_ids, -2], strict=False)) if a != b)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + hf_ids[:n]])).logits[0, -1].float()
        top2 = torch.topk(logits, 2).values
        assert float(top2[0] - top2[1]) < 1e-3 * float(logits.abs().max()), (p, n, top2)
    assert same >= len(PROMPTS) - 1


@needs_ct2
def test_ct2_texts_match_hf_backend(ct2_generator, tiny_generator):
    cfg = GenerationConfig(max_new_tokens=12, system_prompt="You are a careful medical assistant.")
    a = ct2_generator.generate(PROMPTS, cfg)
    b = tiny_generator.generate(PROMPTS, cfg)
    assert sum(x[0].text == y[0].text for x, y in zip(a, b, strict=True)) >= len(PROMPTS) - 1
    assert sum(x[0].n_tokens == y[0].n_tokens for x, y in zip(a, b, strict=True)) >= len(PROMPTS) - 1
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[0]}]
    assert ct2_generator.render(conv) == tiny_generator.render(conv)


@needs_ct2
def test_ct2_k_samples_seeds_and_progress(ct2_generator):
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=0.95, samples=3, seed=7)
    seen: list[tuple[int, int]] = []
    a = ct2_generator.generate(PROMPTS[:3], cfg, progress=lambda n, t: seen.append((n, t)))
    b = ct2_generator.generate(PROMPTS[:3], cfg)
    assert [len(x) for x in a] == [3, 3, 3]
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert len({c.text for c in a[1]}) > 1  # a random tiny model samples different texts
    other = ct2_generator.generate(PROMPTS[:3], GenerationConfig(**{**cfg.__dict__, "seed": 8}))
    assert [[c.text for c in x] for x in other] != [[c.text for c in x] for x in a]
    assert sum(n for n, _ in seen) == 3 and sum(t for _, t in seen) == sum(c.n_tokens for x in a for c in x)
    assert all(1 <= c.n_tokens <= 8 for x in a for c in x)
    greedy = ct2_generator.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=5, samples=2))
    assert all(len(x) == 2 and x[0] == x[1] for x in greedy)
    big = GenerationConfig(**{**cfg.__dict__, "seed": 5661085313})  # evaluate derives seeds past 2**32
    assert len(ct2_generator.generate(PROMPTS[:1], big)[0]) == 3


@needs_ct2
def test_load_generator_names_the_engine(tiny_model_dir, cache):
    gen = load_generator(str(tiny_model_dir), engine="auto", device="cpu", dtype="fp32")
    assert gen.identity.startswith("ct2[float32]:")
    assert not load_generator(str(tiny_model_dir), engine="ct2", device="cpu").converted_now  # cached
    assert load_generator(str(tiny_model_dir), engine="hf", device="cpu").identity.startswith("hf:")


@needs_ct2
def test_ct2_label_logprobs_match_hf(ct2_generator, tiny_generator):
    convs = [[{"role": "user", "content": p}] for p in PROMPTS[:3]]
    labels = ["Accept", "Caution", "Refuse"]
    got = ct2_generator.label_logprobs(convs, labels)
    expected = tiny_generator.label_logprobs(convs, labels)
    for g, e in zip(got, expected, strict=True):
        assert g is not None and e is not None
        for lab in labels:
            assert abs(g[lab] - e[lab]) < 1e-3, (lab, g[lab], e[lab])


def test_shared_prefix_length():
    from carealign.generate.ct2 import shared_prefix_length

    common = list(range(100, 120))
    assert shared_prefix_length([[*common, 1, 2], [*common, 3]]) == 20
    assert shared_prefix_length([[*common, 1], [*common, 1]]) == 20  # each keeps one token of its own
    assert shared_prefix_length([common, [*common, 5]]) == 19
    assert shared_prefix_length([[*common[:10], 1], [*common[:10], 2]]) == 0  # below the minimum
    assert shared_prefix_length([[*common[:10], 1], [*common[:10], 2]], minimum=4) == 10
    assert shared_prefix_length([[*common, 1]]) == 0  # one prompt: nothing to share
    assert shared_prefix_length([[1, 2, 3], []], minimum=0) == 0


@needs_ct2
def test_ct2_cached_shared_prefix_gives_the_same_outputs(tiny_model_dir, cache):
    """A long system prompt shared by every conversation is encoded once (CTranslate2's static
    prompt); greedy texts and seeded samples are those of encoding every prompt in full."""
    from carealign.generate.ct2 import CT2Generator

    system = "You are a careful medical assistant. " * 6
    convs = [[{"role": "system", "content": system}, {"role": "user", "content": p}] for p in PROMPTS]
    cached = CT2Generator(tiny_model_dir, dtype="fp32", device="cpu", batch_size=8)
    full = CT2Generator(tiny_model_dir, dtype="fp32", device="cpu", batch_size=8, cache_shared_prefix=False)
    ids = [cached.tokenizer(cached.render(c), add_special_tokens=False)["input_ids"] for c in convs]
    from carealign.generate.ct2 import shared_prefix_length

    assert shared_prefix_length(ids) >= 16
    for cfg in (
        GenerationConfig(max_new_tokens=12),
        GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, samples=2, seed=3),
    ):
        a = [[c.text for c in x] for x in cached.generate_chat(convs, cfg)]
        b = [[c.text for c in x] for x in full.generate_chat(convs, cfg)]
        assert sum(x == y for x, y in zip(a, b, strict=True)) >= len(PROMPTS) - 1
