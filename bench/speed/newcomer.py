"""The first ten minutes of a new user: `make repro` and `make test` in a fresh clone, timed.

    python3 bench/speed/newcomer.py                 # make repro, a no-op make repro, then make test (each clone fresh)
    python3 bench/speed/newcomer.py --force         # make repro REPRO_ARGS=--force: every stage runs, none matches dvc.lock
    python3 bench/speed/newcomer.py --only repro    # or --only test
    python3 bench/speed/newcomer.py --venv .venv    # reuse an installed environment (the install is then not timed)
    python3 bench/speed/newcomer.py --venv .venv --make REPRO_ARGS=augment --make PYTEST_ARGS=tests/test_summary.py
                                              # a quick check of this script itself (make variables passed on)

Clones this repository at HEAD (committed work only) into a temporary folder, as a newcomer
would, and runs the README's commands there with a clean environment (no PYTHONPATH, no active
virtual environment): `make repro`, which creates .venv and installs first, then `make repro`
again (nothing to rerun: its last lines must still be the summary), and `make test` in a second
fresh clone (install included, the database and browser services required as in CI). It records

- wall seconds of each command and its install, and the CPU seconds of everything it ran;
- per DVC stage: wall seconds (from DVC's "Running stage" lines as they arrive), CPU seconds
  (the stage process and its reaped children, read from /proc twice a second), and the share of
  the two cores it kept busy; stages DVC skipped because they matched dvc.lock are listed as such;
- `make test`'s pytest summary line and its slowest tests (`--durations`, printed by make test);
- the load average before, during (sampled every 10 s) and after, and the machine.

Writes bench/results/newcomer.json ({"make_repro_s", "make_test_s", "load_average", "machine",
"stages", ...}) and bench/results/newcomer.md. Run it on an otherwise idle machine for figures
that mean "2 idle cores"; the load average in the results says whether it was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, host_info, save_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STAGE_SCRIPT = re.compile(r"(?:^|/)stages/([A-Za-z0-9_]+)\.py$")
RUNNING = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")
PYTEST_SUMMARY = re.compile(r"^=+ (.*\d+ passed.*) in ([0-9.]+)s")
TICKS = os.sysconf("SC_CLK_TCK")
MAKE_VARS: list[str] = []  # VAR=VALUE given with --make, passed to every make command


def clean_env() -> dict[str, str]:
    """The environment of a newcomer's shell: no PYTHONPATH, no active virtual environment on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    keep = [p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p).parent / "pyvenv.cfg").is_file()]
    env["PATH"] = os.pathsep.join(keep)
    env.setdefault("GIT_AUTHOR_NAME", "newcomer")
    env.setdefault("GIT_AUTHOR_EMAIL", "newcomer@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    return env


def _proc_cpu(pid: int) -> tuple[str, float] | None:
    """(command line, CPU seconds of the process and its reaped children) of ``pid``; None when gone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; utime is field 14 of the whole line
    return cmdline, sum(int(x) for x in fields[11:15]) / TICKS


def _stage_of(cmdline: str) -> str | None:
    parts = cmdline.split()
    for part in parts[1:3]:
        found = STAGE_SCRIPT.search(part)
        if found and Path(parts[0]).name.startswith("python"):
            return found.group(1)
    return None


@dataclass
class Watch:
    """Samples the load average and the CPU time of each DVC stage process while a command runs."""

    stage_cpu: dict[str, float] = field(default_factory=dict)
    load: list[tuple[float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        last_load = 0.0
        while not self._stop.wait(0.5):
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    seen = _proc_cpu(int(entry.name))
                    stage = seen and _stage_of(seen[0])
                    if stage:
                        # one process per stage run; a stage's workers are reaped into its cutime/cstime
                        key = f"{stage}#{entry.name}"
                        self.stage_cpu[key] = max(self.stage_cpu.get(key, 0.0), seen[1])
            if time.monotonic() - last_load >= 10:
                self.load.append(os.getloadavg())
                last_load = time.monotonic()

    def __enter__(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_by_stage(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, seconds in self.stage_cpu.items():
            stage = key.split("#")[0]
            out[stage] = out.get(stage, 0.0) + seconds
        return out


@dataclass
class Timed:
    command: str
    returncode: int
    wall_s: float
    cpu_s: float
    lines: list[tuple[float, str]]  # (seconds since start, line) of stdout and stderr together
    stage_cpu: dict[str, float]
    load: list[tuple[float, float, float]]

    def tail(self, n: int) -> list[str]:
        return [line for _, line in self.lines[-n:]]


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Timed:
    """Run ``command``, echoing and logging its output with arrival times; wall and CPU seconds."""
    print("$", " ".join(command), f"(in {cwd})", flush=True)
    before = os.times()
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with Watch() as watch, log.open("a") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                bufsize=0)
        assert proc.stdout is not None
        pending = b""
        while chunk := proc.stdout.read(65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            sink.write(chunk.decode(errors="replace"))
            pending += chunk
            *complete, pending = re.split(rb"[\r\n]", pending)
            now = time.monotonic() - start
            lines += [(now, part.decode(errors="replace")) for part in complete if part.strip()]
        if pending.strip():
            lines.append((time.monotonic() - start, pending.decode(errors="replace")))
        returncode = proc.wait()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Timed(" ".join(command), returncode, round(time.monotonic() - start, 1), round(cpu, 1), lines,
                 watch.cpu_by_stage(), watch.load)


def stage_table(run: Timed) -> dict[str, dict[str, Any]]:
    """Per stage: ran or skipped; wall seconds between its "Running stage" line and the next stage's (the
    last one ends at the command that follows `dvc repro`, or the end); CPU seconds; cores kept busy."""
    starts = [(t, m.group(1)) for t, line in run.lines if (m := RUNNING.search(line))]
    end = next((t for t, line in run.lines if t > (starts[-1][0] if starts else 0) and
                ("histosynth summary" in line or "Data and pipelines are up to date" in line)), run.wall_s)
    stages: dict[str, dict[str, Any]] = {}
    for t, line in run.lines:
        if m := SKIPPED.search(line):
            stages[m.group(1)] = {"ran": False}
    for i, (t, name) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else end
        wall, cpu = round(stop - t, 1), run.stage_cpu.get(name)
        stages[name] = {"ran": True, "wall_s": wall, "cpu_s": None if cpu is None else round(cpu, 1),
                        "cores_busy": None if cpu is None or wall <= 0 else round(cpu / wall, 2)}
    return stages


def install_seconds(run: Timed) -> float | None:
    """Seconds until make moved past the install (its `touch .venv/.installed` line); None when it did not install."""
    return next((round(t, 1) for t, line in run.lines if line.startswith("touch ") and ".installed" in line), None)


def fresh_clone(work: Path, name: str) -> Path:
    target = work / name
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def env_for(clone: Path, env: dict[str, str], venv: Path | None) -> dict[str, str]:
    """A reused environment may hold another checkout's histosynth (an editable install): the clone's wins."""
    return env if venv is None else env | {"PYTHONPATH": str(clone / "src")}


def make_command(target: str, venv: Path | None, extra: list[str]) -> list[str]:
    extra = [*MAKE_VARS, *extra]
    if venv is None:
        return ["make", target, *extra]
    # an installed environment: make must neither create nor reinstall it
    return ["make", "-o", str(venv / ".installed"), target, f"VENV={venv}", *extra]


def repro(work: Path, env: dict[str, str], venv: Path | None, force: bool) -> dict[str, Any]:
    clone = fresh_clone(work, "repro")
    extra = ["REPRO_ARGS=--force"] if force else []
    env = env_for(clone, env, venv)
    first = timed(make_command("repro", venv, extra), clone, env, work / "make_repro.log")
    result: dict[str, Any] = {"returncode": first.returncode, "wall_s": first.wall_s, "cpu_s": first.cpu_s,
                              "install_s": install_seconds(first), "stages": stage_table(first),
                              "last_lines": first.tail(16), "load_during": first.load}
    if first.returncode == 0:
        again = timed(make_command("repro", venv, []), clone, env, work / "make_repro.log")
        result["noop"] = {"returncode": again.returncode, "wall_s": again.wall_s, "last_lines": again.tail(16),
                          "stages_run": [name for name, s in stage_table(again).items() if s["ran"]]}
    return result


def slowest_tests(run: Timed) -> list[str]:
    inside, out = False, []
    for _, line in run.lines:
        if "slowest" in line and "durations" in line:
            inside = True
            continue
        if inside:
            if line.startswith("=") or not re.match(r"^\d+\.\d+s ", line):
                if out:
                    break
                continue
            out.append(line)
    return out


def test(work: Path, env: dict[str, str], venv: Path | None) -> dict[str, Any]:
    clone = fresh_clone(work, "test")
    run = timed(make_command("test", venv, []), clone,
                env_for(clone, env, venv) | {"HISTOSYNTH_REQUIRE_TEST_SERVICES": "1"}, work / "make_test.log")
    summary = next(((m.group(1), float(m.group(2))) for _, line in reversed(run.lines)
                    if (m := PYTEST_SUMMARY.search(line))), None)
    services = next((round(t, 1) for t, line in run.lines if line.startswith("install_test_services:")), None)
    return {"returncode": run.returncode, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "install_s": install_seconds(run),
            "services_ready_s": services, "pytest_summary": summary[0] if summary else None,
            "pytest_s": summary[1] if summary else None, "slowest": slowest_tests(run), "load_during": run.load}


def _load_summary(samples: list[tuple[float, float, float]]) -> dict[str, float] | None:
    ones = [s[0] for s in samples]
    return {"mean_1min": round(sum(ones) / len(ones), 2), "max_1min": round(max(ones), 2)} if ones else None


def markdown(result: dict[str, Any]) -> str:
    m, load = result["machine"], result["load_average"]
    lines = ["# A newcomer's first commands, timed (`bench/speed/newcomer.py`)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
             f"torch {m.get('torch', '?')}; {m['date']}; commit {result['code']['commit']}. "
             f"Load average before {load['before'][0]:.2f}, during (1-min, mean / max) "
             f"{(load['during'] or {}).get('mean_1min', '?')} / {(load['during'] or {}).get('max_1min', '?')}, "
             f"after {load['after'][0]:.2f}: figures mean \"idle cores\" only when the load stayed near 0."
             + (f" Reused environment {result['reused_venv']} (install not timed)." if result["reused_venv"] else "")
             + (f" Make variables: {' '.join(result['make_vars'])}." if result["make_vars"] else ""), ""]
    if (r := result.get("repro")) is not None:
        how = "`make repro REPRO_ARGS=--force` (every stage runs)" if result["force"] else "`make repro`"
        install = "reused .venv" if r["install_s"] is None else f"install {r['install_s']} s"
        lines += [f"## {how} in a fresh clone: **{r['wall_s']} s** ({r['wall_s'] / 60:.1f} min; {install}), "
                  f"{r['cpu_s']} CPU-s, exit {r['returncode']}", "",
                  "| stage | ran | wall s | CPU s | cores busy |", "|---|---|---|---|---|"]
        for name, s in r["stages"].items():
            lines.append(f"| {name} | {'yes' if s['ran'] else 'no (matched dvc.lock)'} | {s.get('wall_s', '')} | "
                         f"{s.get('cpu_s', '')} | {s.get('cores_busy', '')} |")
        lines += ["", "Last lines of the first run:", "", "```", *r["last_lines"], "```", ""]
        if (noop := r.get("noop")) is not None:
            lines += [f"No-op rerun (`make repro` again): {noop['wall_s']} s, stages run: "
                      f"{', '.join(noop['stages_run']) or 'none'}; its last lines:", "", "```", *noop["last_lines"],
                      "```", ""]
    if (t := result.get("test")) is not None:
        install = "reused .venv" if t["install_s"] is None else f"install {t['install_s']} s"
        lines += [f"## `make test` in a fresh clone: **{t['wall_s']} s** ({t['wall_s'] / 60:.1f} min; {install}), "
                  f"{t['cpu_s']} CPU-s, exit {t['returncode']}", "",
                  f"pytest: {t['pytest_summary']} ({t['pytest_s']} s)", "", "Slowest tests:", "", "```",
                  *t["slowest"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("repro", "test"))
    parser.add_argument("--force", action="store_true", help="make repro REPRO_ARGS=--force: run every stage")
    parser.add_argument("--venv", type=Path, help="an installed environment to reuse (not timed)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--make", action="append", default=[], metavar="VAR=VALUE",
                        help="a make variable for every make command (e.g. PYTEST_ARGS=...); recorded in the results")
    args = parser.parse_args()
    MAKE_VARS.extend(args.make)
    env = clean_env()
    venv = args.venv.resolve() if args.venv else None
    work = (args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="newcomer-")))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"code": code_revision(), "force": args.force, "make_vars": args.make,
                              "reused_venv": str(venv) if venv else None}
    load_before = os.getloadavg()
    try:
        if args.only in (None, "repro"):
            result["repro"] = repro(work, env, venv, args.force)
        if args.only in (None, "test"):
            result["test"] = test(work, env, venv)
        load_after = os.getloadavg()
        pythons = [venv] if venv else [work / part / ".venv" for part in ("repro", "test")]
        python = next((p / "bin" / "python" for p in pythons if (p / "bin" / "python").exists()), None)
        result["machine"] = host_info(python)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    during = [s for part in ("repro", "test") if part in result for s in result[part].pop("load_during")]
    result["load_average"] = {"before": load_before, "during": _load_summary(during), "after": load_after,
                              "samples_1min": [round(s[0], 2) for s in during]}
    result["make_repro_s"] = result["repro"]["wall_s"] if "repro" in result else None
    result["make_test_s"] = result["test"]["wall_s"] if "test" in result else None
    result["stages"] = result["repro"]["stages"] if "repro" in result else {}
    save_results("newcomer", markdown(result), result)
    print(markdown(result))
    failed = [part for part in ("repro", "test") if part in result and result[part]["returncode"] != 0]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
