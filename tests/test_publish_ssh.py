"""Publishing to a real SSH remote and consuming from it: `histosynth publish`, `dvc get`,
`dvc import --rev`, `dvc update`, a tampered file on the remote, and the push failures a
publisher meets (wrong key, unreachable host, full remote) as one `error:` line each.

The remote is a throwaway sshd on localhost (tests/ssh_server.py), reached as a lab would reach
its data server: a host alias in ~/.ssh/config (HOME points at the server's client folder) and
`ssh://<alias>/<path>` in the committed DVC config. No GAN is trained: a one-stage pipeline
builds the package from fixture images (tests/package_inputs.py) in a few seconds, so this file
is about remotes; tests/test_publish_e2e.py runs the real pipeline with a local remote.
Consumers fetch through a bare clone ("origin"), so the data can only come from the SSH remote,
never from the producer's DVC cache. `histosynth` runs in-process (the CLI as typed, without
the seconds of a fresh interpreter importing torch); git and DVC run as programs.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli_run import invoke, one_error
from dvc_project import REPO, deep_update, dvc, env, run, tree_md5s
from histosynth.entry import EXIT_INPUT, EXIT_VERIFY_FINDINGS
from package_inputs import write_package_inputs
from ssh_server import WRONG_KEY_ALIAS, SSHServer, free_port, ssh_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

BUILD_SCRIPT = textwrap.dedent("""\
    from pathlib import Path

    from histosynth.package.stage import build_package
    from histosynth.pipeline import stage

    build_package(stage("package").load_params(Path("params.yaml")), Path("inputs/real"), Path("inputs/synthetic"),
                  Path("inputs/gan"), Path("reports/qa/metrics.json"), Path("data/package"), revision="fixture")
""")
PIPELINE = {"stages": {"package": {"cmd": "python build_package.py", "deps": ["build_package.py", "inputs"],
                                   "params": ["package"], "outs": ["data/package"]}}}


def make_producer(root: Path, remote_url: str) -> Path:
    """A git + DVC project whose one stage packages fixture images, with the SSH remote as default."""
    root.mkdir()
    inputs = write_package_inputs(root / "inputs", per_split=2, n_synthetic=2)
    (root / "reports" / "qa").mkdir(parents=True)
    inputs.qa_metrics.rename(root / "reports" / "qa" / "metrics.json")
    inputs.qa_metrics.parent.rmdir()
    (root / "build_package.py").write_text(BUILD_SCRIPT)
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()),
                         {"package": {"name": "ssh-test", "version": "0.0.0"}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    dvc(root, "remote", "add", "-d", "lab", remote_url)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "project")
    return root


@pytest.fixture(scope="module")
def remote_home(ssh_server: SSHServer) -> Iterator[SSHServer]:  # noqa: F811 (the fixture imported above)
    """HOME of every command in this module, in-process ones too: its ~/.ssh/config names the test
    server; git's identity and `python` on PATH as tests/dvc_project.py gives them to programs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(ssh_server.home))
        for name, value in env().items():
            patch.setenv(name, value)
        yield ssh_server


@pytest.fixture(scope="module")
def published(remote_home: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Versions 1.0.0 (every real split) and 1.1.0 (package.real_splits: train, test) published to
    the SSH remote; their tags pushed to a bare "origin"."""
    base = tmp_path_factory.mktemp("ssh-publish")
    store = base / "store"
    producer = make_producer(base / "producer", remote_home.url(store))
    origin = base / "origin.git"
    run(base, "git", "init", "-q", "--bare", str(origin))
    code, output = invoke("publish", "--root", str(producer), "--version", "1.0.0")
    assert code == 0, output
    params = yaml.safe_load((producer / "params.yaml").read_text())
    params["package"]["real_splits"] = ["train", "test"]
    (producer / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(producer, "git", "commit", "-qam", "leave the val split out")
    code, output = invoke("publish", "--root", str(producer), "--version", "1.1.0")
    assert code == 0, output
    run(producer, "git", "push", "-q", str(origin), "HEAD:refs/heads/main", "dataset-v1.0.0", "dataset-v1.1.0")
    return {"producer": producer, "store": store, "origin": origin, "base": base}


def test_publish_pushes_every_file_to_the_ssh_remote(published: dict) -> None:
    producer, store = published["producer"], published["store"]
    assert run(producer, "git", "tag", "--list", "dataset-v*").stdout.split() == ["dataset-v1.0.0", "dataset-v1.1.0"]
    assert dvc(producer, "status", "--cloud", "--json").stdout.strip() in ("{}", "")
    images = pd.read_parquet(producer / "data/package/metadata.parquet")
    stored = {p.parent.name + p.name for p in (store / "files" / "md5").glob("*/*")}
    assert set(images["md5"]) <= stored  # DVC stores each file under its MD5


def test_dvc_get_fetches_an_older_version_from_the_remote(published: dict, tmp_path: Path) -> None:
    out = tmp_path / "1.0.0"
    dvc(tmp_path, "get", str(published["origin"]), "data/package", "--rev", "dataset-v1.0.0", "-o", str(out))
    assert invoke("verify", str(out))[0] == 0
    assert set(pd.read_parquet(out / "metadata.parquet")["split"]) == {"train", "val", "test"}  # 1.1.0 has no val
    assert json.loads((out / "croissant.json").read_text(encoding="utf-8"))["version"] == "1.0.0"


def test_dvc_import_then_update_moves_between_versions(published: dict, tmp_path: Path) -> None:
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(consumer, "git", "init", "-q")
    dvc(consumer, "init", "-q")
    dvc(consumer, "import", str(published["origin"]), "data/package", "--rev", "dataset-v1.0.0", "-o", "package")
    assert invoke("verify", str(consumer / "package"))[0] == 0
    first = tree_md5s(consumer / "package")
    dvc(consumer, "update", "--rev", "dataset-v1.1.0", "package.dvc")
    assert invoke("verify", str(consumer / "package"))[0] == 0
    assert first != tree_md5s(consumer / "package") == tree_md5s(published["producer"] / "data/package")
    assert "rev: dataset-v1.1.0" in (consumer / "package.dvc").read_text()


def test_a_file_tampered_on_the_remote_is_caught_by_verify(published: dict, tmp_path: Path) -> None:
    images = pd.read_parquet(published["producer"] / "data/package/metadata.parquet")
    victim, donor = images.iloc[0], images.iloc[1]
    stored = published["store"] / "files" / "md5" / victim["md5"][:2] / victim["md5"][2:]
    original = stored.read_bytes()
    stored.chmod(0o644)  # DVC stores read-only files
    stored.write_bytes((published["producer"] / "data/package" / donor["file_path"]).read_bytes())
    try:
        out = tmp_path / "fetched"
        dvc(tmp_path, "get", str(published["origin"]), "data/package", "--rev", "dataset-v1.1.0", "-o", str(out))
        code, output = invoke("verify", str(out))
    finally:
        stored.write_bytes(original)
    assert code == EXIT_VERIFY_FINDINGS
    assert [line for line in output.splitlines() if not line.startswith("FAILED")] == [
        f"modified: {victim['file_path']}"]
    assert tree_md5s(out).keys() == tree_md5s(published["producer"] / "data/package").keys()


@pytest.fixture(scope="module")
def second_producer(published: dict) -> Path:
    """A copy of the producer (its package, cache and history) whose failed pushes harm no other test."""
    return Path(shutil.copytree(published["producer"], published["base"] / "second"))


def publish_to(project: Path, url: str) -> str:
    """`histosynth publish` of a new version to ``url`` (a local override of the default remote):
    its one error line, after checking that it failed with the input status and tagged nothing."""
    dvc(project, "remote", "add", "--local", "-f", "-d", "other", url)
    code, output = invoke("publish", "--root", str(project), "--version", "2.0.0", "--no-repro")
    assert code == EXIT_INPUT, output
    assert "dataset-v2.0.0" not in run(project, "git", "tag").stdout
    return one_error(output)


def test_wrong_credentials_are_one_clear_error(second_producer: Path, remote_home: SSHServer, tmp_path: Path) -> None:
    line = publish_to(second_producer, remote_home.url(tmp_path / "store", alias=WRONG_KEY_ALIAS))
    assert f"DVC remote other ({remote_home.url(tmp_path / 'store', alias=WRONG_KEY_ALIAS)})" in line
    assert "the server refused the login (Permission denied for user" in line and "keyfile" in line


def test_an_unreachable_host_is_one_clear_error(second_producer: Path, tmp_path: Path) -> None:
    line = publish_to(second_producer, f"ssh://127.0.0.1:{free_port()}{tmp_path / 'store'}")
    assert "the host cannot be reached (" in line and "Connect call failed" in line


def test_a_full_remote_is_one_clear_error(second_producer: Path, remote_home: SSHServer) -> None:
    if remote_home.full_dir is None:
        pytest.skip("no full remote here: a tiny tmpfs for the SSH server needs root with CAP_SYS_ADMIN "
                    "(a private mount namespace)")
    line = publish_to(second_producer, remote_home.url(remote_home.full_dir / "store"))
    assert "file(s) not stored: Failure" in line and "a full disk or quota" in line and "df -h" in line
