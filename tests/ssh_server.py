"""A throwaway OpenSSH server on a free localhost port, as a session-scoped fixture.

The server (Debian's ``openssh-server``, installed by scripts/install_test_services.sh like the
SQL servers of tests/sql_servers.py) runs from a temporary folder: its own host key, config,
log and ``authorized_keys`` holding a throwaway user key; public-key login only, for the user
running the tests. Clients find it through ``home``: point HOME there and ``~/.ssh/config``
names the server ``ALIAS`` (with the right key) and ``WRONG_KEY_ALIAS`` (the same server, a key
it does not accept), the way a lab configures its data server.

Running as root (this sandbox, many CI containers) needs two things a normal user does not:
``PermitRootLogin prohibit-password`` and OpenSSH's privilege separation folder ``/run/sshd``.
Where root may create a mount namespace, sshd runs in a private one that mounts a temporary
folder over ``/run`` (so nothing outside changes) and a 16 KiB tmpfs at ``full_dir``: a remote
that is really full, seen by the server only. Without a namespace, ``/run/sshd`` is created if
missing (what Debian's ssh service does at boot) and ``full_dir`` is None. ``StrictModes`` is
off: the key files live in a temporary folder that sshd's ownership checks would refuse.

Missing programs skip the tests with the install script's reason, or fail them with
HISTOSYNTH_REQUIRE_TEST_SERVICES=1 (CI); a server that is installed but does not start fails.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sql_servers import START_TIMEOUT_S, find_program, programs_or_skip

ALIAS = "histosynth-test-sshd"
WRONG_KEY_ALIAS = "histosynth-test-sshd-wrong-key"
FULL_SIZE = "16k"


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    home: Path  # a HOME for clients: .ssh/config names the server ALIAS and WRONG_KEY_ALIAS
    full_dir: Path | None  # on a 16 KiB tmpfs that only the server sees; None where it cannot be mounted
    log: Path

    def url(self, path: Path, alias: str = ALIAS) -> str:
        return f"ssh://{alias}{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(program: str, path: Path) -> Path:
    subprocess.run([program, "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True,
                   capture_output=True, timeout=60)
    return path


def _write_configs(base: Path, port: int, user: str, keygen: str) -> Path:
    host_key, user_key, wrong_key = (_keygen(keygen, base / name) for name in ("host_key", "user_key", "wrong_key"))
    (base / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    (base / "sshd_config").write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", f"HostKey {host_key}", f"PidFile {base / 'sshd.pid'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", f"AllowUsers {user}",
        "AuthenticationMethods publickey", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE", ""]))
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    host_public = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
    (home / ".ssh" / "config").write_text("".join(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n" for alias, key in ((ALIAS, user_key),
                                                                                 (WRONG_KEY_ALIAS, wrong_key))))
    return home


def _namespace_works(unshare: str | None, probe: Path) -> bool:
    """Whether this process may mount in a private mount namespace (root with CAP_SYS_ADMIN)."""
    if unshare is None or os.geteuid() != 0:
        return False
    probe.mkdir()
    done = subprocess.run([unshare, "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=4k",
                           "histosynth-probe", str(probe)], capture_output=True, timeout=60)
    return done.returncode == 0


def _server_command(sshd: str, base: Path, full_dir: Path | None) -> list[str]:
    command = [sshd, "-D", "-e", "-f", str(base / "sshd_config")]
    if full_dir is None:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        return command
    run_dir = base / "run"
    run_dir.mkdir()
    full_dir.mkdir()
    script = (f'mount --bind "{run_dir}" /run && mkdir -m 755 /run/sshd && '
              f'mount -t tmpfs -o size={FULL_SIZE},mode=755 histosynth-full "{full_dir}" && exec "$@"')
    return [find_program("unshare") or "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            "sshd", *command]


def _wait_for_banner(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
    raise RuntimeError(f"sshd did not start on port {port}; log {log}:\n{tail}")


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SSHServer]:
    programs = programs_or_skip(("sshd", "ssh-keygen"))
    base = Path(tempfile.mkdtemp(prefix="histosynth-sshd-"))
    user = getpass.getuser()
    port = free_port()
    home = _write_configs(base, port, user, programs["ssh-keygen"])
    full_dir = base / "full" if _namespace_works(find_program("unshare"), base / "probe") else None
    log = base / "sshd.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(_server_command(programs["sshd"], base, full_dir), stdin=subprocess.DEVNULL,
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_for_banner(port, server, log)
        yield SSHServer(port, user, home, full_dir, log)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)
