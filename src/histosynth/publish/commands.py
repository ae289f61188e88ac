"""git and DVC commands run for publishing, with their failures turned into readable errors.

DVC is run as ``python -m dvc`` from this interpreter, so the DVC that publishes is the one
installed beside histosynth, whatever ``dvc`` is first on PATH.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from histosynth.errors import HistosynthError
from histosynth.publish.remote_errors import push_failure

log = logging.getLogger(__name__)

TAIL_BYTES = 1 << 16  # of DVC's error output kept to explain a failed push


class CommandFailed(HistosynthError):
    """A git or DVC command exited non-zero."""


def run(root: Path, *args: str, what: str) -> str:
    """Run a command in ``root``; its stdout, or CommandFailed naming ``what`` failed and why."""
    log.debug("running %s", " ".join(args))
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}")
        raise CommandFailed(f"{what} failed ({' '.join(args[:3])} ...): {detail}")
    return proc.stdout


def git(root: Path, *args: str, what: str) -> str:
    return run(root, "git", *args, what=what)


def dvc(root: Path, *args: str, what: str) -> str:
    return run(root, sys.executable, "-m", "dvc", *args, what=what)


def dvc_streaming(root: Path, *args: str, what: str) -> None:
    """A DVC command whose progress the user should see (``dvc repro``)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root)
    if proc.returncode != 0:
        raise CommandFailed(f"{what} failed (dvc {' '.join(args)}, exit status {proc.returncode}); "
                            "see its output above")


def head_commit(root: Path) -> str:
    """The commit HEAD names; "" in a repository without commits."""
    proc = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def dvc_push(root: Path, remote: str) -> None:
    """``dvc push``, its output shown as it comes (progress bars too on a terminal); a failure is
    one CommandFailed saying why (:func:`histosynth.publish.remote_errors.push_failure`)."""
    env = dict(os.environ)
    if sys.stderr.isatty():
        env["DVC_IGNORE_ISATTY"] = "true"  # DVC draws its bars although its stderr is our pipe
    with subprocess.Popen([sys.executable, "-m", "dvc", "push"], cwd=root, env=env, stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        tail = _tee(proc.stderr.fileno(), keep=TAIL_BYTES)
        status = proc.wait()
    if status != 0:
        raise CommandFailed(push_failure(remote, tail.decode("utf-8", "replace"), status))


def _tee(fd: int, keep: int) -> bytes:
    """Copy ``fd`` to our stderr until it ends; the last ``keep`` bytes."""
    out = getattr(sys.stderr, "buffer", None)
    tail = b""
    while chunk := os.read(fd, 1 << 14):
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            sys.stderr.write(chunk.decode("utf-8", "replace"))
        tail = (tail + chunk)[-keep:]
    return tail


def tag_exists(root: Path, tag: str) -> bool:
    return subprocess.run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], cwd=root,
                          capture_output=True).returncode == 0


def changed_tracked_files(root: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not)."""
    out = git(root, "status", "--porcelain", "--untracked-files=no", what="reading git status")
    return [line[3:] for line in out.splitlines() if line.strip()]


def untracked_files(root: Path, paths: list[str]) -> list[str]:
    """Files under ``paths`` that git does not track and does not ignore (a release would leave them out)."""
    out = git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths,
              what="reading git status")
    return sorted(entry[3:] for entry in out.split("\0") if entry.startswith("?? "))


def valid_tag_name(root: Path, tag: str) -> bool:
    return subprocess.run(["git", "check-ref-format", f"refs/tags/{tag}"], cwd=root,
                          capture_output=True).returncode == 0


def not_on_remote(root: Path) -> dict[str, str]:
    """``{output: state}`` of every DVC-tracked output the default remote lacks (``dvc status --cloud``);
    {} when the remote holds everything the workspace's dvc.lock names."""
    out = dvc(root, "status", "--cloud", "--json", what="checking the DVC remote")
    status = json.loads(out.strip() or "{}")
    return status if isinstance(status, dict) else {"?": str(status)}


def default_remote(root: Path) -> str | None:
    """``name (url)`` of the default DVC remote, or None when none is configured."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "config", "--list"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    # "key=value" lines, level by level (system, global, project, local): a later level overrides.
    # (Not `dvc remote list`: it wraps a long URL at 80 columns.)
    settings = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    name = settings.get("core.remote", "").strip()
    return f"{name} ({settings.get(f'remote.{name}.url', '?').strip()})" if name else None
