"""SIGKILL during load: every exchange whose response was returned is in the log after a restart,
and the ones left unjudged are judged by the restarted gateway. Also checks SIGHUP reloads in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from carealign.gateway.models import Exchange, JudgeTask
from carealign.review.db import open_database
from carealign.review.web.server import free_port

# A judge that takes its time, so that the queue is behind when the gateway is killed.
SLOW_SERVE = """
import sys, time
from carealign.judge import RulesJudge, register_judge

class Slow(RulesJudge):
    def judge(self, items):
        time.sleep(2.0)
        return super().judge(items)

register_judge("slow", lambda policy=None, **kw: Slow())
from carealign.cli import main
sys.argv = ["carealign", *sys.argv[1:]]
main()
"""


def _serve(args: list[str], *, slow: bool, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", SLOW_SERVE, *args] if slow else [sys.executable, "-m", "carealign", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"gateway did not start: {log.read_text()[-3000:]}")


def test_sigkill_during_load_loses_no_returned_exchange(tmp_path: Path, tiny_model_dir: Path) -> None:
    db = tmp_path / "crash.db"
    key = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "carealign",
                "gateway",
                "keys",
                "add",
                "load",
                "--rate-limit",
                "10000",
                "--db",
                str(db),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert key.startswith("ca-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    common = ["gateway", "serve", "--model", str(tiny_model_dir), "--db", str(db), "--port", str(port)]
    common += ["--dtype", "fp32", "--device", "cpu", "--default-max-tokens", "8", "--lease-seconds", "600"]
    proc = _serve([*common, "--judge", "slow"], slow=True, log=tmp_path / "first.log")
    _wait_up(url, proc, tmp_path / "first.log")

    returned: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = http.post(
                        url + "/v1/chat/completions",
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": "carealign", "messages": [{"role": "user", "content": f"client {n} asks {i}"}]},
                    )
                except httpx.HTTPError:
                    return  # the gateway died under us
                if r.status_code == 200:
                    with lock:
                        returned.append(r.json()["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(returned) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    with lock:
        got = list(returned)
    assert len(got) >= 20

    engine, sessions = open_database(db, migrate=False)
    with sessions() as s:
        logged = set(s.scalars(select(Exchange.request_id)))
        unjudged = s.scalar(select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_(None)))
    assert set(got) <= logged  # every returned response is in the log
    assert unjudged and unjudged > 0  # the slow judge was behind when the gateway died

    proc = _serve([*common, "--judge", "rules"], slow=False, log=tmp_path / "second.log")
    try:
        _wait_up(url, proc, tmp_path / "second.log")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as s:
                pending = s.scalar(select(func.count()).select_from(JudgeTask))
                left = s.scalar(select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_(None)))
            if pending == 0 and left == 0:
                break
            time.sleep(0.3)
        assert (pending, left) == (0, 0), (pending, left)
        proc.send_signal(signal.SIGHUP)  # reload in place: same model, nothing changes, and it keeps serving
        time.sleep(1.0)
        r = httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "carealign", "messages": [{"role": "user", "content": "still there?"}]},
            timeout=60,
        )
        assert r.status_code == 200 and proc.poll() is None
        assert "reload" in (tmp_path / "second.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)
        engine.dispose()
