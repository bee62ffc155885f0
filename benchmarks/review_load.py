"""Load test of the review service: concurrent simulated reviewers against a local server.

Starts ``carealign review serve`` (one uvicorn process) on 127.0.0.1 with a fresh database, logs in
N reviewers (all logged in before the clock starts; each then starts after a random wait of up
to one think time, as people do not all click at once), and has each of them work through the
queue the way a person in a browser does: ``POST /queue/next`` ("Review next item"), then per
item ``GET /items/{id}`` (read it), think for a while, ``POST /items/{id}/review`` or ``/choice``
with "Save and next" (saves, reserves the next item and redirects to it), and every tenth item
``GET /queue``. Everything is bounded: a fixed number of items per reviewer and a wall-clock
limit.

It prints the latency of each request kind (p50/p90/p99/max; login is reported apart, Argon2id
is slow on purpose), the errors (HTTP 5xx, transport errors, unexpected statuses; 409 conflicts
are counted separately), and a count check: every label the server acknowledged is looked up in
the database afterwards, and any missing one is a lost label.

    .venv/bin/python benchmarks/review_load.py                       # 50 reviewers x 10 items, SQLite
    .venv/bin/python benchmarks/review_load.py --reviewers 10 --items 5 --think-ms 0
    .venv/bin/python benchmarks/review_load.py --db postgresql://user@127.0.0.1:5432/review
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from carealign.review import accounts
from carealign.review.audit import Actor
from carealign.review.auth import hash_password
from carealign.review.db import open_database
from carealign.review.importing import SourceRows, import_sources
from carealign.review.models import Group, Review, User
from carealign.review.web.server import free_port

PASSWORD = "load-test-password"
VERSION = re.compile(r'name="version" value="(\d+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
JUDGES = ("rules-v2", "llm-external:judge")
VERDICTS = ("Accept", "Caution", "Refuse")


def seed(url: str, reviewers: int, items: int, seed: int) -> None:
    """A group ``load``, ``reviewers`` users in it, and ``items`` judged responses to review."""
    rng = random.Random(seed)
    prompts = [
        json.loads(line)
        for line in resources.files("carealign").joinpath("resources/sample.jsonl").read_text().splitlines()
    ]
    engine, sessions = open_database(url)
    cli = Actor("cli:benchmark")
    with sessions() as db:
        group = accounts.create_group(db, "load", cli)
        db.commit()
        shared = hash_password(PASSWORD)  # one Argon2id hash for every simulated reviewer: seeding stays fast
        for i in range(reviewers):
            db.add(User(name=f"reviewer{i:03d}", password_hash=shared, role="reviewer", groups=[group]))
        db.commit()
        rows = []
        for i in range(items):
            p = prompts[i % len(prompts)]
            rows.append(
                {
                    "prompt_id": f"{p['id']}#{i // len(prompts)}",
                    "prompt": p["prompt"],
                    "harm_level": p["harm_level"],
                    "principle": p["principle"],
                    "method": p["method"],
                    "response": f"Simulated response {i} to: {p['prompt'][:80]}",
                    "judges": [
                        {"judge": j, "verdict": rng.choice(VERDICTS), "confidence": round(rng.uniform(0.3, 1.0), 2)}
                        for j in JUDGES
                    ],
                }
            )
        import_sources(db, [SourceRows("load", Path("load.jsonl"), rows)], group, cli, pairs=False)
    engine.dispose()


def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "carealign",
        "review",
        "serve",
        "--db",
        url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 60 s")


class Stats:
    """Latencies by request kind, errors, conflicts and acknowledged labels."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.conflicts = 0
        self.acknowledged: list[tuple[str, int]] = []

    def timed(self, kind: str, seconds: float) -> None:
        self.latency[kind].append(seconds)


async def login(c: httpx.AsyncClient, name: str, stats: Stats) -> str | None:
    """Log in through the login form; return the session's CSRF token."""
    t = time.perf_counter()
    page = await c.get("/login")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    r = await c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    stats.timed("login", time.perf_counter() - t)
    if r.status_code != 303:
        stats.errors.append(f"{name}: login answered {r.status_code}")
        return None
    page = await c.get("/queue")
    return CSRF.search(page.text).group(1)  # type: ignore[union-attr]


async def review_items(
    c: httpx.AsyncClient,
    name: str,
    csrf: str,
    items: int,
    think_ms: float,
    stats: Stats,
    rng: random.Random,
    deadline: float,
) -> None:
    """Work through ``items`` items like a person in a browser: "Review next item" on the queue page,
    then read, think, "Save and next" (which saves and opens the next item), every tenth item a
    look at the queue page."""

    async def call(kind: str, method: str, url: str, **kw: Any) -> httpx.Response:
        t = time.perf_counter()
        r = await c.request(method, url, **kw)
        stats.timed(kind, time.perf_counter() - t)
        return r

    await asyncio.sleep(rng.uniform(0, think_ms) / 1000)  # people do not all click at the same millisecond
    r = await call("POST /queue/next", "POST", "/queue/next", data={"csrf_token": csrf, "group": "load"})
    location = r.headers.get("location", "")
    for n in range(items):
        if time.monotonic() > deadline or not location.startswith("/items/"):
            if not location.startswith("/items/") and "empty=1" not in location:
                stats.errors.append(f"{name}: no item to review ({r.status_code} {location})")
            return
        try:
            item_id = int(location.rsplit("/", 1)[1])
            r = await call("GET /items/{id}", "GET", location)
            version = VERSION.search(r.text)
            if r.status_code != 200 or version is None:
                stats.errors.append(f"{name}: GET {location} {r.status_code}")
                return
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
            last = n == items - 1
            form = {"csrf_token": csrf, "version": version.group(1), "note": f"load {name}"}
            form["then"] = "stay" if last else "next"
            if 'name="choice"' in r.text:
                kind, form["choice"] = "choice", rng.choice(["a", "b", "tie"])
            else:
                kind, form["verdict"] = "review", rng.choice(VERDICTS)
            r = await call(f"POST /items/{{id}}/{kind}", "POST", f"/items/{item_id}/{kind}", data=form)
            if r.status_code == 303:
                stats.acknowledged.append((name, item_id))
                location = r.headers.get("location", "")
            elif r.status_code == 409:
                stats.conflicts += 1
                return
            else:
                stats.errors.append(f"{name}: POST /items/{item_id}/{kind} {r.status_code}")
                return
            if n % 10 == 9:
                q = await call("GET /queue", "GET", "/queue")
                if q.status_code != 200:
                    stats.errors.append(f"{name}: GET /queue {q.status_code}")
        except httpx.HTTPError as exc:
            stats.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return


async def run_reviewers(base: str, args: argparse.Namespace, stats: Stats) -> float:
    """Log every reviewer in, then let them all work at once; return the working phase's wall time."""
    rng = random.Random(args.seed)
    names = [f"reviewer{i:03d}" for i in range(args.reviewers)]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = [httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False, limits=limits) for _ in names]
    try:
        tokens = await asyncio.gather(*(login(c, n, stats) for c, n in zip(clients, names, strict=True)))
        deadline = time.monotonic() + args.max_seconds
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                review_items(c, n, tok, args.items, args.think_ms, stats, random.Random(rng.random()), deadline)
                for c, n, tok in zip(clients, names, tokens, strict=True)
                if tok is not None
            )
        )
        return time.perf_counter() - t0
    finally:
        for c in clients:
            await c.aclose()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def count_check(url: str, acknowledged: list[tuple[str, int]]) -> tuple[int, int]:
    """How many acknowledged labels are in the database, and how many reviews it holds in all."""
    engine, sessions = open_database(url, migrate=False)
    with sessions() as db:
        stored = set(db.execute(select(User.name, Review.item_id).join(User, User.id == Review.reviewer_id)).all())
        group = db.scalars(select(Group).where(Group.name == "load")).one()
        assert group is not None
    engine.dispose()
    return sum(1 for a in acknowledged if tuple(a) in stored), len(stored)


def main() -> None:
    parser = argparse.ArgumentParser(description="Concurrent simulated reviewers against a local review server.")
    parser.add_argument("--reviewers", type=int, default=50, help="Concurrent reviewers (default 50).")
    parser.add_argument("--items", type=int, default=10, help="Items each reviewer reviews (default 10).")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=5000,
        help="Mean time a reviewer reads an item before saving, ms (default 5000).",
    )
    parser.add_argument("--max-seconds", type=float, default=180, help="Wall-clock limit of the run (default 180).")
    parser.add_argument("--db", default=None, help="Database URL (default: a fresh SQLite file in a temp dir).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.reviewers < 1 or args.reviewers > 500 or args.items < 1 or args.items > 1000:
        raise SystemExit("--reviewers must be 1-500 and --items 1-1000 (the run is bounded on purpose)")

    with tempfile.TemporaryDirectory(prefix="carealign-load-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'review.db'}"
        n_items = args.reviewers * args.items + 50
        t0 = time.perf_counter()
        seed(url, args.reviewers, n_items, args.seed)
        backend = url.split(":")[0]
        print(f"seeded {n_items} items and {args.reviewers} reviewers in {time.perf_counter() - t0:.1f} s ({backend})")
        port = free_port()
        log = Path(tmp) / "server.log"
        server = start_server(url, port, log)
        stats = Stats()
        try:
            wall = asyncio.run(run_reviewers(f"http://127.0.0.1:{port}", args, stats))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        found, total_reviews = count_check(url, stats.acknowledged)

    work = [v for k, vs in stats.latency.items() if k != "login" for v in vs]
    print(
        f"{args.reviewers} reviewers x {args.items} items, think time {args.think_ms:.0f} ms (mean), "
        f"wall {wall:.1f} s, {len(work) / wall:.0f} requests/s, CPU cores {os.cpu_count()}"
    )
    print(f"{'request':<26}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows: dict[str, Any] = {}
    for kind in sorted(stats.latency, key=lambda k: (k == "login", k)):
        vs = stats.latency[kind]
        figures = {
            "n": len(vs),
            "p50": pct(vs, 50) * 1e3,
            "p90": pct(vs, 90) * 1e3,
            "p99": pct(vs, 99) * 1e3,
            "max": max(vs) * 1e3,
        }
        rows[kind] = figures
        print(
            f"{kind:<26}{len(vs):>6}{figures['p50']:>9.1f}{figures['p90']:>9.1f}{figures['p99']:>9.1f}{figures['max']:>9.1f}"
        )
    overall = {
        "n": len(work),
        "p50": pct(work, 50) * 1e3,
        "p99": pct(work, 99) * 1e3,
        "mean": statistics.fmean(work) * 1e3,
    }
    print(f"{'all but login':<26}{len(work):>6}{overall['p50']:>9.1f}{'':>9}{overall['p99']:>9.1f}")
    lost = len(stats.acknowledged) - found
    print(f"errors: {len(stats.errors)}; conflicts (409): {stats.conflicts}")
    for e in stats.errors[:10]:
        print(f"  {e}")
    print(
        f"labels: {len(stats.acknowledged)} acknowledged by the server, {found} of them in the database "
        f"({total_reviews} reviews stored in all); lost: {lost}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "wall_s": wall,
                    "latency_ms": rows,
                    "overall_ms": overall,
                    "errors": len(stats.errors),
                    "conflicts": stats.conflicts,
                    "acknowledged": len(stats.acknowledged),
                    "stored": found,
                    "lost": lost,
                },
                indent=2,
            )
        )
    if stats.errors or lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
