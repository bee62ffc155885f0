"""Load test of the gateway: concurrent clients against ``carealign gateway serve`` vs the same backend called directly.

Phases, one after another on the same machine, each against a fresh server process:

1. **direct**: the baseline, "the same backend called directly": the same model behind the same
   kind of HTTP server (uvicorn + FastAPI, one hop to a worker thread, the policy's one dedicated
   model thread, the gateway's request schema and response body:
   :func:`carealign.gateway.bare.create_bare_app`), without keys, logging, judging or guarding;
2. **monitor** / **guard**: ``carealign gateway serve`` with a fresh SQLite log; **monitor-now** is
   monitor mode judging at once instead of when the model is idle (``--no-judge-when-idle``);
   **monitor-apart** is ``serve --no-worker`` (no estimator or judge in the serving process) with
   ``nice -n 19 carealign gateway work --follow --when-idle URL`` judging while the gateway is idle.

Every phase sends the same ``--requests`` prompts with ``--clients`` threads of the ``openai``
client (greedy, ``--max-tokens`` each). For each phase it prints p50/p99/max latency, requests per
second and errors; for the gateway phases the difference to the direct phase at p50 and p99, and for
all phases the server's own time per request: the client's latency less the time spent waiting for
and running the model (from the exchange log for the gateway, from the ``x-model-ms`` header for the
direct server); and a count check: every response a client received must be in the exchange log
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

#: The gateway phases: monitor mode (judging when the model is idle), monitor mode judging at once,
#: monitor mode with ``serve --no-worker`` and ``nice -n 19 carealign gateway work --follow --when-idle``, guard mode.
GATEWAY_PHASES = ("monitor", "monitor-now", "monitor-apart", "guard")


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
    """Send every prompt of ``work`` with ``n_clients`` threads; latencies, ids, errors, wall time.

    ``send`` returns (response id, model milliseconds or None)."""
    latencies: list[float] = []
    ids: list[str] = []
    by_id: dict[str, float] = {}
    own: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(prompt: str) -> None:
        t0 = time.perf_counter()
        try:
            rid, model_ms = send(prompt)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        dt = (time.perf_counter() - t0) * 1000
        with lock:
            latencies.append(dt)
            ids.append(rid)
            by_id[rid] = dt
            if model_ms is not None:
                own.append(dt - model_ms)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_clients) as pool:
        list(pool.map(one, work))
    wall = time.perf_counter() - start
    return {
        "latencies": latencies,
        "ids": ids,
        "by_id": by_id,
        "own_ms": own,
        "errors": errors,
        "wall_s": wall,
        "load": (load_before, os.getloadavg()[0]),
    }


def start_server(cmd: list[str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server process and wait until its /health answers."""
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{cmd[:6]} did not start: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def openai_sender(base: str, key: str, max_tokens: int) -> Any:
    """A ``send(prompt)`` for :func:`run_clients`, warmed up with one request first."""
    import openai

    from carealign.gateway.bare import MODEL_MS_HEADER

    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=600)

    def send(prompt: str) -> tuple[str, float | None]:
        raw = client.chat.completions.with_raw_response.create(
            model="carealign", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens
        )
        model_ms = raw.headers.get(MODEL_MS_HEADER)
        return raw.parse().id, float(model_ms) if model_ms is not None else None

    send("warm up")
    return send


def direct_phase(model: str, work: list[str], clients: int, max_tokens: int, tmp: Path) -> dict[str, Any]:
    """The same model behind the bare endpoint (same server, same model thread; no gateway work)."""
    from carealign.review.web.server import free_port

    port = free_port()
    cmd = [sys.executable, __file__, "--serve-bare", "--model", model, "--port", str(port)]
    cmd += ["--max-tokens", str(max_tokens)]
    proc = start_server(cmd, port, tmp / "direct.log")
    try:
        send = openai_sender(f"http://127.0.0.1:{port}", "none", max_tokens)
        return run_clients(clients, work, send)
    finally:
        stop_server(proc)


def serve_bare(model: str, port: int, max_tokens: int) -> None:
    """Run the bare endpoint (the direct phase's server process)."""
    import uvicorn

    from carealign.gateway.bare import create_bare_app
    from carealign.gateway.serving import ServedPolicy

    app = create_bare_app(ServedPolicy(model), default_max_tokens=max_tokens)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_drained(sessions: Any, timeout: float) -> float:
    """Wait until the judging queue is empty (or ``timeout`` seconds); the seconds waited."""
    from sqlalchemy import func, select

    from carealign.gateway.models import JudgeTask

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with sessions() as s:
            if not s.scalar(select(func.count()).select_from(JudgeTask)):
                break
        time.sleep(0.5)
    return time.perf_counter() - start


def gateway_phase(
    model: str, mode: str, work: list[str], clients: int, max_tokens: int, judge: str, tmp: Path
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from carealign.gateway.keys import create_key
    from carealign.gateway.models import Exchange
    from carealign.review.db import open_database
    from carealign.review.web.server import free_port

    db = tmp / f"{mode}.db"
    engine, sessions = open_database(db)
    with sessions() as s:
        _, key = create_key(s, "bench", rate_per_minute=1_000_000)
        s.commit()
    port = free_port()
    cmd = [sys.executable, "-m", "carealign", "gateway", "serve", "--model", model, "--db", str(db)]
    cmd += ["--port", str(port), "--mode", mode.split("-")[0], "--judge", judge]
    cmd += ["--default-max-tokens", str(max_tokens)]
    judge_proc = None
    if mode == "monitor-now":
        cmd.append("--no-judge-when-idle")
    elif mode == "monitor-apart":  # judging in a process of its own, at the lowest CPU priority
        cmd.append("--no-worker")
        judge_cmd = ["nice", "-n", "19", sys.executable, "-m", "carealign", "gateway", "work", "--follow"]
        judge_cmd += ["--db", str(db), "--judge", judge, "--when-idle", f"http://127.0.0.1:{port}/health"]
        judge_proc = subprocess.Popen(judge_cmd, stdout=(tmp / "work.log").open("wb"), stderr=subprocess.STDOUT)
    proc = start_server(cmd, port, tmp / f"{mode}.log")
    try:
        send = openai_sender(f"http://127.0.0.1:{port}", key, max_tokens)
        wait_drained(sessions, 120)  # the warm-up exchange judged: the load starts on an idle gateway
        out = run_clients(clients, work, send)
        # the gateway's own time per request: client latency less model time (waiting for and running it)
        with sessions() as s:
            rows = {e.request_id: e for e in s.scalars(select(Exchange))}
        out["missing"] = [i for i in out["ids"] if i not in rows]
        out["backend_ms"] = [rows[i].generation_ms for i in out["ids"] if i in rows]
        out["own_ms"] = [out["by_id"][i] - rows[i].generation_ms for i in out["ids"] if i in rows]
        out["server_ms"] = [rows[i].latency_ms - rows[i].generation_ms for i in out["ids"] if i in rows]
        out["guarded"] = sum(1 for i in out["ids"] if i in rows and rows[i].guard_action != "none")
        with sessions() as s:
            out["judged_during"] = s.scalar(
                select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_not(None))
            )
        out["drain_s"] = wait_drained(sessions, 300)
        with sessions() as s:
            out["judged"] = s.scalar(select(func.count()).select_from(Exchange).where(Exchange.judged_at.is_not(None)))
            out["logged"] = s.scalar(select(func.count()).select_from(Exchange))
            out["routed"] = s.scalar(
                select(func.count()).select_from(Exchange).where(Exchange.review_item_id.is_not(None))
            )
    finally:
        stop_server(proc)
        if judge_proc is not None:
            stop_server(judge_proc)
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=80, help="Requests per phase.")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--modes", default="monitor,guard", help=f"Gateway phases: {', '.join(GATEWAY_PHASES)}.")
    ap.add_argument("--judge", default="rules")
    ap.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON.")
    ap.add_argument(
        "--direct-again", action="store_true", help="Run the direct phase again at the end; compare with both."
    )
    ap.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)  # the direct phase's server
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.serve_bare:
        serve_bare(args.model, args.port, args.max_tokens)
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in GATEWAY_PHASES]
    if unknown:
        ap.error(f"--modes: unknown phase(s) {', '.join(unknown)}; expected {', '.join(GATEWAY_PHASES)}")
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
            f"p50 {percentile(lat, 0.5):.0f} ms, p99 {percentile(lat, 0.99):.0f} ms, own p50 "
            f"{percentile(r['own_ms'], 0.5):.1f} ms, own p99 {percentile(r['own_ms'], 0.99):.1f} ms; "
            f"load average {r['load'][0]:.2f} -> {r['load'][1]:.2f}"
            + (f"; judged by the end of the load {r['judged_during']}" if "judged_during" in r else ""),
            flush=True,
        )

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        results["direct"] = direct_phase(args.model, work, args.clients, args.max_tokens, Path(tmp))
        brief("direct", results["direct"])
        for mode in modes:
            results[mode] = gateway_phase(args.model, mode, work, args.clients, args.max_tokens, args.judge, Path(tmp))
            brief(mode, results[mode])
        if args.direct_again:  # the baseline once more, to see how far the machine drifted during the run
            results["direct2"] = direct_phase(args.model, work, args.clients, args.max_tokens, Path(tmp))
            brief("direct2", results["direct2"])
    base = results["direct"]["latencies"] + results.get("direct2", {}).get("latencies", [])
    base_own = results["direct"]["own_ms"] + results.get("direct2", {}).get("own_ms", [])
    summary: dict[str, Any] = {"cpu": cpu_name(), "args": {k: str(v) for k, v in vars(args).items()}}
    header = f"{'phase':<11} {'ok':>4} {'err':>4} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    header += f" {'d p50':>7} {'d p99':>7} {'own p50':>8} {'own p99':>8} {'d own50':>8} {'d own99':>8}"
    header += f" {'srv p50':>8} {'srv p99':>8} {'lost':>5} {'judged':>7} {'load':>11}"
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
            "own_p50_ms": percentile(r["own_ms"], 0.5),
            "own_p99_ms": percentile(r["own_ms"], 0.99),
            "load_average": r["load"],
        }
        line = (
            f"{name:<11} {row['ok']:>4} {row['errors']:>4} {row['requests_per_s']:>6.2f} {row['p50_ms']:>8.0f} "
            f"{row['p99_ms']:>8.0f} {row['max_ms']:>8.0f}"
        )
        if name.startswith("direct"):
            line += f" {'':>7} {'':>7} {row['own_p50_ms']:>8.1f} {row['own_p99_ms']:>8.1f}" + " " * 42
        else:
            row.update(
                overhead_p50_ms=row["p50_ms"] - percentile(base, 0.5),
                overhead_p99_ms=row["p99_ms"] - percentile(base, 0.99),
                own_overhead_p50_ms=row["own_p50_ms"] - percentile(base_own, 0.5),
                own_overhead_p99_ms=row["own_p99_ms"] - percentile(base_own, 0.99),
                server_p50_ms=percentile(r["server_ms"], 0.5),
                server_p99_ms=percentile(r["server_ms"], 0.99),
                lost=len(r["missing"]),
                logged=r["logged"],
                judged=r["judged"],
                judged_during_load=r["judged_during"],
                routed=r["routed"],
                guarded=r["guarded"],
                drain_s=r["drain_s"],
            )
            line += (
                f" {row['overhead_p50_ms']:>7.0f} {row['overhead_p99_ms']:>7.0f} {row['own_p50_ms']:>8.1f} "
                f"{row['own_p99_ms']:>8.1f} {row['own_overhead_p50_ms']:>8.1f} {row['own_overhead_p99_ms']:>8.1f} "
                f"{row['server_p50_ms']:>8.1f} {row['server_p99_ms']:>8.1f} {row['lost']:>5} "
                f"{row['judged']:>3}/{row['logged']:<3}"
            )
        line += f" {r['load'][0]:>5.2f}-{r['load'][1]:<5.2f}"
        print(line)
        if r["errors"]:
            print(f"  first errors: {r['errors'][:3]}")
        summary[name] = row
    print(
        "d p50/d p99: gateway minus direct at that percentile (both include queueing for the one model; direct "
        "pools both direct runs when there are two); own: the server's own time per request (client latency less "
        "time waiting for and running the model: from the log for the gateway, from x-model-ms for direct); "
        "d own: gateway own minus direct own at that percentile; srv: the part of the gateway's own time inside "
        "the server before the commit (auth, parsing, guard judging); lost: returned responses missing from the "
        "log; judged: judged/logged once the queue drained (includes one warm-up request); load: 1-minute load "
        "average at the start and end of the phase."
    )
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
