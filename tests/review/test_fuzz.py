"""Fuzzing every form and JSON endpoint with schemathesis from the app's OpenAPI schema, logged in
as an admin (session cookie and CSRF token supplied, so requests get past authentication into the
handlers), with schema-valid and schema-violating inputs: no request may end in a server error.

``CAREALIGN_FUZZ_EXAMPLES=N`` sets the examples per operation and mode (default 10); ``-s`` prints
a summary (operations, requests, status codes).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from .conftest import PASSWORD  # noqa: E402

#: Operations left out: logging out would end the fuzzing session itself.
SKIP = {("POST", "/logout"), ("POST", "/api/logout")}


def test_no_server_errors(app) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    examples = int(os.environ.get("CAREALIGN_FUZZ_EXAMPLES", "10"))
    http = TestClient(app)
    login = http.post("/api/login", json={"name": "root", "password": PASSWORD}).json()
    csrf, cookies = login["csrf_token"], {"carealign_session": http.cookies["carealign_session"]}

    schema = schemathesis.openapi.from_dict(app.openapi())
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    modes: Counter[str] = Counter()
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SKIP:
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode, headers={"X-CSRF-Token": csrf})

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case) -> None:  # type: ignore[no-untyped-def]
                if isinstance(case.body, dict) and "form" in (case.media_type or ""):
                    case.body["csrf_token"] = csrf  # past the CSRF check, into the handler
                response = case.call(app=app, cookies=cookies)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    where = f"{case.operation.method.upper()} {case.operation.path}"
                    failures.append(f"{where} -> {response.status_code}: {case.as_curl_command()}")

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to violate (e.g. no parameters)
                continue
            modes[mode.value] += 1
    total = sum(statuses.values())
    print(
        f"\nfuzz: {operations} operations ({modes['positive']} with valid, {modes['negative']} with invalid input), "
        f"{total} requests, status codes {dict(sorted(statuses.items()))}"
    )
    in_schema = sum(len(methods) for methods in app.openapi()["paths"].values())
    assert operations == in_schema - len(SKIP) and operations > 35
    assert not failures, "\n".join(failures[:10])
    assert statuses[200] + statuses[201] + statuses[303] > 0  # some requests got through to a handler
