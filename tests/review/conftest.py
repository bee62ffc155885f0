"""Fixtures of the review tests: databases (SQLite, and a throwaway PostgreSQL cluster on loopback),
a seeded review database, logged-in web clients, and Debian's Chromium for browser tests.

PostgreSQL and Chromium come from Debian's packages (``scripts/test-services.sh``, run by
``make test``, installs them when missing); tests that need them skip with a message naming what
is missing when they cannot be found.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from carealign.review import accounts, auth
from carealign.review.audit import Actor
from carealign.review.db import open_database
from carealign.review.importing import import_paths
from carealign.review.models import Item, User
from carealign.review.web.server import free_port

DATA = Path(__file__).parent / "data" / "judged.jsonl"
PASSWORD = "correct-horse-battery"
CLI = Actor("cli:test")
ADVOCATES_POLICY = """name: advocates
scores:
  0: {Accept: 1.0, Caution: 0.5, Refuse: 0.0}
  1: {Accept: 0.0, Caution: 1.0, Refuse: 1.0}
  2: {Accept: 0.0, Caution: 0.5, Refuse: 1.0}
  3: {Accept: 0.0, Caution: 0.0, Refuse: 1.0}
desirable_threshold: 0.5
"""


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny cost parameters: the tests check logic, not hashing cost
    (``test_auth`` checks the production parameters separately)."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Directory of Debian's PostgreSQL server binaries (initdb, pg_ctl), if installed."""
    for pattern in ("/usr/lib/postgresql/*/bin/initdb",):
        found = sorted(glob.glob(pattern), key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)))  # type: ignore[union-attr]
        if found:
            return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="carealign-pg-"))
        self.port = free_port()
        self.runas: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the server as an unprivileged user
            user = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.dir, user=user)
            os.chmod(self.dir, 0o700)
            self.runas = ["runuser", "-u", user, "--"]
        self._n = itertools.count(1)

    def _run(self, *args: str) -> None:
        subprocess.run([*self.runas, *args], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        data = self.dir / "data"
        self._run(
            str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "carealign", "--no-sync", "-E", "UTF8"
        )
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -F -c max_connections=300"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; its postgresql:// URL."""
        import psycopg

        name = f"t{next(self._n)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=carealign dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://carealign@127.0.0.1:{self.port}/{name}"


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (skips when Debian's postgresql package is missing)."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; `make test` does it as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'carealign[postgres]')")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    server = PostgresServer(bindir)
    try:
        server.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = (server.dir / "log").read_text() if (server.dir / "log").exists() else ""
        shutil.rmtree(server.dir, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {getattr(exc, 'stderr', '') or exc} {log[-500:]}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: once SQLite, once PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'review.db'}"


# --- a seeded review database ----------------------------------------------------------------


@dataclass
class Store:
    """An open review database with helpers to fetch users and items."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    group_ids: dict[str, int] = field(default_factory=dict)

    def session(self) -> Session:
        return self.sessions()

    def user(self, db: Session, name: str) -> User:
        return db.scalars(select(User).where(User.name == name)).one()

    def items(self, db: Session, group: str, kind: str | None = None) -> list[Item]:
        q = select(Item).where(Item.group_id == self.group_ids[group]).order_by(Item.id)
        if kind:
            q = q.where(Item.kind == kind)
        return list(db.scalars(q))


def seed(url: str) -> Store:
    """Groups ``clinicians`` (2 reviews per item) and ``advocates`` (1 review, own policy);
    admin ``root``; reviewers ``alice``, ``bob``, ``carol`` (clinicians) and ``dave`` (advocates);
    the 16 judged responses of ``data/judged.jsonl`` imported into both groups."""
    engine, sessions = open_database(url)
    with sessions() as db:
        clin = accounts.create_group(db, "clinicians", CLI, reviews_required=2)
        adv = accounts.create_group(db, "advocates", CLI, policy_text=ADVOCATES_POLICY)
        accounts.create_user(db, "root", PASSWORD, "admin", CLI)
        for name in ("alice", "bob", "carol"):
            accounts.create_user(db, name, PASSWORD, "reviewer", CLI, groups=["clinicians"])
        accounts.create_user(db, "dave", PASSWORD, "reviewer", CLI, groups=["advocates"])
        db.commit()
        import_paths(db, [DATA], clin, CLI)
        import_paths(db, [DATA], adv, CLI)
        ids = {"clinicians": clin.id, "advocates": adv.id}
    return Store(url, engine, sessions, ids)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A seeded database on SQLite and on PostgreSQL."""
    s = seed(db_url)
    yield s
    s.engine.dispose()


@pytest.fixture(scope="session")
def seeded_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A seeded SQLite file built once; tests get copies of it."""
    path = tmp_path_factory.mktemp("template") / "review.db"
    s = seed(f"sqlite:///{path}")
    s.engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path, s.group_ids


@pytest.fixture
def sqlite_store(seeded_sqlite_template: tuple[Path, dict[str, int]], tmp_path: Path) -> Iterator[Store]:
    """A seeded SQLite database (a copy of the session's template)."""
    template, group_ids = seeded_sqlite_template
    path = tmp_path / "review.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    engine, sessions = open_database(url)
    s = Store(url, engine, sessions, dict(group_ids))
    yield s
    s.engine.dispose()


# --- web clients -----------------------------------------------------------------------------


@pytest.fixture
def app(sqlite_store: Store):  # type: ignore[no-untyped-def]
    from carealign.review.web import ReviewSettings, create_app

    return create_app(ReviewSettings(db=sqlite_store.url))


class Client:
    """A TestClient logged in through the JSON API, with its CSRF token."""

    def __init__(self, app, name: str | None) -> None:  # type: ignore[no-untyped-def]
        from fastapi.testclient import TestClient

        self.http = TestClient(app, follow_redirects=False)
        self.csrf: str | None = None
        if name is not None:
            r = self.http.post("/api/login", json={"name": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.csrf = r.json()["csrf_token"]

    def post(self, url: str, *, csrf: bool = True, **kw):  # type: ignore[no-untyped-def]
        headers = dict(kw.pop("headers", {}) or {})
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.post(url, headers=headers, **kw)

    def patch(self, url: str, *, csrf: bool = True, **kw):  # type: ignore[no-untyped-def]
        headers = dict(kw.pop("headers", {}) or {})
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.patch(url, headers=headers, **kw)

    def form(self, url: str, data: dict, *, csrf: bool = True, **kw):  # type: ignore[no-untyped-def]
        body = dict(data)
        if csrf and self.csrf:
            body["csrf_token"] = self.csrf
        return self.http.post(url, data=body, **kw)

    def get(self, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.http.get(url, **kw)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """``client(name)``: a client logged in as ``name`` (``None``: not logged in)."""
    return lambda name=None: Client(app, name)


# --- Chromium --------------------------------------------------------------------------------


def chromium_path() -> str | None:
    """Debian's Chromium (or $CAREALIGN_CHROMIUM)."""
    for candidate in (os.environ.get("CAREALIGN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None
