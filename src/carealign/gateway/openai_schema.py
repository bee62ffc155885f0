"""The slice of OpenAI's chat completions API the gateway speaks: requests, responses, stream chunks, errors."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from carealign.generate.base import GenerationConfig


class ContentPart(BaseModel):
    """A part of a message's content; only text parts are accepted."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body. Unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("messages")
    @classmethod
    def _has_user_turn(cls, messages: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("the conversation needs at least one user message")
        return messages

    def generation_config(self, default_max_tokens: int) -> GenerationConfig:
        """The request's decoding settings (greedy unless it sets a temperature)."""
        return GenerationConfig(
            max_new_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
            temperature=self.temperature if self.temperature is not None else 0.0,
            top_p=self.top_p if self.top_p is not None else 1.0,
            seed=self.seed or 0,
        )

    def conversation(self) -> list[dict[str, str]]:
        """The messages as plain role/content dicts (``developer`` read as ``system``)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def completion_body(
    request_id: str,
    model: str,
    text: str,
    finish_reason: str,
    completion_tokens: int,
    prompt_tokens: int | None,
    created: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
    }
    if prompt_tokens is not None:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def _pieces(text: str, size: int = 16) -> list[str]:
    """The text in pieces of about ``size`` characters, cut after whitespace where possible."""
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + 1, end + 1)
            end = cut + 1 if cut > start else end
        out.append(text[start:end])
        start = end
    return out


def sse_events(
    request_id: str,
    model: str,
    text: str,
    finish_reason: str,
    usage: dict[str, int] | None,
) -> list[str]:
    """The server-sent events of a streamed completion: the role, the text in pieces, the finish, ``[DONE]``."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        body = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in _pieces(text)]
    events.append(chunk({}, finish_reason))
    if usage is not None:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}
        events.append(f"data: {json.dumps({**body, 'choices': [], 'usage': usage})}\n\n")
    events.append("data: [DONE]\n\n")
    return events
