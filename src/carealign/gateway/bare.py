"""The gateway's baseline: the same policy behind the same kind of server, and nothing else.

``create_bare_app`` answers ``POST /v1/chat/completions`` (non-streaming) the way the gateway
does (the body read on the event loop, one hop to a worker thread, the request parsed by the
gateway's schema, the policy's one dedicated model thread, the same response body) but without
API keys, rate limits, the exchange log, judging or guarding. ``benchmarks/gateway_load.py`` runs
it as "the same backend called directly", so the difference to the gateway is the gateway's own
cost. Each response carries ``x-model-ms``: the time spent waiting for and running the model, as
the gateway logs it in ``generation_ms``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from carealign.gateway.openai_schema import ChatRequest, completion_body, error_body
from carealign.gateway.serving import ServedPolicy

#: Response header with the milliseconds spent waiting for and running the model.
MODEL_MS_HEADER = "x-model-ms"


def create_bare_app(policy: ServedPolicy, *, served_name: str = "carealign", default_max_tokens: int = 256) -> FastAPI:
    """An OpenAI-compatible endpoint in front of ``policy`` with none of the gateway's own work."""
    app = FastAPI(title="carealign bare endpoint", docs_url=None, redoc_url=None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        raw = await request.body()

        def handle() -> tuple[dict[str, Any], float]:
            req = ChatRequest.model_validate_json(raw)
            if req.stream:
                raise ValueError("stream: the bare endpoint answers non-streaming requests only")
            conversation = req.conversation()
            config = req.generation_config(default_max_tokens)
            loaded = policy.current
            t0 = time.perf_counter()
            completion = loaded.generate(conversation, config)
            model_ms = (time.perf_counter() - t0) * 1000
            finish = "length" if completion.n_tokens >= config.max_new_tokens else "stop"
            body = completion_body(
                f"chatcmpl-{uuid.uuid4().hex}",
                served_name,
                completion.text,
                finish,
                completion.n_tokens,
                completion.prompt_tokens,
            )
            return body, model_ms

        try:
            body, model_ms = await run_in_threadpool(handle)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ())) or "body"
            return JSONResponse(error_body(f"{loc}: {err.get('msg')}", "invalid_request_error"), 400)
        except ValueError as exc:
            return JSONResponse(error_body(str(exc), "invalid_request_error"), 400)
        return JSONResponse(body, headers={MODEL_MS_HEADER: f"{model_ms:.3f}"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "policy": policy.identity}

    return app
