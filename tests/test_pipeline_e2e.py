"""End to end: the real dvc.yaml run by real DVC in a temporary git + DVC repository."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Small but real: the demo source, fewer images, a tiny GAN trained for two epochs. A GAN this
# small cannot pass the QA gates, so the baseline only reports them.
TINY_PARAMS = {
    "augment": {"per_class": 24},
    "gan": {"epochs": 2, "width": 4, "batch_size": 16, "checkpoint_every": 1, "probe": {"every": 1, "max_images": 40}},
    "generate": {"n_per_class": 12},
    "qa": {"enforce": False, "kl": {"n_per_class": 10}, "featurenet": {"epochs": 2, "width": 4}},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Stage commands call `python`: make it this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")
    return env


def _run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _tree_md5s(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git + DVC repo holding this project's pipeline with tiny params, reproduced once."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = _deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_PARAMS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(root, "git", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    _run(root, sys.executable, "-m", "dvc", "repro")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "baseline")
    return root


def test_repro_writes_every_declared_output(project):
    real = project / "data/real"
    for split in ("train", "val", "test"):
        assert any((real / split).glob("*/*.png")), f"no {split} images"
    assert (real / "manifest.parquet").is_file()
    augmented = project / "data/augmented"
    counts = {d.name: len(list(d.glob("*.png"))) for d in augmented.iterdir() if d.is_dir()}
    assert counts and set(counts.values()) == {TINY_PARAMS["augment"]["per_class"]}
    assert sorted(p.stem for p in (project / "reports/augment").glob("*.png")) == sorted(counts)
    assert (project / "models/gan/generator.pt").is_file()
    assert (project / "reports/train/samples_final.png").is_file()
    synthetic = project / "data/synthetic"
    for folder in counts:
        names = sorted(p.name for p in (synthetic / folder).glob("*.png"))
        assert len(names) == TINY_PARAMS["generate"]["n_per_class"]
        check = subprocess.run(["md5sum", "-c", "--quiet", "MD5SUMS"], cwd=synthetic / folder)
        assert check.returncode == 0
    qa = json.loads((project / "reports/qa/metrics.json").read_text())
    assert set(qa["classes"]) == {json.loads((project / "models/gan/record.json").read_text())["class_names"][i]
                                  for i in range(len(counts))}
    assert "kl" in next(iter(qa["classes"].values()))


def test_metrics_and_plots_are_declared_for_dvc(project):
    metrics = json.loads(_run(project, sys.executable, "-m", "dvc", "metrics", "show", "--json").stdout)
    files = {name for workspace in metrics.values() for name in workspace["data"]}
    assert {"reports/qa/metrics.json", "reports/train/metrics.json", "reports/featurenet/metrics.json"} <= files
    html = project / "plots_out"
    _run(project, sys.executable, "-m", "dvc", "plots", "show", "-o", str(html))
    page = (html / "index.html").read_text()
    assert "GAN losses" in page and "samples_final.png" in page


def test_second_repro_is_a_noop(project):
    out = _run(project, sys.executable, "-m", "dvc", "repro").stdout
    assert "Data and pipelines are up to date" in out
    assert "Running stage" not in out


def test_same_params_give_identical_files(project, tmp_path):
    before = _tree_md5s(project / "data")
    _run(project, sys.executable, "-m", "dvc", "repro", "--force")
    assert _tree_md5s(project / "data") == before


def test_a_failing_qa_gate_stops_the_pipeline_with_a_verdict(project):
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "run", "-S", "qa.enforce=true", "-S", "qa.kl.max=0", "-S", "qa.kl.floor_factor=1"],
        cwd=project, env=_env(), capture_output=True, text=True,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "failed to reproduce 'qa'" in output
    assert "colour_kl" in output and "Traceback" not in output
    # Everything up to the gate was reused, not retrained.
    assert "Running stage 'train'" not in output
    _run(project, "git", "checkout", "--", "params.yaml")


def test_exp_run_with_changed_param_reruns_only_affected_stages(project):
    out = _run(project, sys.executable, "-m", "dvc", "exp", "run", "-S", "augment.per_class=10").stdout
    assert "Running stage 'augment'" in out
    assert "Running stage 'ingest'" not in out
    assert "Running stage 'featurenet'" not in out
    assert "Running stage 'train'" in out
    counts = {len(list(d.glob("*.png"))) for d in (project / "data/augmented").iterdir() if d.is_dir()}
    assert counts == {10}
