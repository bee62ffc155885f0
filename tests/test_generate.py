"""Generation backends: batched HF generation, the OpenAI-compatible client, model specs."""

from __future__ import annotations

import json
import math

import httpx
import pytest
import torch

from carealign.errors import ModelError
from carealign.generate import GenerationConfig
from carealign.generate.openai_api import OpenAIGenerator
from carealign.generate.registry import load_generator, parse_openai_spec, resolve_model_path

PROMPTS = [
    "What is a normal resting heart rate?",
    "List the symptoms of type 2 diabetes and explain which ones need a doctor soon.",
    "Hi",
    "How should I store insulin pens when travelling by plane in summer?",
    "Is ibuprofen safe with high blood pressure?",
]


def test_batched_greedy_equals_one_by_one(tiny_generator):
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0)
    batched = tiny_generator.generate(PROMPTS, cfg)
    single = [tiny_generator.generate([p], cfg)[0] for p in PROMPTS]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    assert [b[0].n_tokens for b in batched] == [s[0].n_tokens for s in single]
    # and equal to a plain transformers generate call, one prompt at a time
    tok, model = tiny_generator.tokenizer, tiny_generator.model
    for p, b in zip(PROMPTS, batched, strict=True):
        ids = tok.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        out = model.generate(
            **ids,
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=tiny_generator.stop_ids,
            pad_token_id=tok.pad_token_id,
        )
        new = out[0, ids["input_ids"].shape[1] :]
        assert tok.decode(new, skip_special_tokens=True).strip() == b[0].text


def test_k_samples_per_prompt_and_seeded_sampling(tiny_generator):
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, samples=3, seed=7)
    a = tiny_generator.generate(PROMPTS[:3], cfg)
    b = tiny_generator.generate(PROMPTS[:3], cfg)
    assert [len(x) for x in a] == [3, 3, 3]
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert len({c.text for c in a[1]}) > 1  # a random tiny model samples different texts
    greedy = tiny_generator.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=5, samples=2))
    assert all(len(x) == 2 and x[0] == x[1] for x in greedy)


def test_progress_counts_every_prompt(tiny_generator):
    seen = []
    tiny_generator.generate(PROMPTS, GenerationConfig(max_new_tokens=4), progress=lambda n, t: seen.append((n, t)))
    assert sum(n for n, _ in seen) == len(PROMPTS)
    assert sum(t for _, t in seen) > 0


def test_label_logprobs_match_unbatched_computation(tiny_generator):
    convs = [[{"role": "user", "content": p}] for p in PROMPTS[:3]]
    labels = ["Accept", "Caution", "Refuse"]
    got = tiny_generator.label_logprobs(convs, labels)
    tok, model = tiny_generator.tokenizer, tiny_generator.model
    for conv, scores in zip(convs, got, strict=True):
        prefix = tok(tiny_generator.render(conv), add_special_tokens=False)["input_ids"]
        for lab in labels:
            ids = tok(lab, add_special_tokens=False)["input_ids"]
            seq = torch.tensor([prefix + ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(seq).logits.float(), -1)
            expected = sum(float(logp[0, len(prefix) + t - 1, ids[t]]) for t in range(len(ids)))
            assert math.isclose(scores[lab], expected, abs_tol=1e-3), (lab, scores[lab], expected)


def test_generation_config_validation():
    with pytest.raises(ValueError, match="samples"):
        GenerationConfig(samples=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationConfig(temperature=-1)


# ------------------------------------------------------------------ model specs


def test_model_specs(tmp_path):
    assert parse_openai_spec("openai:my/model@http://127.0.0.1:8000/v1") == ("my/model", "http://127.0.0.1:8000/v1")
    with pytest.raises(ModelError, match="openai:MODEL@BASE_URL"):
        parse_openai_spec("openai:model-without-url")
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_model_path("./does/not/exist")
    f = tmp_path / "file.bin"
    f.write_text("x")
    with pytest.raises(ModelError, match="must be a directory"):
        resolve_model_path(str(f))
    assert resolve_model_path("org/name") == "org/name"  # a hub id is passed through
    with pytest.raises(ModelError, match="cannot load model"):
        load_generator("nobody/no-such-model-xyz")  # offline: a clear error, not a traceback


# ------------------------------------------------------------------ OpenAI-compatible server


def _chat_response(content: str, logprobs: list[tuple[str, float]] | None = None) -> dict:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": logprobs[0][0],
                    "logprob": logprobs[0][1],
                    "bytes": None,
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in logprobs],
                }
            ]
        }
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [choice],
        "usage": {"prompt_tokens": 5, "completion_tokens": len(content.split()), "total_tokens": 9},
    }


def make_client(handler) -> OpenAIGenerator:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    gen = OpenAIGenerator("m", "http://127.0.0.1:9/v1", max_retries=3, timeout=5, http_client=http, concurrency=4)
    gen.client = gen.client.with_options(max_retries=3)
    return gen


def test_openai_generate_in_order_with_samples(monkeypatch):
    monkeypatch.setattr("openai._base_client.BaseClient._calculate_retry_timeout", lambda *a, **k: 0.0)

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        user = body["messages"][-1]["content"]
        return httpx.Response(200, json=_chat_response(f"answer to {user} seed {body.get('seed')}"))

    gen = make_client(handler)
    out = gen.generate(["q1", "q2", "q3"], GenerationConfig(samples=2, temperature=0.7, seed=10))
    assert [[c.text for c in x] for x in out] == [
        [f"answer to q{i} seed 10", f"answer to q{i} seed 11"] for i in (1, 2, 3)
    ]
    assert gen.identity == "openai:m@http://127.0.0.1:9/v1"


def test_openai_retries_server_errors_then_succeeds(monkeypatch):
    monkeypatch.setattr("openai._base_client.BaseClient._calculate_retry_timeout", lambda *a, **k: 0.0)
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, json=_chat_response("ok"))

    out = make_client(handler).generate(["q"], GenerationConfig())
    assert out[0][0].text == "ok" and calls["n"] == 3


def test_openai_gives_up_with_clear_error(monkeypatch):
    monkeypatch.setattr("openai._base_client.BaseClient._calculate_retry_timeout", lambda *a, **k: 0.0)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out")

    with pytest.raises(ModelError, match="openai:m@"):
        make_client(handler).generate(["q"], GenerationConfig())

    def bad_request(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "model not found"}})

    with pytest.raises(ModelError, match="HTTP 400"):
        make_client(bad_request).generate(["q"], GenerationConfig())


def test_openai_label_logprobs_and_fallback():
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("logprobs"):
            if "no-logprobs" in body["messages"][-1]["content"]:
                return httpx.Response(200, json=_chat_response("Refuse"))
            return httpx.Response(
                200, json=_chat_response("Ref", [("Ref", -0.1), ("Caution", -2.5), ("Acc", -4.0), ("The", -5.0)])
            )
        return httpx.Response(200, json=_chat_response("Refuse."))

    gen = make_client(handler)
    got = gen.label_logprobs(
        [[{"role": "user", "content": "a"}], [{"role": "user", "content": "no-logprobs"}]],
        ["Accept", "Caution", "Refuse"],
    )
    assert got[0] == {"Accept": -4.0, "Caution": -2.5, "Refuse": -0.1}
    assert got[1] is None
    assert gen.complete_chat([[{"role": "user", "content": "x"}]], 4) == ["Refuse."]
