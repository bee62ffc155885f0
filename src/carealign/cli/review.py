"""``carealign review``: the clinician review service and its administration from the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carealign.cli import app, console, user_errors
from carealign.errors import ConfigError

review_app = typer.Typer(
    name="review",
    help="Clinician review: a web app where stakeholders review, correct and compare responses.",
    no_args_is_help=True,
)
users_app = typer.Typer(help="Review users (reviewers and admins).", no_args_is_help=True)
groups_app = typer.Typer(help="Stakeholder groups: queues and safety policies.", no_args_is_help=True)
review_app.add_typer(users_app, name="users")
review_app.add_typer(groups_app, name="groups")
app.add_typer(review_app, name="review")

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="CAREALIGN_REVIEW_DB",
        help="Review database: a SQLite file (created if missing), sqlite:///PATH, or postgresql://USER@HOST:PORT/DB.",
    ),
]
DEFAULT_DB = "review.db"
PASSWORD_ENV = "CAREALIGN_REVIEW_PASSWORD"


def _open(db: str):  # type: ignore[no-untyped-def]
    from carealign.review.db import open_database

    return open_database(db)


def _password(stdin: bool, *, required: bool = True) -> str | None:
    """The password from stdin (first line), from $CAREALIGN_REVIEW_PASSWORD, or typed twice."""
    if stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ConfigError("--password-stdin: no password on standard input")
        return line
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not required:
        return None
    if not sys.stdin.isatty():
        raise ConfigError(f"no password: pass --password-stdin, set ${PASSWORD_ENV}, or run in a terminal")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@review_app.command("serve")
@user_errors
def serve_cmd(
    db: DbOpt = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (when served over HTTPS, e.g. behind a proxy).")
    ] = False,
    session_hours: Annotated[float, typer.Option(min=0.1, help="Login session lifetime in hours.")] = 12.0,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address or CIDR network of a reverse proxy whose X-Forwarded-For/-Proto to believe (repeat). "
            "Without it every client behind the proxy shares the proxy's address for login limits.",
        ),
    ] = None,
) -> None:
    """Serve the review web app (migrates the database forward first)."""
    from datetime import timedelta

    import uvicorn

    from carealign.review.web import ReviewSettings, create_app

    settings = ReviewSettings(
        db=db,
        secure_cookies=secure_cookies,
        session_lifetime=timedelta(hours=session_hours),
        trusted_proxies=tuple(trusted_proxy or ()),
    )
    web = create_app(settings)
    console.print(f"carealign review on http://{host}:{port}/ (database {db})")
    uvicorn.run(web, host=host, port=port, log_level="info", proxy_headers=False)


@review_app.command("migrate")
@user_errors
def migrate_cmd(db: DbOpt = DEFAULT_DB) -> None:
    """Create the review database or bring its schema up to date (Alembic migrations)."""
    from carealign.review.db import current_revision

    engine, _ = _open(db)
    console.print(f"review database {db} at schema revision {current_revision(engine)}")
    engine.dispose()


@users_app.command("add")
@user_errors
def users_add_cmd(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, _ . @ -).")],
    role: Annotated[str, typer.Option(help="reviewer | admin.")] = "reviewer",
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Group to join (repeat; created if missing).")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Add a user. The password is read from stdin, $CAREALIGN_REVIEW_PASSWORD, or typed twice."""
    from carealign.review import accounts
    from carealign.review.audit import Actor

    password = _password(password_stdin)
    assert password is not None
    engine, sessions = _open(db)
    actor = Actor.cli()
    with sessions() as s:
        for g in group or []:
            _, created = accounts.ensure_group(s, g, actor)
            if created:
                console.print(f"created group {g}")
        accounts.create_user(s, name, password, role, actor, groups=group or [])
        s.commit()
    engine.dispose()
    console.print(f"added {role} {name}" + (f" to {', '.join(group)}" if group else ""))


@users_app.command("set")
@user_errors
def users_set_cmd(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str | None, typer.Option(help="reviewer | admin.")] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Replace the user's groups (repeat).")
    ] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Allow or block logging in.")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read a new password from standard input.")] = False,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Change a user's role, groups, active flag or password."""
    from carealign.review import accounts
    from carealign.review.audit import Actor

    password = _password(password_stdin) if password_stdin else None
    engine, sessions = _open(db)
    with sessions() as s:
        accounts.update_user(s, name, Actor.cli(), role=role, groups=group, active=active, password=password)
        s.commit()
    engine.dispose()
    console.print(f"updated {name}")


@users_app.command("list")
@user_errors
def users_list_cmd(db: DbOpt = DEFAULT_DB) -> None:
    """List users with their role, groups and whether they may log in."""
    from carealign.review import accounts

    engine, sessions = _open(db)
    table = Table("name", "role", "groups", "active")
    with sessions() as s:
        for u in accounts.list_users(s):
            table.add_row(u.name, u.role, ", ".join(g.name for g in u.groups), "yes" if u.active else "no")
    engine.dispose()
    console.print(table)


def _read_policy(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc.strerror})") from None


@groups_app.command("add")
@user_errors
def groups_add_cmd(
    name: Annotated[str, typer.Argument(help="Group name.")],
    reviews: Annotated[
        int, typer.Option(min=1, max=2, help="Reviews each item needs (2: disagreements are adjudicated).")
    ] = 1,
    policy: Annotated[Path | None, typer.Option(help="The group's safety policy YAML (default CARES' table).")] = None,
    blind: Annotated[
        bool, typer.Option(help="Blind review: judges' verdicts hidden from a reviewer until they have decided.")
    ] = False,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Add a stakeholder group."""
    from carealign.review import accounts
    from carealign.review.audit import Actor

    text = _read_policy(policy)
    engine, sessions = _open(db)
    with sessions() as s:
        accounts.create_group(s, name, Actor.cli(), reviews_required=reviews, policy_text=text, blind=blind)
        s.commit()
    engine.dispose()
    console.print(f"added group {name}")


@groups_app.command("set")
@user_errors
def groups_set_cmd(
    name: Annotated[str, typer.Argument(help="Group name.")],
    reviews: Annotated[int | None, typer.Option(min=1, max=2, help="Reviews each new item needs.")] = None,
    policy: Annotated[Path | None, typer.Option(help="A safety policy YAML for the group.")] = None,
    clear_policy: Annotated[bool, typer.Option(help="Go back to CARES' table.")] = False,
    blind: Annotated[
        bool | None, typer.Option("--blind/--no-blind", help="Turn blind review on or off (default: unchanged).")
    ] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Change a group's reviews required, blind review or safety policy."""
    from carealign.review import accounts
    from carealign.review.audit import Actor

    text = _read_policy(policy)
    engine, sessions = _open(db)
    with sessions() as s:
        accounts.update_group(
            s, name, Actor.cli(), reviews_required=reviews, policy_text=text, clear_policy=clear_policy, blind=blind
        )
        s.commit()
    engine.dispose()
    console.print(f"updated group {name}")


@groups_app.command("list")
@user_errors
def groups_list_cmd(db: DbOpt = DEFAULT_DB) -> None:
    """List groups with their members, reviews required and policy."""
    from carealign.review import accounts
    from carealign.review.policies import group_policy

    engine, sessions = _open(db)
    table = Table("name", "reviews", "blind", "policy", "members")
    with sessions() as s:
        for g in accounts.list_groups(s):
            members = ", ".join(u.name for u in g.members)
            table.add_row(g.name, str(g.reviews_required), "yes" if g.blind else "no", group_policy(g).name, members)
    engine.dispose()
    console.print(table)


@review_app.command("import")
@user_errors
def import_cmd(
    sources: Annotated[
        list[Path], typer.Argument(help="Eval run directories, alignment run directories or JSONL files.")
    ],
    group: Annotated[
        str, typer.Option("--group", "-g", help="Queue to add the items to (created if missing).")
    ] = "default",
    reviews: Annotated[int | None, typer.Option(min=1, max=2, help="Reviews per item (default: the group's).")] = None,
    pairs: Annotated[
        bool, typer.Option(help="Also queue pairwise comparisons of responses to the same prompt.")
    ] = True,
    max_pairs_per_prompt: Annotated[int, typer.Option(min=0, help="Pair items per prompt.")] = 1,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Import judged responses into a group's review queue (idempotent: re-importing adds nothing new)."""
    from carealign.review import accounts
    from carealign.review.audit import Actor
    from carealign.review.importing import import_paths

    engine, sessions = _open(db)
    actor = Actor.cli()
    with sessions() as s:
        g, created = accounts.ensure_group(s, group, actor)
        if created:
            console.print(f"created group {group}")
        report = import_paths(
            s, list(sources), g, actor, reviews_required=reviews, pairs=pairs, max_pairs_per_prompt=max_pairs_per_prompt
        )
    engine.dispose()
    console.print(f"imported into {group}: {report.summary()}")


@review_app.command("export")
@user_errors
def export_cmd(
    kind: Annotated[str, typer.Option(help="labels | dpo | kto | judge | audit.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write (atomically).")],
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group's decisions.")] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Export human labels, DPO pairs, KTO examples, judge-training rows or the audit log as JSONL."""
    from carealign.review.audit import Actor, record
    from carealign.review.exports import export_to_file

    engine, sessions = _open(db)
    with sessions() as s:
        n = export_to_file(s, kind, out, group)
        record(
            s,
            Actor.cli(),
            "export",
            target=f"export:{kind}",
            new={"kind": kind, "group": group, "rows": n, "out": str(out)},
        )
        s.commit()
    engine.dispose()
    console.print(f"wrote {n} {kind} rows to {out}")
    if n == 0:
        from carealign.review.exports import empty_export_message

        console.print(empty_export_message(kind, group))
