"""The gateway as an OpenAI client sees it: completions, streaming, keys, limits, errors; the exchange log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from carealign.gateway.models import Exchange, JudgeTask
from carealign.review.models import Item, ItemStatus, Prompt

from .conftest import BENIGN, HARMFUL, RunningGateway, ask, start_gateway


def test_plain_completion_is_logged_before_it_returns(monitor_gateway: RunningGateway) -> None:
    client = monitor_gateway.client()
    resp = ask(client, BENIGN)
    text = resp.choices[0].message.content
    assert resp.object == "chat.completion" and resp.model == "carealign"
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    # the prompt's tokens as the model read them (reported by the generation, not counted again)
    loaded = monitor_gateway.gateway.policy.current
    assert resp.usage.prompt_tokens == loaded.count_tokens([{"role": "user", "content": BENIGN}])
    ex = monitor_gateway.exchange(resp.id)  # read at once: durable before the response left
    assert ex is not None
    assert ex.response == text and ex.prompt == BENIGN
    assert ex.messages == [{"role": "user", "content": BENIGN}]
    assert ex.mode == "monitor" and ex.policy == "hf:tiny"  # the identity of the model that answered
    assert ex.latency_ms >= ex.generation_ms > 0


def test_streamed_completion_matches_the_log(monitor_gateway: RunningGateway) -> None:
    client = monitor_gateway.client()
    stream = client.chat.completions.create(
        model="carealign",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": BENIGN}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, ids, usage = [], None, set(), None
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert len(ids) == 1 and finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0
    ex = monitor_gateway.exchange(ids.pop())
    assert ex is not None and ex.response == "".join(pieces)
    assert ex.messages[0] == {"role": "system", "content": "Be brief."}


def test_models_lists_the_served_id(monitor_gateway: RunningGateway) -> None:
    assert [m.id for m in monitor_gateway.client().models.list()] == ["carealign"]


def test_refused_without_a_key_or_with_a_bad_one(monitor_gateway: RunningGateway) -> None:
    before = _count(monitor_gateway)
    bad = openai.OpenAI(base_url=monitor_gateway.url, api_key="ca-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        ask(bad, BENIGN)
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    r = httpx.post(monitor_gateway.url + "/chat/completions", json={"model": "carealign", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with monitor_gateway.sessions() as db:
        from carealign.gateway.keys import revoke_key

        monitor_gateway.key("leaver")
        revoke_key(db, "leaver")
        db.commit()
    monitor_gateway.gateway.keys._cache.clear()
    with pytest.raises(openai.AuthenticationError):
        ask(monitor_gateway.client("leaver"), BENIGN)
    assert _count(monitor_gateway) == before  # nothing logged for refused requests


def _count(gw: RunningGateway) -> int:
    from sqlalchemy import func

    with gw.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(Exchange)) or 0)


def _body(**fields: object) -> bytes:
    return json.dumps({"model": "carealign", "messages": [{"role": "user", "content": "x"}], **fields}).encode()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (json.dumps({"model": "carealign"}).encode(), 400, "messages"),
        (_body(messages=[{"role": "robot", "content": "x"}]), 400, None),
        (_body(messages=[{"role": "system", "content": "x"}]), 400, None),
        (_body(max_tokens=10**6), 400, "max_tokens"),
        (_body(n=3), 400, None),
        (_body(temperature="hot"), 400, None),
        (_body(model="gpt-4o"), 404, "model"),
        (_body(messages=[{"role": "user", "content": "x" * 30_000}]), 413, None),
    ],
)
def test_malformed_and_oversized_requests_get_openai_errors(
    monitor_gateway: RunningGateway, body: bytes, status: int, param: str | None
) -> None:
    key = monitor_gateway.key("default")
    r = httpx.post(
        monitor_gateway.url + "/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param


def test_oversized_request_through_the_client(monitor_gateway: RunningGateway) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        ask(monitor_gateway.client(), "x" * 30_000)
    assert err.value.status_code == 413


def test_rate_limit_per_key(monitor_gateway: RunningGateway) -> None:
    monitor_gateway.key("slow", rate_per_minute=2)
    client = monitor_gateway.client("slow")
    ask(client, BENIGN)
    ask(client, BENIGN)
    with pytest.raises(openai.RateLimitError) as err:
        ask(client, BENIGN)
    assert err.value.code == "rate_limit_exceeded"
    assert int(err.value.response.headers["Retry-After"]) >= 1


def test_exchange_is_judged_off_the_request_path(monitor_gateway: RunningGateway) -> None:
    resp = ask(monitor_gateway.client(), BENIGN)
    ex = monitor_gateway.wait_judged(resp.id)
    assert ex.verdict in ("Accept", "Caution", "Refuse", "Unscored")
    assert ex.judge == "rules-v3" or ex.judge.startswith("rules")
    assert ex.harm_level in (0, 1, 2, 3) and 0 < ex.harm_confidence <= 1
    assert ex.harm_model.startswith("harm-estimator")
    with monitor_gateway.sessions() as db:
        assert db.scalar(select(JudgeTask).where(JudgeTask.exchange_id == ex.id)) is None  # its task is done


def test_harmful_exchange_lands_first_in_the_review_queue(monitor_gateway: RunningGateway) -> None:
    from carealign.review import accounts
    from carealign.review.audit import Actor
    from carealign.review.queue import queue_query

    with monitor_gateway.sessions() as db:  # an imported item already waiting in the same queue
        group, _ = accounts.ensure_group(db, "clinicians", Actor("cli:test"))
        from carealign.review.importing import SourceRows, import_sources

        import_sources(
            db,
            [
                SourceRows(
                    "old-run",
                    __import__("pathlib").Path("old.jsonl"),
                    [
                        {
                            "prompt": "Old prompt",
                            "response": "Old answer",
                            "harm_level": 3,
                            "verdict": "Accept",
                            "confidence": 0.2,
                            "judge": "rules",
                        }
                    ],
                )
            ],
            group,
            Actor("cli:test"),
        )
        admin = accounts.create_user(db, "boss", "correct-horse-battery", "admin", Actor("cli:test"))
        db.commit()
    resp = ask(monitor_gateway.client(), HARMFUL)
    ex = monitor_gateway.wait_judged(resp.id)
    assert ex.harm_level >= 2, ex.harm_level
    # the tiny random model writes gibberish (or nothing): rules call it Accept (it complied) or Unscored
    assert {"harmful_accepted", "unscored"} & set(ex.flags) and ex.review_item_id is not None
    with monitor_gateway.sessions() as db:
        item = db.get(Item, ex.review_item_id)
        assert item is not None and item.status == ItemStatus.OPEN.value
        assert item.response.text == ex.response and item.group.name == "clinicians"
        assert "live traffic" in item.priority_reasons
        prompt = db.get(Prompt, item.prompt_id)
        assert prompt is not None and prompt.harm_level == ex.harm_level
        admin = db.merge(admin)
        first = db.scalars(queue_query(admin, [item.group_id], "review").limit(1)).first()
        assert first is not None and first.id == item.id  # live traffic before imported runs


def test_oversized_chunked_body_is_cut_off(monitor_gateway: RunningGateway) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "carealign", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000  # no Content-Length: the limit is counted as the body arrives
        yield b'"}]}'

    r = httpx.post(
        monitor_gateway.url + "/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {monitor_gateway.key('default')}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


class _SeesInFlight:
    """A generator that records how many requests the gateway counted as in flight while it generated."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gateway: Any = None
        self.seen: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate_chat(self, conversations: Any, config: Any, progress: Any = None) -> Any:
        self.seen.append(self.gateway.policy.in_flight.count)
        return self.inner.generate_chat(conversations, config, progress)


def test_a_request_counts_as_in_flight_until_its_exchange_is_stored(tmp_path: Path, tiny_generator: Any) -> None:
    gen = _SeesInFlight(tiny_generator)
    running = start_gateway(tmp_path, gen, mode="monitor")
    try:
        gen.gateway = running.gateway
        resp = ask(running.client(), BENIGN)
        assert gen.seen == [1]  # the monitor-mode worker does not judge while this is > 0
        assert running.gateway.policy.in_flight.count == 0 and not running.gateway.policy.in_flight.busy()
        assert running.exchange(resp.id) is not None
        assert running.wait_judged(resp.id).verdict is not None  # judged once the model is idle
    finally:
        running.server.stop()


def test_a_monitor_gateway_without_worker_loads_no_judge_and_leaves_the_queue(
    tmp_path: Path, tiny_generator: Any
) -> None:
    from carealign.gateway.assess import Assessor
    from carealign.gateway.worker import JudgingWorker

    running = start_gateway(tmp_path, tiny_generator, mode="monitor", worker=False)
    try:
        assert running.gateway.assessor is None and running.gateway.worker is None
        resp = ask(running.client(), BENIGN)
        ex = running.exchange(resp.id)
        assert ex is not None and ex.judged_at is None
        with running.sessions() as db:  # its task waits for `carealign gateway work`
            assert db.scalar(select(JudgeTask).where(JudgeTask.exchange_id == ex.id)) is not None
        worker = JudgingWorker(running.sessions, Assessor("rules"), group="clinicians")
        assert worker.drain() == 1
        judged = running.exchange(resp.id)
        assert judged is not None and judged.judged_at is not None and judged.verdict is not None
    finally:
        running.server.stop()


def test_health_reports_requests_in_flight_to_a_judging_process(monitor_gateway: RunningGateway) -> None:
    from carealign.gateway.worker import HttpIdleGate

    gate = HttpIdleGate(monitor_gateway.server.url + "/health", poll_seconds=0.01)
    assert not gate.busy() and gate.wait_idle(0)
    with monitor_gateway.gateway.policy.in_flight.track():
        assert httpx.get(monitor_gateway.server.url + "/health").json()["in_flight"] == 1
        assert gate.busy() and not gate.wait_idle(0)
    assert not gate.busy()
    assert not HttpIdleGate("http://127.0.0.1:9/health").busy()  # no gateway there: judging goes on
