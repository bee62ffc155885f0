"""Load test of the gateway: concurrent clients against ``carealign gateway serve`` vs the same backend called directly.

Phases, one after another on the same machine:

1. **direct**: the model is loaded in this process and ``--clients`` threads send the requests
   straight to it, through the same one-request-at-a-time lock the gateway uses (the backend's own
   latency, queueing included);
2. **monitor** / **guard**: ``carealign gateway serve`` runs as a separate process with a fresh
   SQLite log, and ``--clients`` threads send the same requests over HTTP with the ``openai``
   client (``--requests`` in all, greedy, ``--max-tokens`` each).

For each phase it prints p50/p99/max latency, requests per second and errors; for the gateway
phases the overhead against the direct phase (p50 and p99 differences), the gateway's own time per
request (latency seen by the client less the time spent waiting for and running the model, read
from the log), and a count check: every response a client received must be in the exchange log
(and, once the judging queue has drained, judged).

    .venv/bin/python benchmarks/gateway_load.py                     # smollm2-135m, 20 clients, 80 requests per phase
    .venv/bin/python benchmarks/gateway_load.py --requests 40 --max-tokens 8 --modes monitor
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx


def cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    feats = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} x{os.cpu_count()} ({', '.join(feats) or 'no AVX2'})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def prompts(n: int) -> list[str]:
    from carealign.data import load_prompts

    recs = load_prompts("sample", "test")
    return [recs[i % len(recs)].prompt for i in range(n)]


def run_clients(n_clients: int, work: list[str], send: Any) -> dict[str, Any]:
    """Send every prompt of ``work`` with ``n_clients`` threads; latencies, ids, errors, wall time."""
    latencies: list[float] = []
    ids: list[str] = []
    by_id: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def one(prompt: str) -> None:
        t0 = time.perf_counter()
        try:
            rid = send(prompt)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        dt = (time.perf_counter() - t0) * 1000
        with lock:
            latencies.append(dt)
            if rid:
                ids.append(rid)
                by_id[rid] = dt

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_clients) as pool:
        list(pool.map(one, work))
    wall = time.perf_counter() - start
    return {"latencies": latencies, "ids": ids, "by_id": by_id, "errors": errors, "wall_s": wall}


def direct_phase(model: str, work: list[str], clients: int, max_tokens: int) -> dict[str, Any]:
    from carealign.gateway.serving import ServedPolicy
    from carealign.generate import GenerationConfig

    loaded = ServedPolicy(model).current
    config = GenerationConfig(max_new_tokens=max_tokens)
    loaded.generate([{"role": "user", "content": "warm up"}], config)

    def send(prompt: str) -> None:
        loaded.generate([{"role": "user", "content": prompt}], config)

    return run_clients(clients, work, send)


def gateway_phase(
    model: str, mode: str, work: list[str], clients: int, max_tokens: int, judge: str, tmp: Path
) -> dict[str, Any]:
    import openai
    from sqlalchemy import func, select

    from carealign.gateway.keys import create_key
    from carealign.gateway.models import Exchange, JudgeTask
    from carealign.review.db import open_database
    from carealign.review.web.server import free_port

    db = tmp / f"{mode}.db"
    engine, sessions = open_database(db)
    with sessions() as s:
        _, key = create_key(s, "bench", rate_per_minute=1_000_000)
        s.commit()
    port = free_port()
    log = (tmp / f"{mode}.log").open("wb")
    cmd = [sys.executable, "-m", "carealign", "gateway", "serve", "--model", model, "--db", str(db)]
    cmd += ["--port", str(port), "--mode", mode, "--judge", judge, "--default-max-tokens", str(max_tokens)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gateway did not start: {(tmp / f'{mode}.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=600)
        client.chat.completions.create(
            model="carealign", messages=[{"role": "user", "content": "warm up"}], max_tokens=max_tokens
        )

        def send(prompt: str) -> str:
            r = client.chat.completions.create(
                model="carealign", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens
            )
            return r.id

        out = run_clients(clients, work, send)
        # the gateway's own time per request: client latency less model time (waiting for and running it)
        with sessions() as s:
            rows = {e.request_id: e for e in s.scalars(select(Exchange))}
        out["missing"] = [i for i in out["ids"] if i not in rows]
        out["backend_ms"] = [rows[i].generation_ms for i in out["ids"] if i in rows]
        out["own_ms"] = [out["by_id"][i] - rows[i].generation_ms for i in out["ids"] if i in rows]
        out["server_ms"] = [rows[i].latency_ms - rows[i].generation_ms for i in out["ids"] if i in rows]
        out["guarded"] = sum(1 for i in out["ids"] if i in rows and rows[i].guard_action != "none")
        drain_start = time.perf_counter()
        while time.perf_counter() - drain_start < 300:
            with sessions() as s:
                pending = s.scalar(select(func.count()).select_from(JudgeTask))
            if not pending:
                break
            time.sleep(0.5)
        out["drain_s"] = time.perf_counter() - drain_start
        with sessions() as s:
            out["judged"] = s.scalar(select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_not(None)))
            out["logged"] = s.scalar(select(func.count()).select_from(Exchange))
            out["routed"] = s.scalar(
                select(func.count()).select_from(Exchange).where(Exchange.review_item_id.is_not(None))
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=80, help="Requests per phase.")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--modes", default="monitor,guard")
    ap.add_argument("--judge", default="rules")
    ap.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON.")
    ap.add_argument(
        "--direct-again", action="store_true", help="Run the direct phase again at the end; compare with both."
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = prompts(args.requests)
    print(
        f"CPU: {cpu_name()}; model {args.model}; {args.clients} clients, {args.requests} requests per phase, "
        f"max_tokens {args.max_tokens}, greedy; judge {args.judge}",
        flush=True,
    )

    def brief(name: str, r: dict[str, Any]) -> None:  # each phase as it ends, in case a later one is cut short
        lat = r["latencies"]
        print(
            f"  {name} done: {len(lat)} ok, {len(r['errors'])} errors, {len(lat) / r['wall_s']:.2f} req/s, "
            f"p50 {percentile(lat, 0.5):.0f} ms, p99 {percentile(lat, 0.99):.0f} ms",
            flush=True,
        )

    results: dict[str, dict[str, Any]] = {"direct": direct_phase(args.model, work, args.clients, args.max_tokens)}
    brief("direct", results["direct"])
    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            results[mode] = gateway_phase(args.model, mode, work, args.clients, args.max_tokens, args.judge, Path(tmp))
            brief(mode, results[mode])
    if args.direct_again:  # the baseline once more, to see how far the machine drifted during the run
        results["direct2"] = direct_phase(args.model, work, args.clients, args.max_tokens)
    base = results["direct"]["latencies"] + results.get("direct2", {}).get("latencies", [])
    summary: dict[str, Any] = {"cpu": cpu_name(), "args": {k: str(v) for k, v in vars(args).items()}}
    header = f"{'phase':<8} {'ok':>4} {'err':>4} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    header += f" {'d p50':>7} {'d p99':>7} {'own p50':>8} {'own p99':>8} {'srv p50':>8} {'srv p99':>8}"
    header += f" {'lost':>5} {'judged':>7}"
    print(header)
    for name, r in results.items():
        lat = r["latencies"]
        row = {
            "ok": len(lat),
            "errors": len(r["errors"]),
            "requests_per_s": len(lat) / r["wall_s"] if r["wall_s"] else None,
            "p50_ms": percentile(lat, 0.5),
            "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat) if lat else float("nan"),
        }
        line = (
            f"{name:<8} {row['ok']:>4} {row['errors']:>4} {row['requests_per_s']:>6.2f} {row['p50_ms']:>8.0f} "
            f"{row['p99_ms']:>8.0f} {row['max_ms']:>8.0f}"
        )
        if not name.startswith("direct"):
            row.update(
                overhead_p50_ms=row["p50_ms"] - percentile(base, 0.5),
                overhead_p99_ms=row["p99_ms"] - percentile(base, 0.99),
                own_p50_ms=percentile(r["own_ms"], 0.5),
                own_p99_ms=percentile(r["own_ms"], 0.99),
                server_p50_ms=percentile(r["server_ms"], 0.5),
                server_p99_ms=percentile(r["server_ms"], 0.99),
                lost=len(r["missing"]),
                logged=r["logged"],
                judged=r["judged"],
                routed=r["routed"],
                guarded=r["guarded"],
                drain_s=r["drain_s"],
            )
            line += (
                f" {row['overhead_p50_ms']:>7.0f} {row['overhead_p99_ms']:>7.0f} {row['own_p50_ms']:>8.1f} "
                f"{row['own_p99_ms']:>8.1f} {row['server_p50_ms']:>8.1f} {row['server_p99_ms']:>8.1f} "
                f"{row['lost']:>5} {row['judged']:>4}/{row['logged']}"
            )
        print(line)
        if r["errors"]:
            print(f"  first errors: {r['errors'][:3]}")
        summary[name] = row
    print(
        "d p50/d p99: gateway minus direct at that percentile (both include queueing for the one model; direct "
        "pools both direct runs when there are two); own: the gateway's own time per request (client latency less "
        "time waiting for and running the model, from the log); srv: the part of it inside the server before the "
        "commit (auth, parsing, guard judging, prompt token count); lost: returned responses missing from the log; "
        "judged: judged/logged once the queue drained (includes one warm-up request)."
    )
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
