"""The benchmark's baseline endpoint: the policy behind the same kind of server, with none of the gateway's work."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from carealign.gateway.bare import MODEL_MS_HEADER, create_bare_app
from carealign.gateway.serving import ServedPolicy
from carealign.review.web.server import BackgroundServer

from .conftest import BENIGN


def test_bare_endpoint_answers_like_the_gateway_and_reports_model_time(tiny_generator: Any) -> None:
    policy = ServedPolicy("tiny", generator=tiny_generator)
    server = BackgroundServer(create_bare_app(policy, default_max_tokens=5)).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": BENIGN}]
        raw = client.chat.completions.with_raw_response.create(model="carealign", messages=messages)  # type: ignore[arg-type]
        resp = raw.parse()
        assert resp.id.startswith("chatcmpl-") and resp.model == "carealign"
        assert float(raw.headers[MODEL_MS_HEADER]) > 0
        assert resp.usage is not None and resp.usage.prompt_tokens == policy.current.count_tokens(messages)
        assert resp.usage.completion_tokens <= 5  # the default max tokens applies
        # the same greedy answer as the model gives when called in process
        expected = policy.current.generate(messages, _config(5)).text
        assert resp.choices[0].message.content == expected
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="carealign", messages=[])
        assert "messages" in str(err.value)
    finally:
        server.stop()


def _config(max_tokens: int) -> Any:
    from carealign.generate import GenerationConfig

    return GenerationConfig(max_new_tokens=max_tokens)
