"""End to end: the real dvc.yaml run by real DVC in a temporary git + DVC repository, and the same
pipeline run in one process by histosynth.pipeline.run_pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_project import TINY_PARAMS, make_project, make_repro, pipeline_outputs, rerun_in_process
from dvc_project import env as _env, run as _run
from histosynth.summary import summary_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_repro(tmp_path_factory) -> tuple[Path, str]:
    """A fresh git + DVC repo holding this project's pipeline with tiny params, reproduced once by `make repro`;
    and what that printed."""
    if shutil.which("make") is None or not (Path(sys.executable).parent / "dvc").is_file():
        pytest.skip("`make repro` needs make, and dvc installed beside this interpreter")
    root = make_project(tmp_path_factory.mktemp("project"), TINY_PARAMS)
    done = make_repro(root)
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "baseline")
    return root, done.stdout


@pytest.fixture(scope="module")
def project(first_repro) -> Path:
    return first_repro[0]


def summary_at_the_end(printed: str, root: Path) -> None:
    """The last lines printed are the summary block, the same as `histosynth summary` prints for the project."""
    summary = summary_text(root).splitlines()
    assert printed.rstrip("\n").splitlines()[-len(summary):] == summary
    assert summary[1].startswith("QA FAILED for ")  # a GAN this small fails the gates, reported (qa.enforce: false)
    assert any(line.startswith("Benchmark (1 seed, ") for line in summary)
    assert "Report:  reports/index.html" in summary and "Package: data/package" in summary


def test_make_repro_ends_with_the_summary(first_repro):
    root, printed = first_repro
    assert "Running stage 'report'" in printed
    summary_at_the_end(printed, root)
    assert printed.count("==== histosynth summary ====") == 1  # the report stage left it to make


def test_a_noop_make_repro_still_ends_with_the_summary(project):
    printed = make_repro(project).stdout
    assert "Running stage" not in printed
    summary_at_the_end(printed, project)


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
    package = project / "data/package"
    assert subprocess.run([sys.executable, "-m", "histosynth.cli", "verify", str(package)]).returncode == 0
    benchmark = json.loads((project / "reports/benchmark/metrics.json").read_text())
    assert {"real_only", "affine", "augmented", "synthetic_only"} <= set(benchmark)
    assert (project / "reports/index.html").stat().st_size > 10_000


def test_metrics_and_plots_are_declared_for_dvc(project):
    metrics = json.loads(_run(project, sys.executable, "-m", "dvc", "metrics", "show", "--json").stdout)
    files = {name for workspace in metrics.values() for name in workspace["data"]}
    assert {"reports/ingest/duplicates.json", "reports/qa/metrics.json", "reports/train/metrics.json",
            "reports/featurenet/metrics.json", "reports/benchmark/metrics.json"} <= files
    html = project / "plots_out"
    _run(project, sys.executable, "-m", "dvc", "plots", "show", "-o", str(html))
    page = (html / "index.html").read_text()
    assert "Training losses" in page and "samples_final.png" in page and "ROC curves" in page
    assert "duplicates.png" in page
    rendered = json.loads(_run(project, sys.executable, "-m", "dvc", "plots", "show", "--json").stdout)
    assert not rendered.get("errors"), rendered["errors"]


def test_second_repro_is_a_noop(project):
    out = _run(project, sys.executable, "-m", "dvc", "repro").stdout
    assert "Data and pipelines are up to date" in out
    assert "Running stage" not in out


def test_the_in_process_pipeline_writes_the_files_dvc_repro_wrote(project, tmp_path):
    """histosynth.pipeline.run_pipeline (what the tests and the studies run), from scratch in another
    folder and one process, with the same params: every output byte-identical to `dvc repro`'s. So the
    stage scripts and the in-process pipeline are one pipeline, and the same params give the same files."""
    clone = rerun_in_process(project, tmp_path)
    expected, written = pipeline_outputs(project), pipeline_outputs(clone)
    assert len(written) > 100 and {path.split("/")[0] for path in written} == {"data", "models", "reports"}
    assert sorted(path for path in expected.keys() | written.keys() if expected.get(path) != written.get(path)) == []


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
    assert "==== histosynth summary ====" in out  # printed by the report stage under plain DVC
    counts = {len(list(d.glob("*.png"))) for d in (project / "data/augmented").iterdir() if d.is_dir()}
    assert counts == {10}


def test_exp_run_with_the_projected_arch_runs_the_whole_pipeline(project):
    # the frozen ImageNet network at its smallest input (32 px) keeps the tiny budget tiny on CPU
    out = _run(project, sys.executable, "-m", "dvc", "exp", "run", "-S", "gan.arch=projected",
               "-S", "gan.feature_size=32").stdout
    for stage in ("train", "generate", "curate", "qa", "package", "benchmark", "report"):
        assert f"Running stage '{stage}'" in out
    record = json.loads((project / "models/gan/record.json").read_text())
    assert record["arch"] == "projected" and record["feature_network"]["name"] == "efficientnet-lite0"
    qa = json.loads((project / "reports/qa/metrics.json").read_text())
    assert 0 <= qa["cas"]["synthetic_only"] <= 1 and qa["cas"]["steps"] == TINY_PARAMS["qa"]["cas"]["steps"]
    assert subprocess.run([sys.executable, "-m", "histosynth.cli", "verify", str(project / "data/package")]).returncode == 0
    assert "projected" in (project / "reports/index.html").read_text()
    _run(project, "git", "checkout", "--", "params.yaml")


def test_exp_run_with_the_diffusion_arch_and_edits_runs_the_whole_pipeline(project):
    # the tiny budget of TINY_PARAMS (2 epochs, width 4) applies to the diffusion model as well: it edits the
    # real train tiles (sampling from noise runs through the same stages: tests/test_diffusion.py)
    out = _run(project, sys.executable, "-m", "dvc", "exp", "run", "-S", "gan.arch=ddpm", "-S", "generate.mode=edit",
               "-S", "generate.edit.strength=0.5", "-S", "generate.diffusion.steps=5").stdout
    for stage in ("train", "generate", "curate", "qa", "package", "benchmark", "report"):
        assert f"Running stage '{stage}'" in out
    record = json.loads((project / "models/gan/record.json").read_text())
    assert record["arch"] == "ddpm" and record["family"] == "diffusion"
    page = (project / "reports/index.html").read_text()
    assert "ddpm" in page and "Samples after the last" in page and "dvc repro train" not in page
    rendered = json.loads(_run(project, sys.executable, "-m", "dvc", "plots", "show", "--json").stdout)
    assert not rendered.get("errors"), rendered["errors"]
    read = ("import json, pandas; m = pandas.read_parquet('data/synthetic/manifest.parquet'); "
            "r = pandas.read_parquet('data/real/manifest.parquet'); p = pandas.read_parquet('data/package/metadata.parquet'); "
            "print(json.dumps({'sources': sorted(set(m.edit_of)), 'train': sorted(r[r.split == 'train'].id), "
            "'strength': sorted(set(m.edit_strength)), 'packaged': int(p.edit_of.notna().sum()), 'n': len(m), "
            "'origins': sorted(set(o.split(':')[0] for o in m.origin)), 'steps': sorted(set(m.steps))}))")
    found = json.loads(_run(project, sys.executable, "-c", read).stdout)
    assert set(found["sources"]) <= set(found["train"]) and found["strength"] == [0.5]
    assert found["origins"] == ["diffusion"] and found["steps"] == [5]
    assert found["packaged"] == found["n"]  # every shipped edit names its source in the package
    assert subprocess.run([sys.executable, "-m", "histosynth.cli", "verify", str(project / "data/package")]).returncode == 0
    assert "of which edits" in (project / "data/package/README.md").read_text()
    _run(project, "git", "checkout", "--", "params.yaml")
