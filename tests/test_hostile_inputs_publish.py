"""`histosynth publish` is all or nothing (issue 20): it validates first, tags only after the remote
holds every file, and a failure leaves the repository as it was or says exactly what it left.

Real git, real DVC with a local directory remote, a one-stage pipeline that copies a prebuilt
package into data/package (the full pipeline runs in tests/test_publish_e2e.py). The tests that
push run several DVC processes (tens of seconds on a loaded machine): marked slow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cli_run import invoke
from dvc_project import dvc, env, run
from histosynth.entry import EXIT_CONFIG, EXIT_INPUT, EXIT_OK
from histosynth.package.stage import build_package
from package_inputs import package_params, write_package_inputs


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project whose pipeline ran and was committed; no remote yet."""
    base = tmp_path_factory.mktemp("publish")
    inputs = write_package_inputs(base / "inputs", per_split=1, n_synthetic=2)
    build_package(package_params(link="copy"), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics,
                  base / "prebuilt", revision="test")
    project = base / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "step.py").write_text(
        f"import shutil, sys\nshutil.copytree({str(base / 'prebuilt')!r}, sys.argv[1])\n")
    (project / "params.yaml").write_text("package:\n  name: hostile\n  version: 0.1.0\n")
    (project / "dvc.yaml").write_text(
        "stages:\n  package:\n    cmd: python src/step.py data/package\n    deps: [src]\n"
        "    params: [package.name]\n    outs: [data/package]\n")
    (project / "reports" / "qa").mkdir(parents=True)
    (project / "reports" / "qa" / "metrics.json").write_text(json.dumps({"passed": True, "classes": {}}))
    run(project, "git", "init", "-q")
    dvc(project, "init", "-q")
    dvc(project, "config", "core.analytics", "false")
    dvc(project, "repro", "-q")
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "project")
    return project


@pytest.fixture
def project(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy with its own (empty) local remote, set in the untracked .dvc/config.local; git and
    DVC run by publish in this process see the environment the helpers give theirs."""
    for key, value in env().items():
        monkeypatch.setenv(key, value)
    project = Path(shutil.copytree(template, tmp_path / "project", symlinks=True))
    dvc(project, "remote", "add", "--local", "-d", "store", str(tmp_path / "store"))
    return project


def state(project: Path) -> tuple[str, str, str, bytes]:
    """HEAD, the tags, git status and params.yaml: what a refused publish must leave as it was."""
    return (run(project, "git", "rev-parse", "HEAD").stdout, run(project, "git", "tag").stdout,
            run(project, "git", "status", "--porcelain").stdout, (project / "params.yaml").read_bytes())


def publish(project: Path, *args: str) -> tuple[int, list[str]]:
    """Exit status and output lines of `histosynth publish --root <project> *args` (in this process)."""
    code, output = invoke("publish", "--root", str(project), *args)
    return code, output.splitlines()


def one_error(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    return errors[0]


@pytest.mark.slow
def test_publish_tags_only_what_the_remote_holds(project: Path) -> None:
    code, lines = publish(project, "--no-repro", "--version", "1.0.0")
    assert code == EXIT_OK, lines
    assert run(project, "git", "tag").stdout.split() == ["dataset-v1.0.0"]
    assert json.loads(dvc(project, "status", "--cloud", "--json").stdout) == {}


@pytest.mark.parametrize("version", ["1.0.0-rc..1", "1.0.0-", "01.0.0", "1.0.0\n", "v1.0.0"])
def test_a_version_that_is_no_semver_or_tag_name_changes_nothing(project: Path, version: str) -> None:
    before = state(project)
    code, lines = publish(project, "--no-repro", "--version", version)
    assert code == EXIT_CONFIG and "nothing was changed" in one_error(lines)
    assert state(project) == before
    assert not (project.parent / "store").exists()  # nothing pushed either


def test_an_untracked_file_under_a_pipeline_dependency_is_refused(project: Path) -> None:
    (project / "src" / "helper.py").write_text("HELP = 1\n")
    (project / "stages").mkdir()
    (project / "stages" / "extra.py").write_text("")
    before = state(project)
    code, lines = publish(project, "--no-repro", "--version", "1.0.0")
    assert code == EXIT_INPUT
    assert "not tracked by git, so a checkout of the release would lack them: src/helper.py, stages/extra.py" \
        in one_error(lines)
    assert state(project) == before


def test_a_modified_dependency_is_refused(project: Path) -> None:
    with open(project / "src" / "step.py", "a") as step:
        step.write("# changed\n")
    code, lines = publish(project, "--no-repro", "--version", "1.0.0")
    assert code == EXIT_INPUT and "uncommitted changes to tracked files would not be part of the release: " \
                                  "src/step.py" in one_error(lines)
    assert run(project, "git", "tag").stdout == ""


@pytest.mark.slow
def test_an_image_missing_from_the_cache_is_not_published(project: Path) -> None:
    """`dvc push` warns and exits 0 when a cache file is gone; publish used to say "published" then."""
    image = next((project / "data" / "package" / "images").rglob("*.png"))
    md5 = hashlib.md5(image.read_bytes()).hexdigest()
    cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.chmod(0o644)
    cached.unlink()  # the workspace copy is intact: verify passes, only the remote will lack it
    before = state(project)
    code, lines = publish(project, "--no-repro", "--version", "1.0.0")
    assert code == EXIT_INPUT
    assert "still lacks" in one_error(lines) and "nothing is tagged" in one_error(lines)
    assert "  nothing was tagged, nothing was committed, params.yaml is as it was" in lines
    assert state(project) == before


@pytest.mark.slow
def test_a_failed_push_after_repro_says_what_it_left(project: Path) -> None:
    (project / ".dvc" / "config.local").write_text("")  # replace the remote by one DVC cannot reach
    dvc(project, "remote", "add", "--local", "-d", "store", "webdav://localhost:9/nowhere")
    (project / "params.yaml").write_text("package:\n  name: renamed\n  version: 0.1.0\n")
    run(project, "git", "commit", "-qam", "rename")
    head = run(project, "git", "rev-parse", "HEAD").stdout
    code, lines = publish(project, "--version", "1.0.0")
    assert code == EXIT_INPUT
    assert "pushing the data to the DVC remote store" in one_error(lines)
    assert "  nothing was tagged, nothing was committed; left for version 1.0.0: package.version in params.yaml, " \
           "and dvc.lock with the outputs `dvc repro` rebuilt. Run publish again once the cause is fixed, or go " \
           "back with `git checkout -- params.yaml dvc.lock && dvc checkout`" in lines
    assert run(project, "git", "rev-parse", "HEAD").stdout == head and run(project, "git", "tag").stdout == ""
