"""``histosynth publish``: make the current package a named, fetchable dataset version.

All or nothing. Everything that can refuse runs before anything changes, and the tag comes last,
so a tag never points at data nobody can fetch:
1. refuse: a version that is no semantic version or git tag name (``1.0.0-rc..1``), not a git +
   DVC project, no default DVC remote, tag already taken, uncommitted changes to tracked files
   other than params.yaml / dvc.lock / reports, or an untracked file under any pipeline dependency
   (src/, stages/, dvc.yaml and what its stages depend on: a clean checkout would lack it);
2. stamp ``package.version`` in params.yaml and ``dvc repro`` (the package card and SQL dumps
   carry the version; unchanged stages are skipped);
3. refuse: QA did not pass, or ``verify`` finds the package damaged;
4. ``dvc push``, then ``dvc status --cloud``: every output must be on the remote (``dvc push``
   exits 0 when a file is missing from the cache, with a warning only);
5. commit params.yaml, dvc.lock and the git-tracked reports; tag ``dataset-v<version>``.
A failure after step 1 says exactly what it left: nothing is committed or tagged before step 5,
and params.yaml is put back when nothing else changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from histosynth.config import load_params
from histosynth.config.package import check_version
from histosynth.config.stamp import set_param
from histosynth.errors import ConfigError, DataError, HistosynthError
from histosynth.fsutil import atomic_write_bytes
from histosynth.paths import PACKAGE_DIR, QA_REPORT_DIR
from histosynth.publish import commands

log = logging.getLogger(__name__)

TAG_PREFIX = "dataset-v"
# Files publish itself changes (besides reports/ and the .gitignore files DVC writes); any other
# uncommitted change would be left out of the tag.
OWN_FILES = ("params.yaml", "dvc.lock")
# What the pipeline is made of, whatever dvc.yaml lists: a file here that git does not track is
# missing from a clean checkout of the tag.
PIPELINE_PATHS = ("dvc.yaml", "src", "stages")
SHOWN = 10


class PublishRefused(HistosynthError):
    """The project is not in a state that can be published."""


@dataclass(frozen=True)
class PublishResult:
    version: str
    tag: str
    commit: str
    remote: str
    n_images: int


def tag_for(version: str) -> str:
    return f"{TAG_PREFIX}{version}"


def publish(root: Path = Path("."), version: str | None = None, repro: bool = True) -> PublishResult:
    root = Path(root).resolve()
    params_path = root / "params.yaml"
    version = _checked_version(version if version is not None else load_params(params_path).package.version)
    tag = tag_for(version)
    remote = _check_ready(root, tag)

    before = _Snapshot.take(root)
    try:
        if set_param("package.version", version, params_path):
            log.info("params.yaml: package.version = %s", version)
        if repro:
            log.info("dvc repro: bringing the pipeline up to date for version %s", version)
            commands.dvc_streaming(root, "repro", what="rebuilding the pipeline")
        n_images = _check_package(root)
        log.info("dvc push to %s", remote)
        commands.dvc_push(root, remote)
        _check_remote(root, remote)
        commands.git(root, "add", "--", *_release_paths(root), what="staging the release files")
        if commands.git(root, "diff", "--cached", "--name-only", what="reading staged changes").strip():
            commands.git(root, "commit", "-q", "-m", f"dataset {version}: publish data/package ({n_images} images)",
                         what="committing the release")
    except HistosynthError as err:
        raise _noted(err, before.left_behind(version)) from None
    commit = commands.git(root, "rev-parse", "HEAD", what="reading the commit").strip()
    try:
        commands.git(root, "tag", "-a", tag, "-m", f"histosynth dataset {version}", what=f"tagging {tag}")
    except HistosynthError as err:
        raise _noted(err, f"the release is committed ({commit[:10]}) and its data pushed, but not tagged: tag it "
                          f"with `git tag -a {tag} -m 'histosynth dataset {version}' {commit[:10]}`") from None
    return PublishResult(version, tag, commit, remote, n_images)


def _checked_version(version: str) -> str:
    try:
        return check_version(version)
    except ValueError as err:
        raise ConfigError(f"version {version!r}: {err}; nothing was changed") from None


@dataclass(frozen=True)
class _Snapshot:
    """What publish may change before it commits, as it was before."""

    root: Path
    params: bytes
    lock: bytes | None
    head: str

    @classmethod
    def take(cls, root: Path) -> _Snapshot:
        lock = root / "dvc.lock"
        return cls(root, (root / "params.yaml").read_bytes(), lock.read_bytes() if lock.is_file() else None,
                   commands.head_commit(root))

    def left_behind(self, version: str) -> str:
        """Put params.yaml back if nothing else changed; say exactly what the failed run left."""
        params, lock = self.root / "params.yaml", self.root / "dvc.lock"
        head = commands.head_commit(self.root)
        committed = "nothing was committed" if head == self.head else \
            f"commit {head[:10]} was made (`git reset --soft HEAD~1` undoes it)"
        if (lock.read_bytes() if lock.is_file() else None) == self.lock:
            if params.read_bytes() != self.params:
                atomic_write_bytes(params, self.params)
            return f"nothing was tagged, {committed}, params.yaml is as it was"
        return (f"nothing was tagged, {committed}; left for version {version}: package.version in params.yaml, and "
                "dvc.lock with the outputs `dvc repro` rebuilt. Run publish again once the cause is fixed, or go "
                "back with `git checkout -- params.yaml dvc.lock && dvc checkout`")


def _noted(err: HistosynthError, note: str) -> HistosynthError:
    """``err`` (same kind: same exit status) with ``note`` on a line of its own."""
    try:
        return type(err)(f"{err}\n{note}")
    except TypeError:  # a kind whose constructor takes other arguments
        return PublishRefused(f"{err}\n{note}")


def _check_ready(root: Path, tag: str) -> str:
    if not (root / ".git").exists() or not (root / ".dvc").is_dir():
        raise PublishRefused(f"{root}: not a git + DVC project (no .git or .dvc here); run publish from "
                             "the project root")
    if not commands.valid_tag_name(root, tag):
        raise PublishRefused(f"{tag} is not a valid git tag name (`git check-ref-format`); choose another version")
    remote = commands.default_remote(root)
    if remote is None:
        raise PublishRefused("no default DVC remote: add one, e.g. a local folder for a try: "
                             "`dvc remote add -d store /path/to/dvc-store` (docs/publishing.md)")
    if commands.tag_exists(root, tag):
        raise PublishRefused(f"tag {tag} already exists: published versions are immutable; set another "
                             "version (`histosynth publish --version X.Y.Z`)")
    stray = [f for f in commands.changed_tracked_files(root) if not _publish_writes(f)]
    if stray:
        raise PublishRefused("uncommitted changes to tracked files would not be part of the release: "
                             f"{_listed(stray)}; commit or revert them first")
    untracked = [f for f in commands.untracked_files(root, _pipeline_paths(root)) if not _publish_writes(f)]
    if untracked:
        raise PublishRefused("files the pipeline is made of are not tracked by git, so a checkout of the release "
                             f"would lack them: {_listed(untracked)}; `git add` and commit them, or remove them")
    return remote


def _publish_writes(path: str) -> bool:
    return path in OWN_FILES or path.startswith("reports/") or path.endswith(".gitignore")


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _pipeline_paths(root: Path) -> list[str]:
    """src/, stages/, dvc.yaml, and every dependency and params file its stages name (DVC's outputs among
    them are ignored by git, so they never count as untracked)."""
    paths = set(PIPELINE_PATHS)
    try:
        pipeline = YAML(typ="safe", pure=True).load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, YAMLError):
        pipeline = {}  # no pipeline (or DVC would refuse it at repro): the fixed paths only
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    for stage in (stages or {}).values():
        if not isinstance(stage, dict):
            continue
        paths.update(dep for dep in stage.get("deps") or [] if isinstance(dep, str))
        paths.update(name for entry in stage.get("params") or [] if isinstance(entry, dict) for name in entry)
    return sorted(path for path in paths if "${" not in path and (root / path).exists())


def _check_remote(root: Path, remote: str) -> None:
    missing = commands.not_on_remote(root)
    if missing:
        shown = [f"{path} ({state})" for path, state in sorted(missing.items())]
        raise PublishRefused(f"after `dvc push` the remote {remote} still lacks {len(missing)} output(s): "
                             f"{_listed(shown)}; a consumer's `dvc get` would fail, so nothing is tagged. A file "
                             "missing from the local cache too must be rebuilt (`dvc repro --force <stage>`)")


def _check_package(root: Path) -> int:
    from histosynth.package.verify import verify_package  # pandas/sqlalchemy: only when publishing

    package = root / PACKAGE_DIR
    if not package.is_dir():
        raise PublishRefused(f"{package}: no package to publish; run `dvc repro package`")
    qa_file = root / QA_REPORT_DIR / "metrics.json"
    try:
        qa_passed = json.loads(qa_file.read_text(encoding="utf-8"))["passed"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{qa_file}: cannot read the QA verdict ({err}); run `dvc repro qa`") from None
    if qa_passed is not True:
        raise PublishRefused(f"QA did not pass ({qa_file}: passed = {qa_passed}); only a synthetic set that "
                             "passed every gate is published. See the verdict with `dvc metrics show`")
    report = verify_package(package, deep=True)  # the release gate: the dumps too, not only their MD5s
    if not report.ok:
        raise PublishRefused(f"{package} failed verification, not publishing:\n" + "\n".join(report.lines()))
    return report.images


def _release_paths(root: Path) -> list[str]:
    """params.yaml, dvc.lock, the reports DVC keeps in git (cache: false outputs) and the
    .gitignore files DVC writes for new outputs."""
    status = commands.git(root, "status", "--porcelain", "--untracked-files=all", what="reading git status")
    ignores = [line[3:] for line in status.splitlines() if line[3:].endswith(".gitignore")]
    own = [name for name in OWN_FILES if (root / name).exists()]
    return [*own, *(["reports"] if (root / "reports").is_dir() else []), *ignores]
