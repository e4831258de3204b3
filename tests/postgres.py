"""A real PostgreSQL server for tests: the distribution's own binaries, run as an unprivileged user, listening on
127.0.0.1 only (and on a Unix socket in its private directory), with a random password, stopped when the session ends.

PostgreSQL refuses to run as root, and CI runs tests as root: then initdb and the server run as the `postgres`
system user that Debian's package creates, else `nobody`. Nothing is installed: without the binaries the tests that
need them skip, saying what to install. Use `postgres_url` for a database per test (CREATE DATABASE with a unique
name, dropped afterwards), or `postgres_server` to make your own.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from ._processes import free_port

USER = "cds"
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 60
shared_buffers = 32MB
# A test server's data is thrown away: durability only costs time.
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def postgres_binaries() -> Path | None:
    """The newest Debian installation (/usr/lib/postgresql/N/bin), else initdb and pg_ctl on the PATH."""
    def version(bindir: str) -> int:
        found = re.search(r"/postgresql/(\d+)/bin$", bindir)
        return int(found.group(1)) if found else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for bindir in candidates:
        if all(os.access(Path(bindir, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(bindir)
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when already unprivileged; else the account to drop to."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and no unprivileged account (postgres, nobody) to run PostgreSQL as")


class PostgresServer:
    def __init__(self, bindir: Path, root: Path, account: pwd.struct_passwd | None):
        self.bindir, self.root, self.account = bindir, root, account
        self.data, self.log = root / "data", root / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.port: int | None = None

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        drop = {}
        if self.account is not None:
            drop = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "LC_ALL": "C", "TZ": "UTC"}
        return subprocess.run(
            command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, **drop
        )

    def _check(self, result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stdout}{result.stderr}\n{log}")

    def initdb(self) -> None:
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self.root.chmod(0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.account is not None:
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        result = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync",
        )
        pwfile.unlink()
        self._check(result, "initdb")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS.format(sockets=self.root))

    def start(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = free_port()  # another process may take it first: then try another
            result = self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}",
                "-w", "-t", "60", "start",
            )
            if result.returncode == 0:
                return
            if attempt == attempts - 1:
                self._check(result, "pg_ctl start")

    def stop(self) -> None:
        if self.port is not None:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg  # a dependency of the project; imported here so that a missing server skips first

        conninfo = f"host=127.0.0.1 port={self.port} user={USER} password={self.password} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, name: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    account = _unprivileged_user()
    # Under /tmp when dropping privileges: the account must be able to reach the directory (pytest's own temporary
    # directories are private to root).
    root = Path(tempfile.mkdtemp(prefix="cds-pg-", dir="/tmp" if account is not None else None))
    server = PostgresServer(bindir, root, account)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database for one test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
