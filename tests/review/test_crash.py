"""A crash loses no saved label: reviewers submit to a real ``carealign review serve`` process, the
process is killed with SIGKILL mid-stream, and after a restart every label the server had
acknowledged is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from carealign.review import accounts
from carealign.review.db import open_database
from carealign.review.models import Item
from carealign.review.web.server import free_port

from .conftest import CLI, PASSWORD, seed

REVIEWERS = ("r1", "r2", "r3", "r4")


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "carealign", "review", "serve", "--db", str(db), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"server did not start: {log.read_text()[-2000:]}")


def test_acknowledged_labels_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "review.db"
    store = seed(f"sqlite:///{db}")
    with store.session() as s:
        for name in REVIEWERS:
            accounts.create_user(s, name, PASSWORD, "reviewer", CLI, groups=["advocates"])
        s.commit()
    store.engine.dispose()

    port = free_port()
    log = tmp_path / "server.log"
    proc = start_server(db, port, log)
    acknowledged: list[tuple[int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def reviewer(name: str) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            csrf = c.post("/api/login", json={"name": name, "password": PASSWORD}).json()["csrf_token"]
            headers = {"X-CSRF-Token": csrf}
            verdicts = ["Accept", "Caution", "Refuse"]
            while not stop.is_set():
                try:
                    item = c.post("/api/queue/next", json={}, headers=headers).json()["item"]
                    if item is None:
                        return
                    verdict = verdicts[item["id"] % 3]
                    if item["kind"] == "pair":
                        r = c.post(
                            f"/api/items/{item['id']}/choice",
                            json={"version": item["version"], "choice": "a"},
                            headers=headers,
                        )
                        verdict = "a"
                    else:
                        r = c.post(
                            f"/api/items/{item['id']}/review",
                            json={"version": item["version"], "verdict": verdict},
                            headers=headers,
                        )
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acknowledged.append((item["id"], verdict))

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in REVIEWERS]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no flush: the process just dies
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acknowledged) >= 8, log.read_text()[-2000:]

    proc = start_server(db, port, log)  # the restart recovers the WAL
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            c.post("/api/login", json={"name": "root", "password": PASSWORD})
            for item_id, value in acknowledged:
                final = c.get(f"/api/items/{item_id}").json()["final"]
                assert value in (final["verdict"], final["choice"]), (item_id, value, final)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    engine, sessions = open_database(db)
    with sessions() as s:
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        done = set(s.scalars(select(Item.id).where(Item.status == "done")))
    engine.dispose()
    assert {i for i, _ in acknowledged} <= done
