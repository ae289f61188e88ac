"""Throwaway MariaDB and PostgreSQL servers for the SQL dump tests, as session-scoped fixtures.

Each server runs from a fresh data folder on a private Unix socket, with no TCP listener, and is
stopped and deleted at the end of the session; each test asks for a fresh database. Missing
programs are installed once with scripts/install_test_services.sh (a no-op when they are
there); where that cannot be done the fixtures skip with the script's reason, or fail when
HISTOSYNTH_REQUIRE_TEST_SERVICES=1 (CI sets it: there the servers must run). A server that is
installed but does not start always fails the tests.

Import the fixtures into a test module: ``from sql_servers import mariadb, postgresql``.
"""

from __future__ import annotations

import getpass
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = ROOT / "scripts" / "install_test_services.sh"
REQUIRED_ENV = "HISTOSYNTH_REQUIRE_TEST_SERVICES"
START_TIMEOUT_S = 60
# Server programs live outside a normal user's PATH on Debian (/usr/sbin, /usr/lib/postgresql/<v>/bin).
MARIADB_PROGRAMS = ("mariadb-install-db", "mariadbd", "mariadb")
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "psql")


def _postgres_bin_dirs() -> list[str]:
    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in Path(path).parent.name.split(".") if part.isdigit())

    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)


def find_program(name: str) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", *_postgres_bin_dirs()])
    return shutil.which(name, path=search)


@cache
def _install_script_output() -> str:
    """Run the installer once per session; its last line says what it did or why it could not."""
    if not INSTALL_SCRIPT.is_file():
        return f"{INSTALL_SCRIPT} is missing"
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1200)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else f"{INSTALL_SCRIPT.name} printed nothing (exit {done.returncode})"


def programs_or_skip(names: Sequence[str]) -> dict[str, str]:
    """The programs' paths, installing them if needed; skips the test with the reason otherwise."""
    found = {name: find_program(name) for name in names}
    if None in found.values():
        said = _install_script_output()
        found = {name: find_program(name) for name in names}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            reason = f"{', '.join(missing)} not found and not installable here: {said}"
            if os.environ.get(REQUIRED_ENV) == "1":
                pytest.fail(f"{reason} ({REQUIRED_ENV}=1)")
            pytest.skip(reason)
    return {name: str(path) for name, path in found.items()}


def run(command: Sequence[str], stdin: Path | None = None, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
        done = subprocess.run(list(command), stdin=source, capture_output=True, timeout=300,
                              env={**os.environ, **(env or {})})
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", "replace"),
                                         done.stderr.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _rows(output: str) -> list[tuple[str, ...]]:
    return [tuple(line.split("\t")) for line in output.splitlines() if line]


@dataclass
class Server:
    """A running server: ``client`` runs its command-line client; ``startup_s`` is how long it took to start."""

    kind: str
    client: list[str]
    startup_s: float
    _names: Iterator[int] = field(default_factory=itertools.count)

    def create_database(self) -> str:
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def database_args(self, database: str | None) -> list[str]:
        if database is None:
            return []
        return [database] if self.kind == "mariadb" else ["-d", database]

    def load(self, dump: Path, database: str, check: bool = True, options: Sequence[str] = (),
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Feed a dump file to the real client, as a user would."""
        if self.kind == "mariadb":
            return run([*self.client, *options, database], stdin=dump, check=check, env=env)
        return run([*self.client, *options, "-d", database, "-f", str(dump)], check=check, env=env)

    def execute(self, sql: str, database: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.client, *self.database_args(database), "-c" if self.kind == "postgresql" else "-e", sql],
                   check=check)

    def query(self, sql: str, database: str) -> list[tuple[str, ...]]:
        """Rows as tab-separated text (select hex-encoded values for arbitrary strings)."""
        return _rows(self.execute(sql, database).stdout)


def _wait_until_ready(probe: list[str], server: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if run(probe, check=False).returncode == 0:
            return
        if server is not None and server.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
    raise RuntimeError(f"{probe[0]}: server did not start; log {log}:\n{tail}")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Server]:
    programs = programs_or_skip(MARIADB_PROGRAMS)
    base = Path(tempfile.mkdtemp(prefix="histosynth-mariadb-"))
    user = getpass.getuser()  # mariadbd runs as root only when told so
    socket, log = base / "mariadb.sock", base / "error.log"
    started = time.perf_counter()
    run([programs["mariadb-install-db"], "--no-defaults", f"--datadir={base / 'data'}", f"--user={user}",
         "--auth-root-authentication-method=normal", "--skip-test-db"])
    server = subprocess.Popen(
        [programs["mariadbd"], "--no-defaults", f"--datadir={base / 'data'}", f"--socket={socket}",
         "--skip-networking", f"--user={user}", f"--pid-file={base / 'mariadb.pid'}", f"--log-error={log}",
         "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = [programs["mariadb"], "--no-defaults", f"--socket={socket}", "--user=root", "--batch",
              "--skip-column-names"]
    try:
        _wait_until_ready([*client, "-e", "SELECT 1"], server, log)
        yield Server("mariadb", client, time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql() -> Iterator[Server]:
    programs = programs_or_skip(POSTGRES_PROGRAMS)
    # Under /tmp itself, not pytest's private tmp folder: the server user must reach the socket folder.
    base = Path(tempfile.mkdtemp(prefix="histosynth-postgresql-"))
    as_server_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres system user
        shutil.chown(base, "postgres")
        as_server_user = [find_program("runuser") or "runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    started = time.perf_counter()
    run([*as_server_user, programs["initdb"], "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--no-locale", "--no-sync", "--no-instructions"])
    options = f"-k {base} -c listen_addresses= -p 5432 -c fsync=off -c synchronous_commit=off"
    run([*as_server_user, programs["pg_ctl"], "-D", str(data), "-o", options, "-l", str(log), "-w",
         "-t", str(START_TIMEOUT_S), "start"])
    client = [programs["psql"], "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", str(base),
              "-p", "5432", "-U", "postgres"]
    try:
        _wait_until_ready([*client, "-d", "postgres", "-c", "SELECT 1"], None, log)
        yield Server("postgresql", client, time.perf_counter() - started)
    finally:
        run([*as_server_user, programs["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(base, ignore_errors=True)
