"""The gateway's FastAPI app: ``POST /v1/chat/completions``, ``GET /v1/models`` and ``POST /admin/reload``.

Order of checks on a completion request: body size (413, before the body is read whole), API key
(401), rate limit (429), body (400 with OpenAI's error shape), model name (404); then the policy answers,
guard mode judges and may replace the answer, the exchange is committed, and only then does the
response (plain or streamed) leave.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carealign.gateway.assess import Assessor
from carealign.gateway.exchanges import NewExchange, store_exchange
from carealign.gateway.guard import guard
from carealign.gateway.keys import KeyChecker, KeyInfo, RateLimiter
from carealign.gateway.openai_schema import ChatRequest, completion_body, error_body, sse_events
from carealign.gateway.serving import ServedPolicy
from carealign.gateway.settings import GatewaySettings
from carealign.gateway.worker import JudgingWorker, release_stale_claims
from carealign.review.db import open_database

log = logging.getLogger("carealign.gateway")


class GatewayError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers: dict[str, str] = {}


def _error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status, headers=exc.headers)


class BodyLimit:
    """ASGI middleware: refuse bodies larger than ``limit`` bytes with 413, before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = GatewayError(
            413, f"request body larger than {self.limit} bytes", "invalid_request_error", "request_too_large"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _error_response(too_big)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _error_response(too_big)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


@dataclass
class Answer:
    """A finished completion, stored in the log."""

    request_id: str
    text: str
    finish_reason: str
    completion_tokens: int
    prompt_tokens: int | None
    exchange_id: int


class Gateway:
    """The serving state: settings, database, policy, assessor, key checks and the judging worker."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        generator: Any | None = None,
        assessor: Assessor | None = None,
    ) -> None:
        self.settings = settings
        self.engine, self.sessions = open_database(settings.db)
        self.policy = ServedPolicy(settings.model, dtype=settings.dtype, device=settings.device, generator=generator)
        # judging happens in this process in guard mode and with the worker; a monitor-mode gateway
        # with --no-worker loads no estimator or judge (they would slow its generation, see docs/gateway.md)
        self.assessor: Assessor | None = assessor
        if assessor is None and (settings.mode == "guard" or settings.worker):
            self.assessor = Assessor(
                settings.judge,
                route=settings.route,
                safety_policy=settings.safety_policy,
                policy_generator=self.policy.current.generator,
            )
        self.keys = KeyChecker(self.sessions)
        self.limiter = RateLimiter()
        self.worker: JudgingWorker | None = None
        if settings.worker and self.assessor is not None:
            self.worker = JudgingWorker(
                self.sessions,
                self.assessor,
                group=settings.group,
                batch=settings.worker_batch,
                lease_seconds=settings.lease_seconds,
                retention_days=settings.retention_days,
                idle_gate=self.policy.in_flight if settings.judge_when_idle else None,
                max_backlog=settings.judge_backlog,
                max_delay_s=settings.judge_max_delay_s,
            )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        # the estimator and judge answer once before serving: their first call (lazy set-up, first
        # forward pass) then delays neither a guard-mode request nor the requests judging overlaps
        if self.assessor is not None:
            self.assessor.assess([("Hello.", "Hello! How can I help?")])
        if self.worker is not None:
            released = release_stale_claims(self.sessions)
            if released:
                log.info("released %d judging claims of a worker that is gone", released)
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.engine.dispose()

    def reload(self) -> dict[str, Any]:
        """Pick up a newly promoted policy; what is served now."""
        changed, identity = self.policy.reload()
        if changed:
            log.info("now serving %s", identity)
        return {"changed": changed, "policy": identity}

    # ------------------------------------------------------------------ requests

    def authorise(self, header: str | None) -> KeyInfo:
        token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        key = self.keys.check(token)
        if key is None:
            raise GatewayError(
                401,
                "missing or invalid API key; send Authorization: Bearer KEY (carealign gateway keys add)",
                "invalid_request_error",
                "invalid_api_key",
            )
        return key

    def throttle(self, key: KeyInfo) -> None:
        wait = self.limiter.allow(key)
        if wait is not None:
            exc = GatewayError(
                429,
                f"rate limit of {key.rate_per_minute} requests per minute reached for key {key.name}; "
                f"retry in {wait:.1f} s",
                "requests",
                "rate_limit_exceeded",
            )
            exc.headers["Retry-After"] = str(max(1, round(wait)))
            raise exc

    def parse(self, body: bytes) -> ChatRequest:
        try:
            req = ChatRequest.model_validate_json(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            if err.get("type") == "json_invalid":
                raise GatewayError(
                    400, f"the body is not valid JSON: {err.get('msg')}", "invalid_request_error"
                ) from None
            raise GatewayError(
                400, f"{loc or 'body'}: {err.get('msg')}", "invalid_request_error", "invalid_value", loc or None
            ) from None
        s = self.settings
        if req.model != s.served_name:
            raise GatewayError(
                404,
                f"model {req.model!r} is not served here; GET /v1/models lists {s.served_name!r}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        if len(req.messages) > s.max_messages:
            raise GatewayError(
                400,
                f"{len(req.messages)} messages; at most {s.max_messages}",
                "invalid_request_error",
                None,
                "messages",
            )
        asked = req.max_completion_tokens or req.max_tokens
        if asked is not None and asked > s.max_tokens_limit:
            raise GatewayError(
                400,
                f"max_tokens {asked} exceeds this gateway's limit of {s.max_tokens_limit}",
                "invalid_request_error",
                "invalid_value",
                "max_tokens",
            )
        return req

    def complete(self, key: KeyInfo, req: ChatRequest, started: float) -> Answer:
        """Generate, (guard,) store, and return the answer. Runs in a worker thread; counted as in
        flight (monitor-mode judging waits for an idle model) until the exchange is stored."""
        with self.policy.in_flight.track():
            return self._complete(key, req, started)

    def _complete(self, key: KeyInfo, req: ChatRequest, started: float) -> Answer:
        s = self.settings
        conversation = req.conversation()
        config = req.generation_config(s.default_max_tokens)
        loaded = self.policy.current
        t0 = time.perf_counter()
        completion = loaded.generate(conversation, config)
        generation_ms = (time.perf_counter() - t0) * 1000
        finish = "length" if completion.n_tokens >= config.max_new_tokens else "stop"
        text, original, action, assessment = completion.text, None, "none", None
        if s.mode == "guard":
            assert self.assessor is not None  # made for guard mode in __init__
            prompt = next(m["content"] for m in reversed(conversation) if m["role"] == "user")
            outcome = guard(loaded, conversation, prompt, completion.text, self.assessor, s.guard, config)
            text, original, action, assessment = outcome.text, outcome.original, outcome.action, outcome.assessment
            if original is not None:
                finish = "stop"
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        group = key.group or s.group
        row = store_exchange(
            self.sessions,
            NewExchange(
                request_id=request_id,
                key_id=key.id,
                group=group,
                mode=s.mode,
                policy=loaded.identity,
                messages=conversation,
                response=text,
                completion_tokens=completion.n_tokens,
                finish_reason=finish,
                latency_ms=(time.perf_counter() - started) * 1000,
                generation_ms=generation_ms,
                original_response=original,
                guard_action=action,
            ),
            redact=s.redact,
            assessment=assessment,
            route_group=group,
        )
        if self.worker is not None and assessment is None:
            self.worker.wake()
        tokens = completion.n_tokens if original is None else 0
        prompt_tokens = completion.prompt_tokens
        if prompt_tokens is None:  # a backend that does not say: count them here
            prompt_tokens = loaded.count_tokens(conversation)
        return Answer(request_id, text, finish, tokens, prompt_tokens, row.id)


def create_app(settings: GatewaySettings | Gateway, **gateway_kwargs: Any) -> FastAPI:
    """The FastAPI app of a gateway (built from settings, or around a :class:`Gateway` already made)."""
    gw = settings if isinstance(settings, Gateway) else Gateway(settings, **gateway_kwargs)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        gw.start()
        yield
        gw.stop()

    app = FastAPI(
        title="carealign gateway",
        description="An OpenAI-compatible chat completions API in front of the aligned policy.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gw
    app.add_middleware(BodyLimit, limit=gw.settings.max_body_bytes)

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error", code), exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(error_body(f"the gateway failed: {type(exc).__name__}", "server_error"), 500)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        started = time.perf_counter()
        raw = await request.body()

        def handle() -> tuple[ChatRequest, Answer]:  # one hop to a worker thread per request
            key = gw.authorise(request.headers.get("authorization"))
            gw.throttle(key)
            req = gw.parse(raw)
            return req, gw.complete(key, req, started)

        req, answer = await run_in_threadpool(handle)
        name = gw.settings.served_name
        if not req.stream:
            return JSONResponse(
                completion_body(
                    answer.request_id,
                    name,
                    answer.text,
                    answer.finish_reason,
                    answer.completion_tokens,
                    answer.prompt_tokens,
                )
            )
        usage = None
        if req.stream_options is not None and req.stream_options.include_usage and answer.prompt_tokens is not None:
            usage = {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            }
        events = sse_events(answer.request_id, name, answer.text, answer.finish_reason, usage)

        def body() -> Iterator[bytes]:
            for event in events:
                yield event.encode("utf-8")

        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        await run_in_threadpool(gw.authorise, request.headers.get("authorization"))
        return {
            "object": "list",
            "data": [{"id": gw.settings.served_name, "object": "model", "created": 0, "owned_by": "carealign"}],
        }

    @app.post("/admin/reload")
    async def reload(request: Request) -> dict[str, Any]:
        key = await run_in_threadpool(gw.authorise, request.headers.get("authorization"))
        if not key.admin:
            raise GatewayError(403, "reloading the policy needs an admin key", "invalid_request_error", "forbidden")
        return await run_in_threadpool(gw.reload)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "policy": gw.policy.identity,
            "mode": gw.settings.mode,
            "in_flight": gw.policy.in_flight.count,
        }

    return app
