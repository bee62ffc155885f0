"""Connecting to the review database: URLs, engines tuned per backend, sessions and migrations.

SQLite is the embedded default (a file path or ``sqlite:///PATH``); PostgreSQL is used by URL
(``postgresql://user@host:port/db``, driven by psycopg 3). SQLite runs in WAL mode with
``synchronous=FULL``: a label is on disk once its request has answered, so a crash or a
restart loses no saved label.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from carealign.errors import ConfigError

#: Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30


def database_url(spec: str | Path) -> str:
    """Normalise a ``--db`` value: a URL is kept (``postgresql://`` gets the psycopg driver),
    anything else is taken as the path of a SQLite file."""
    text = str(spec).strip()
    if not text:
        raise ConfigError("--db: empty database URL")
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(f"--db: not a database URL: {text!r} ({exc})") from None
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"--db: unsupported database {backend!r}; use a SQLite path or a postgresql:// URL")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.close()


class SQLiteWriteLock:
    """One writer at a time inside this process, waiting in line instead of in SQLite's busy loop.

    SQLite allows one write transaction at a time; a connection that finds the database locked
    retries after sleeps of up to 100 ms (its busy handler), which under many concurrent requests
    gives long, unfair waits. This lock is taken before a connection's first INSERT, UPDATE or
    DELETE and released after its COMMIT or ROLLBACK, so writers of this process queue on a
    ``threading.Lock`` and SQLite never sees two of them. Other processes (a ``carealign review
    import`` next to the server) are still handled by SQLite's busy timeout.
    """

    def __init__(self, engine: Engine, timeout: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._timeout = timeout
        dialect = engine.dialect
        self._do_commit, self._do_rollback = dialect.do_commit, dialect.do_rollback
        dialect.do_commit = self._commit  # type: ignore[method-assign,assignment]
        dialect.do_rollback = self._rollback  # type: ignore[method-assign,assignment]
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.pool, "close", lambda dbapi_conn, _rec: self._release(dbapi_conn))
        event.listen(engine.pool, "invalidate", lambda dbapi_conn, _rec, _exc: self._release(dbapi_conn))

    @staticmethod
    def _key(conn: Any) -> int:
        return id(getattr(conn, "dbapi_connection", conn))

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        key = self._key(conn.connection)
        if self._holder == key or statement.lstrip()[:6].upper() not in ("INSERT", "UPDATE", "DELETE"):
            return
        if not self._lock.acquire(timeout=self._timeout):
            raise TimeoutError(f"no write access to the SQLite database within {self._timeout} s")
        self._holder = key

    def _release(self, conn: Any) -> None:
        if self._holder is not None and self._holder == self._key(conn):
            self._holder = None
            self._lock.release()

    def _commit(self, conn: Any) -> None:
        try:
            self._do_commit(conn)
        finally:
            self._release(conn)

    def _rollback(self, conn: Any) -> None:
        try:
            self._do_rollback(conn)
        finally:
            self._release(conn)


def make_engine(spec: str | Path) -> Engine:
    """An engine for a ``--db`` value (see :func:`database_url`)."""
    url = make_url(database_url(spec))
    if url.get_backend_name() == "sqlite":
        db = url.database or ""
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}}
        if db in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one shared connection, or every session sees another database
        else:
            parent = Path(db).parent
            if not parent.is_dir():
                raise ConfigError(f"--db: directory {parent} does not exist")
            kwargs.update(pool_size=20, max_overflow=40)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        SQLiteWriteLock(engine)
        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("PostgreSQL needs psycopg: pip install 'carealign[postgres]'") from None
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (pages render after saving)."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("carealign.review").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the schema forward to ``revision`` (creates it on an empty database)."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the schema back to ``revision`` (``base`` drops every table)."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this version of carealign."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(resources.files("carealign.review").joinpath("migrations")))
    head = script.get_current_head()
    assert head is not None
    return head


def open_database(spec: str | Path, *, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and a session factory for ``spec``; with ``migrate`` the schema is brought up to date.

    Without ``migrate``, a database whose schema is behind this version of carealign is an error
    naming the command that fixes it.
    """
    engine = make_engine(spec)
    if migrate:
        upgrade(engine)
    else:
        have = current_revision(engine)
        if have != head_revision():
            engine.dispose()
            raise ConfigError(
                f"review database {spec} is at schema revision {have or 'none'}, expected {head_revision()}; "
                "run `carealign review migrate --db ...`"
            )
    return engine, session_factory(engine)
