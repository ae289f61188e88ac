"""Why a ``dvc push`` failed, in one line a user can act on.

DVC reports a failed push as ``ERROR: ...`` lines whose wording comes from the remote's
library (asyncssh for SSH, the OS for a local folder). The causes a publisher meets most are
told apart here: the server refused the login, the host cannot be reached, the remote has no
room (a local or NFS folder says ``No space left on device``; over SFTP the server can only
say ``Failure``, which a full disk or quota causes, as does a read-only or failing disk), or
the remote path cannot be written. Anything else is passed on as DVC said it.
"""

from __future__ import annotations

import re

ERROR_LINE = re.compile(r"^ERROR: (?:unexpected error - )?(.+)$", re.MULTILINE)
FAILED_TRANSFER = re.compile(r"^ERROR: failed to transfer '[^']*' - (.+)$", re.MULTILINE)
FAILED_COUNT = re.compile(r"(\d+) files? failed to upload")
# (pattern in DVC's output, what it means, what to do); the first match wins.
CAUSES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"Permission denied for user|Authentication failed|PermissionDenied|Too many authentication"),
     "the server refused the login",
     "check the user name and key for that host (~/.ssh/config, or `dvc remote modify --local <remote> user|keyfile`)"),
    (re.compile(r"Name or service not known|nodename nor servname|Temporary failure in name resolution|"
                r"No address associated with hostname"),
     "the host name is unknown",
     "check the host in the remote's URL (`dvc remote list`) and your DNS or ~/.ssh/config"),
    (re.compile(r"Connect call failed|Connection refused|No route to host|Network is unreachable|"
                r"timed out|TimeoutError|Connection reset|Connection lost"),
     "the host cannot be reached",
     "check that the server is up and that the port and network path to it are open "
     "(`ssh <host>` from this machine)"),
    (re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|EDQUOT"),
     "the remote is full (no space left, or over its quota)",
     "free space there or raise the quota, or push to another remote"),
    (re.compile(r"^Failure$"),
     "the server could not write the files (SFTP says only \"Failure\": a full disk or quota, else a read-only "
     "or failing disk)",
     "check free space and quota there (`df -h <remote path>` on the server), or push to another remote"),
    (re.compile(r"Permission denied|Read-only file system|Operation not permitted"),
     "the remote path cannot be written",
     "check the remote's path and its permissions (`dvc remote list`)"),
    (re.compile(r"No such file or directory|No such file"),
     "the remote path does not exist and cannot be made",
     "check the path in the remote's URL (`dvc remote list`)"),
)


def push_failure(remote: str, output: str, status: int) -> str:
    """One line: which remote (``name (url)``), why the push failed (from DVC's ``output``) and what to do."""
    transfers = FAILED_TRANSFER.findall(output)
    errors = [_once(line.strip()) for line in ERROR_LINE.findall(output)]
    if transfers:
        counted = FAILED_COUNT.findall(output)
        said = f"{counted[-1] if counted else len(transfers)} file(s) not stored: {transfers[-1].strip()}"
    else:
        said = errors[-1] if errors else f"dvc push exit status {status}"
    reasons = [transfers[-1].strip()] if transfers else errors
    found = next(((cause, fix) for pattern, cause, fix in CAUSES if any(map(pattern.search, reasons))), None)
    what = f": {found[0]} ({said}); {found[1]}" if found else f" ({said}); see DVC's output above"
    return (f"pushing the data to the DVC remote {remote} failed{what.replace('<remote>', remote.split(' ')[0])}. "
            "Nothing was tagged: rerun `histosynth publish` once fixed")


def _once(text: str) -> str:
    """asyncssh's "<message>: <message>" said once."""
    head, _, tail = text.partition(": ")
    return head if head == tail else text
