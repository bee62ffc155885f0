"""``carealign gateway``: serve the policy behind an OpenAI-compatible API, manage its keys, export
its traffic for the next cycle, and print what it has seen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors

gateway_app = typer.Typer(
    name="gateway",
    help="Serve the assistant behind an OpenAI-compatible API; log, judge, guard and route every exchange.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="API keys of the gateway's clients.", no_args_is_help=True)
gateway_app.add_typer(keys_app, name="keys")
app.add_typer(gateway_app, name="gateway")

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="CAREALIGN_REVIEW_DB",
        help="Review database (the exchange log lives there): a SQLite file, sqlite:///PATH or postgresql://...",
    ),
]
DEFAULT_DB = "review.db"


def _open(db: str):  # type: ignore[no-untyped-def]
    from carealign.review.db import open_database

    return open_database(db)


@gateway_app.command("serve")
@user_errors
def serve_cmd(
    model: Annotated[
        str,
        typer.Option(help="Model spec (as carealign eval --model, incl. openai:MODEL@URL) or an alignment run dir."),
    ],
    db: DbOpt = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8100,
    mode: Annotated[str, typer.Option(help="monitor: judge after responding; guard: judge first, replace unsafe.")] = (
        "monitor"
    ),
    group: Annotated[str, typer.Option(help="Review group that gets flagged exchanges (a key's group wins).")] = (
        "clinicians"
    ),
    judge: Annotated[str, typer.Option(help="Judge spec (rules, classifier, llm, llm:MODEL, panel:...).")] = "rules",
    policy: Annotated[Path | None, typer.Option(help="Safety policy YAML for scores (default CARES' table).")] = None,
    served_name: Annotated[str, typer.Option(help="Model id clients ask for.")] = "carealign",
    guard_action: Annotated[str, typer.Option(help="Guard mode: decline | regenerate (with the safety reminder).")] = (
        "decline"
    ),
    guard_harm_level: Annotated[int, typer.Option(min=0, max=3, help="Guard from this estimated harm level.")] = 2,
    guard_verdicts: Annotated[str, typer.Option(help="Comma-separated verdicts guard mode replaces.")] = "Accept",
    decline_text: Annotated[str | None, typer.Option(help="The decline guard mode sends (with a referral).")] = None,
    redact: Annotated[bool, typer.Option(help="Redact e-mails, phone and record numbers before storing.")] = False,
    retention_days: Annotated[float | None, typer.Option(min=0.001, help="Delete exchanges older than this.")] = None,
    max_tokens_limit: Annotated[int, typer.Option(min=1, help="Largest max_tokens a client may ask for.")] = 1024,
    default_max_tokens: Annotated[int, typer.Option(min=1, help="max_tokens when a client sets none.")] = 256,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="Largest request body (413 above).")] = 1_000_000,
    dtype: Annotated[str, typer.Option(help="auto, bf16 or fp32.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    lease_seconds: Annotated[float, typer.Option(min=1, help="Judging claim lease (seconds).")] = 120.0,
    worker: Annotated[
        bool, typer.Option(help="Judge in this process; --no-worker leaves it to `carealign gateway work --follow`.")
    ] = True,
    judge_when_idle: Annotated[
        bool,
        typer.Option(help="Monitor mode: judge while no request is in flight (--no-judge-when-idle: at once)."),
    ] = True,
    judge_backlog: Annotated[int, typer.Option(min=1, help="Judge even under load from this many waiting.")] = 500,
    judge_max_delay: Annotated[
        float, typer.Option(min=0, help="Judge even under load once the oldest has waited this many seconds.")
    ] = 300.0,
) -> None:
    """Serve POST /v1/chat/completions and GET /v1/models. SIGHUP (or POST /admin/reload with an admin
    key) picks up a newly promoted policy of a run directory without a restart."""
    import signal
    import threading

    import uvicorn

    from carealign.errors import ConfigError
    from carealign.gateway.app import Gateway, create_app
    from carealign.gateway.settings import GatewaySettings, GuardRule

    try:
        rule = GuardRule(
            min_harm_level=guard_harm_level,
            verdicts=tuple(v.strip() for v in guard_verdicts.split(",") if v.strip()),
            action=guard_action,
            **({"decline_text": decline_text} if decline_text else {}),
        )
        settings = GatewaySettings(
            model=model,
            db=db,
            mode=mode,
            group=group,
            judge=judge,
            safety_policy=str(policy) if policy else None,
            served_name=served_name,
            max_body_bytes=max_body_bytes,
            max_tokens_limit=max_tokens_limit,
            default_max_tokens=default_max_tokens,
            redact=redact,
            retention_days=retention_days,
            guard=rule,
            dtype=dtype,
            device=device,
            lease_seconds=lease_seconds,
            worker=worker,
            judge_when_idle=judge_when_idle,
            judge_backlog=judge_backlog,
            judge_max_delay_s=judge_max_delay,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    gw = Gateway(settings)
    web = create_app(gw)

    def on_hup(_signum: int, _frame: object) -> None:
        threading.Thread(target=lambda: console.print(f"reload: {gw.reload()}"), daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
    console.print(
        f"carealign gateway on http://{host}:{port}/v1 ({mode} mode, model id {served_name!r}, serving "
        f"{gw.policy.identity}, log in {db}); kill -HUP {__import__('os').getpid()} reloads the policy"
    )
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


@gateway_app.command("work")
@user_errors
def work_cmd(
    db: DbOpt = DEFAULT_DB,
    judge: Annotated[str, typer.Option(help="Judge spec.")] = "rules",
    group: Annotated[str, typer.Option(help="Review group for flagged exchanges without one.")] = "clinicians",
    policy: Annotated[Path | None, typer.Option(help="Safety policy YAML for scores.")] = None,
    follow: Annotated[bool, typer.Option(help="Keep judging new exchanges until interrupted.")] = False,
    retention_days: Annotated[float | None, typer.Option(min=0.001, help="Delete exchanges older than this.")] = None,
    when_idle: Annotated[
        str | None,
        typer.Option(
            help="With --follow: judge only while the gateway at this health URL (http://HOST:PORT/health) has "
            "no request in flight, unless the backlog is overdue."
        ),
    ] = None,
    judge_backlog: Annotated[int, typer.Option(min=1, help="With --when-idle: judge anyway from this many.")] = 500,
    judge_max_delay: Annotated[
        float, typer.Option(min=0, help="With --when-idle: judge anyway once the oldest waited this long (s).")
    ] = 300.0,
) -> None:
    """Judge the exchanges waiting in the queue, then exit (e.g. after a crash, without serving); with
    --follow, keep judging in a process of its own next to `gateway serve --no-worker`."""
    import time

    from carealign.gateway.assess import Assessor
    from carealign.gateway.worker import HttpIdleGate, JudgingWorker, release_stale_claims

    engine, sessions = _open(db)
    release_stale_claims(sessions)
    assessor = Assessor(judge, safety_policy=str(policy) if policy else None)
    gate = HttpIdleGate(when_idle) if when_idle and follow else None
    worker = JudgingWorker(
        sessions,
        assessor,
        group=group,
        retention_days=retention_days,
        idle_gate=gate,
        max_backlog=judge_backlog,
        max_delay_s=judge_max_delay,
    )
    if not follow:
        n = worker.drain()
        engine.dispose()
        console.print(f"judged {n} exchanges, {worker.routed} sent to review")
        return
    console.print(f"judging the exchanges of {db} as they arrive (Ctrl-C stops)")
    worker.start()
    try:
        while True:
            time.sleep(1.0)
    finally:
        worker.stop()
        engine.dispose()
        console.print(f"judged {worker.judged} exchanges, {worker.routed} sent to review")


@keys_app.command("add")
@user_errors
def keys_add_cmd(
    name: Annotated[str, typer.Argument(help="Key name (letters, digits, _ . @ -).")],
    group: Annotated[str | None, typer.Option(help="Review group for this client's flagged exchanges.")] = None,
    rate_limit: Annotated[int, typer.Option(min=1, help="Requests per minute.")] = 60,
    admin: Annotated[bool, typer.Option(help="May call POST /admin/reload.")] = False,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Create an API key and print it once (only its SHA-256 is stored)."""
    from carealign.gateway.keys import create_key
    from carealign.review.audit import Actor, record

    engine, sessions = _open(db)
    with sessions() as s:
        row, secret = create_key(s, name, group=group, rate_per_minute=rate_limit, admin=admin)
        record(s, Actor.cli(), "gateway.key.create", target=f"key:{name}", new={"group": group, "admin": admin})
        s.commit()
    engine.dispose()
    console.print(f"added key {name} ({row.prefix}...); it is shown once:")
    typer.echo(secret)


@keys_app.command("list")
@user_errors
def keys_list_cmd(db: DbOpt = DEFAULT_DB) -> None:
    """List keys (names, prefixes, groups, limits; never the keys)."""
    from carealign.gateway.keys import list_keys

    engine, sessions = _open(db)
    table = Table("name", "prefix", "group", "per minute", "admin", "created", "revoked")
    with sessions() as s:
        for k in list_keys(s):
            table.add_row(
                k.name,
                k.prefix + "...",
                k.group_name or "",
                str(k.rate_per_minute),
                "yes" if k.admin else "",
                k.created_at.strftime("%Y-%m-%d %H:%M"),
                k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
            )
    engine.dispose()
    console.print(table)


@keys_app.command("revoke")
@user_errors
def keys_revoke_cmd(name: Annotated[str, typer.Argument(help="Key name.")], db: DbOpt = DEFAULT_DB) -> None:
    """Revoke a key (refused within seconds by running gateways)."""
    from carealign.gateway.keys import revoke_key
    from carealign.review.audit import Actor, record

    engine, sessions = _open(db)
    with sessions() as s:
        revoke_key(s, name)
        record(s, Actor.cli(), "gateway.key.revoke", target=f"key:{name}")
        s.commit()
    engine.dispose()
    console.print(f"revoked key {name}")


@gateway_app.command("export")
@user_errors
def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file of training prompts (written atomically).")],
    db: DbOpt = DEFAULT_DB,
    since: Annotated[str | None, typer.Option(help="Only exchanges from this date (YYYY-MM-DD) on.")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group's exchanges.")] = None,
) -> None:
    """Export logged prompts, deduplicated, with harm levels (a reviewer's, else estimated, origin recorded)."""
    from carealign.gateway.export import export_to_file
    from carealign.review.audit import Actor, record

    engine, sessions = _open(db)
    with sessions() as s:
        n = export_to_file(s, out, since=since, group=group)
        record(s, Actor.cli(), "gateway.export", target=f"file:{out}", new={"rows": n, "since": since, "group": group})
        s.commit()
    engine.dispose()
    console.print(f"wrote {n} prompts to {out}; use it as train_prompts: {{source: {out}}}")


@gateway_app.command("stats")
@user_errors
def stats_cmd(
    db: DbOpt = DEFAULT_DB,
    since: Annotated[str | None, typer.Option(help="From this date (YYYY-MM-DD).")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group's exchanges.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Traffic per day, verdicts by estimated harm level, flags, guard interventions, policies, latency."""
    from carealign.gateway.stats import VERDICTS, gateway_stats

    engine, sessions = _open(db)
    with sessions() as s:
        st = gateway_stats(s, since=since, group=group)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(st.to_dict(), indent=2))
        return
    console.print(
        f"{st.exchanges} exchanges, {st.judged} judged, {st.pending} waiting, {st.routed} sent to review; "
        f"latency p50 {st.latency_ms['p50']} ms p99 {st.latency_ms['p99']} ms; "
        f"overhead p50 {st.overhead_ms['p50']} ms p99 {st.overhead_ms['p99']} ms"
    )
    days = Table("day", "exchanges", "guard: decline", "guard: regenerate", title="Traffic per day")
    for d, n in st.per_day.items():
        g = st.guard_by_day.get(d, {})
        days.add_row(d, str(n), str(g.get("decline", 0)), str(g.get("regenerate", 0)))
    console.print(days)
    mix = Table("estimated harm level", *VERDICTS, title="Verdicts by estimated harm level")
    for lv, counts in st.verdicts_by_harm.items():
        mix.add_row(lv, *(str(counts.get(v, 0)) for v in VERDICTS))
    console.print(mix)
    if st.flags:
        console.print("flags: " + ", ".join(f"{f} {n}" for f, n in st.flags.items()))
    pol = Table("policy", "first", "last", "exchanges", title="Serving policy over time")
    for p in st.policies:
        pol.add_row(p["policy"], p["first"], p["last"], str(p["exchanges"]))
    console.print(pol)


@gateway_app.command("reload")
@user_errors
def reload_cmd(
    url: Annotated[str, typer.Option(help="The gateway's base URL.")] = "http://127.0.0.1:8100",
    key: Annotated[str, typer.Option(envvar="CAREALIGN_GATEWAY_KEY", help="An admin key.")] = "",
) -> None:
    """Ask a running gateway to pick up a newly promoted policy (same as kill -HUP PID)."""
    import httpx

    from carealign.errors import ConfigError

    resp = httpx.post(url.rstrip("/") + "/admin/reload", headers={"Authorization": f"Bearer {key}"}, timeout=600)
    if resp.status_code != 200:
        raise ConfigError(f"{url}: HTTP {resp.status_code}: {resp.text[:500]}")
    console.print(resp.json())
