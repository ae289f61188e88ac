"""``histosynth publish``: make the current package a named, fetchable dataset version.

Order matters. Everything that can refuse runs before anything changes; the data reach the
DVC remote before the tag exists, so a tag never points at data nobody can fetch:
1. refuse: not a git + DVC project, no default DVC remote, tag already taken, uncommitted
   changes to tracked files other than params.yaml / dvc.lock;
2. stamp ``package.version`` in params.yaml and ``dvc repro`` (the package card and SQL dumps
   carry the version; unchanged stages are skipped);
3. refuse: QA did not pass, or ``verify`` finds the package damaged;
4. commit params.yaml, dvc.lock and the git-tracked reports; ``dvc push``; tag ``dataset-v<version>``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from histosynth.config import load_params
from histosynth.config.stamp import set_param
from histosynth.errors import DataError, HistosynthError
from histosynth.paths import PACKAGE_DIR, QA_REPORT_DIR
from histosynth.publish import commands

log = logging.getLogger(__name__)

TAG_PREFIX = "dataset-v"
# Files publish itself changes (besides reports/ and the .gitignore files DVC writes); any other
# uncommitted change would be left out of the tag.
OWN_FILES = ("params.yaml", "dvc.lock")


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
    version = version or load_params(params_path).package.version
    tag = tag_for(version)
    remote = _check_ready(root, tag)

    if set_param("package.version", version, params_path):
        log.info("params.yaml: package.version = %s", version)
    if repro:
        log.info("dvc repro: bringing the pipeline up to date for version %s", version)
        commands.dvc_streaming(root, "repro", what="rebuilding the pipeline")
    n_images = _check_package(root)

    commands.git(root, "add", "--", *_release_paths(root), what="staging the release files")
    if commands.git(root, "diff", "--cached", "--name-only", what="reading staged changes").strip():
        commands.git(root, "commit", "-q", "-m", f"dataset {version}: publish data/package ({n_images} images)",
                     what="committing the release")
    log.info("dvc push to %s", remote)
    commands.dvc_push(root, remote)
    commands.git(root, "tag", "-a", tag, "-m", f"histosynth dataset {version}", what=f"tagging {tag}")
    commit = commands.git(root, "rev-parse", "HEAD", what="reading the commit").strip()
    return PublishResult(version, tag, commit, remote, n_images)


def _check_ready(root: Path, tag: str) -> str:
    if not (root / ".git").exists() or not (root / ".dvc").is_dir():
        raise PublishRefused(f"{root}: not a git + DVC project (no .git or .dvc here); run publish from "
                             "the project root")
    remote = commands.default_remote(root)
    if remote is None:
        raise PublishRefused("no default DVC remote: add one, e.g. a local folder for a try: "
                             "`dvc remote add -d store /path/to/dvc-store` (docs/publishing.md)")
    if commands.tag_exists(root, tag):
        raise PublishRefused(f"tag {tag} already exists: published versions are immutable; set another "
                             "version (`histosynth publish --version X.Y.Z`)")
    stray = [f for f in commands.changed_tracked_files(root)
             if f not in OWN_FILES and not f.startswith("reports/") and not f.endswith(".gitignore")]
    if stray:
        raise PublishRefused("uncommitted changes to tracked files would not be part of the release: "
                             f"{', '.join(stray)}; commit or revert them first")
    return remote


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
    return [*OWN_FILES, *(["reports"] if (root / "reports").is_dir() else []), *ignores]
