"""`histosynth study`: the grid, its params, the figures, and a toy study on the demo's data run end to end,
killed after its first generator's run and resumed."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from dvc_project import REPO, TINY_PARAMS, deep_update, env
from histosynth.config import params_from_mapping
from histosynth.errors import ConfigError
from histosynth.study.aggregate import summarise
from histosynth.study.grid import grid
from histosynth.study.runner import RECORD, Step, params_hash, remaining_seconds, run_steps, steps

# One regime (the costly shared stages once), two generator seeds: killed after the first one's run.
TOY_STUDY = {"regimes": [{"name": "long_tail", "real_per_class": 16, "long_tail": {"classes": ["stroma"], "keep": 0.25}}],
             "recipes": {"tiny": {}}, "generator_seeds": [0, 1],
             "arms": ["real_only", "affine", "augmented", "affine_synthetic", "strong", "strong_synthetic",
                      "real_weighted", "real_oversampled"]}


def toy_params() -> dict:
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), copy.deepcopy(TINY_PARAMS))
    deep_update(params, {"data": {"max_eval_per_class": 12}, "qa": {"cas": {"enabled": False},
                                                                  "featurenet": {"epochs": 1}}})
    params["study"] = TOY_STUDY
    return params


# --- params and grid -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("study", "message"), [
    ({"regimes": [{"name": "a"}, {"name": "a"}]}, r"study: Value error, regime names must be distinct|"
                                                  r"regime names must be distinct"),
    ({"regimes": [{"name": "Big Data"}]}, r"study.regimes.0.name = 'Big Data': String should match pattern"),
    ({"regimes": [{"name": "a", "long_tail": {"keep": 2}}]}, r"study.regimes.0.long_tail.keep = 2: "),
    ({"arms": ["real_only", "gan_only"]}, r"study.arms = .*unknown arm\(s\) 'gan_only'; allowed: real_only, affine"),
    ({"recipes": {"My GAN": {}}}, r"recipe name\(s\) 'My GAN': lower-case letters"),
    ({"generator_seeds": [1, 1]}, r"study.generator_seeds = \[1, 1\]: seeds must be distinct"),
    ({"grid": 1}, r"study: unknown key\(s\) grid; allowed keys here: regimes, recipes, generator_seeds, arms"),
])
def test_bad_study_params_are_named(study: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        params_from_mapping({"study": study})


def test_a_recipe_with_a_bad_gan_value_is_named_before_anything_runs():
    params = params_from_mapping({"study": {"recipes": {"big": {"epochs": 0}, "ok": {}}}})
    with pytest.raises(ConfigError, match=r"study.recipes.big.epochs = 0: Input should be greater than or equal to 1"):
        grid(params)
    with pytest.raises(ConfigError, match=r"study.recipes.odd: unknown key\(s\) wings; allowed keys here: arch, "):
        grid(params_from_mapping({"study": {"recipes": {"odd": {"wings": 2}}}}))


def test_each_run_gets_its_regimes_data_its_recipe_and_its_seed():
    params = params_from_mapping({"qa": {"enforce": True}, "study": {
        "regimes": [{"name": "few", "real_per_class": 10},
                    {"name": "tail", "long_tail": {"classes": ["stroma"], "keep": 0.1}}],
        "recipes": {"plain": {}, "sagan": {"arch": "sagan", "epochs": 7}}, "generator_seeds": [3, 4],
        "arms": ["real_only", "augmented"]}})
    runs = grid(params)
    assert [(r.regime.name, r.recipe, r.seed) for r in runs] == [
        (regime, recipe, seed) for regime in ("few", "tail") for recipe in ("plain", "sagan") for seed in (3, 4)]
    few, tail = runs[3].params, runs[4].params
    assert (few.data.max_per_class, few.gan.arch, few.gan.epochs, few.gan.seed, few.generate.seed) == (10, "sagan", 7, 4, 4)
    assert (tail.data.max_per_class, tail.data.long_tail.classes, tail.gan.arch) == (0, ["stroma"], params.gan.arch)
    assert not few.qa.enforce and few.benchmark.arms == ["real_only", "augmented"]  # QA reported: the study goes on


def test_a_recipe_can_set_generate_values_so_diffusion_edits_are_a_recipe():
    params = params_from_mapping({"study": {"recipes": {
        "dcgan": {}, "edits": {"arch": "ddpm", "generate": {"mode": "edit", "edit": {"strength": 0.3}}}},
        "generator_seeds": [2]}})
    dcgan, edits = (run.params for run in grid(params)[:2])
    assert (edits.gan.arch, edits.generate.mode, edits.generate.edit.strength) == ("ddpm", "edit", 0.3)
    assert edits.generate.edit.keep_colour == params.generate.edit.keep_colour  # the other edit values kept
    assert (edits.gan.seed, edits.generate.seed, edits.generate.n_per_class) == (2, 2, params.generate.n_per_class)
    assert dcgan.generate.mode == params.generate.mode and dcgan.gan.arch == params.gan.arch
    with pytest.raises(ConfigError, match=r"study.recipes.edits.generate.mode = 'copy': Input should be"):
        grid(params_from_mapping({"study": {"recipes": {"edits": {"generate": {"mode": "copy"}}}}}))
    with pytest.raises(ConfigError, match=r"study.recipes.edits.generate: a mapping of generate.\* values"):
        grid(params_from_mapping({"study": {"recipes": {"edits": {"generate": "edit"}}}}))


def test_a_recipes_nested_gan_values_change_only_the_keys_named_as_dvc_exp_run_s_would():
    params = params_from_mapping({"gan": {"probe": {"max_images": 40}}, "study": {
        "recipes": {"rare_probe": {"probe": {"every": 5}}}}})
    run = grid(params)[0].params
    assert (run.gan.probe.every, run.gan.probe.max_images) == (5, 40)  # params.yaml's max_images kept


# --- records ---------------------------------------------------------------------------------------------------

def test_a_step_recorded_with_the_same_params_is_not_run_again_and_a_changed_one_is(tmp_path: Path):
    ran: list[str] = []
    params = params_from_mapping({})
    key = params_hash(params)
    assert key == params_hash(params_from_mapping({"study": {"generator_seeds": [5]}}))  # the grid is no step's input
    assert key != params_hash(params_from_mapping({"gan": {"epochs": 3}}))
    steps = [Step(tmp_path / "a", name, key, lambda name=name: ran.append(name)) for name in ("one", "two")]
    assert run_steps(steps) == {"ran": 2, "skipped": 0} and ran == ["one", "two"]
    assert json.loads((tmp_path / "a" / RECORD).read_text()) == {"one": key, "two": key}
    changed = [steps[0], Step(tmp_path / "a", "two", "other", lambda: ran.append("two again"))]
    assert run_steps(changed) == {"ran": 1, "skipped": 1} and ran[2:] == ["two again"]


def test_a_changed_param_reruns_the_steps_it_reaches_and_no_others():
    grid_of_one = {"regimes": [{"name": "r", "real_per_class": 5}], "generator_seeds": [0]}

    def changed(**sections: dict) -> list[str]:
        before = steps(params_from_mapping({"study": grid_of_one}), Path("study"))
        after = steps(params_from_mapping({**sections, "study": grid_of_one}), Path("study"))
        assert [s.title for s in before] == [s.title for s in after]
        return [old.title for old, new in zip(before, after) if old.key != new.key]

    run = [f"r/gan-seed0: {name}" for name in ("train", "generate", "curate", "qa", "package", "arms")]
    assert changed(benchmark={"steps": 7}) == ["r/gan-seed0: arms", "r/shared: arms"]
    assert changed(gan={"epochs": 7}) == run
    # curation's tests choose the checkpoint too (gan.select.by curated_colour): train reads curate.*
    assert changed(curate={"realism_k": 4}) == run
    assert changed(augment={"seed": 1}) == ["r/shared: augment", "r/shared: featurenet", *run, "r/shared: arms"]


def test_the_eta_counts_each_remaining_step_at_the_time_its_kind_took(tmp_path: Path, caplog):
    # a regime's arms step takes minutes, a package step seconds: a mean over all steps would be far off
    assert remaining_seconds({"package": [2.0, 4.0], "arms": [300.0]}, ["arms", "package", "arms"]) == 603.0
    assert remaining_seconds({"package": [2.0], "arms": [300.0]}, ["qa"]) == 151.0  # none yet: the mean of all
    assert remaining_seconds({}, ["qa"]) == 0.0

    def sleeps(seconds: float) -> Callable[[], None]:
        return lambda: time.sleep(seconds)

    slow_then_fast = [Step(tmp_path / "a", "arms", "k", sleeps(1.0))] + [
        Step(tmp_path / folder, "package", "k", sleeps(0)) for folder in "abc"] + [
        Step(tmp_path / "b", "arms", "k", sleeps(0))]
    with caplog.at_level("INFO", logger="histosynth.study.runner"):
        run_steps(slow_then_fast)
    etas = [float(line.rsplit("ETA ", 1)[1].split(" s")[0]) for line in caplog.messages if "ETA" in line]
    assert etas[3] == 1  # three quick package steps later, the arms step to come still counts its 1 s (not 1/4 s)


def test_a_failed_step_is_not_recorded(tmp_path: Path):
    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_steps([Step(tmp_path, "one", "k", fails)])
    assert not (tmp_path / RECORD).exists()


# --- figures ---------------------------------------------------------------------------------------------------

def probabilities_of(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.full((len(labels), n_classes), 0.1 / (n_classes - 1), np.float32)
    out[np.arange(len(labels)), predicted] = 0.9
    return out


def test_gains_are_differences_of_means_over_generator_and_classifier_seeds_with_intervals():
    labels = np.repeat(np.arange(3), 30)
    rng = np.random.default_rng(0)

    def trained(accuracy: float) -> np.ndarray:
        wrong = rng.random(len(labels)) > accuracy
        return probabilities_of(labels, np.where(wrong, (labels + 1) % 3, labels), 3)

    real = np.stack([[trained(0.6), trained(0.6)]])  # (1 generator-free, 2 classifier seeds, N, K)
    synthetic = np.stack([[trained(0.9), trained(0.9)], [trained(0.8), trained(0.8)]])  # 2 generator seeds
    figures = summarise({"real_only": real, "augmented": synthetic, "strong": real.copy(), "strong_synthetic": real},
                        labels, ["a", "b", "c"], ["c"], {"real_only": 90, "augmented": 150, "strong": 90,
                                                          "strong_synthetic": 150},
                        resamples=300, confidence=0.95, seed=0)
    arms = figures["arms"]
    assert arms["augmented"]["trainings"] == 4 and arms["real_only"]["trainings"] == 2
    gain = figures["gains"]["augmented_vs_real_only"]["accuracy"]
    assert gain["mean"] == pytest.approx(arms["augmented"]["accuracy"]["mean"] - arms["real_only"]["accuracy"]["mean"],
                                         abs=2e-6)
    assert 0 < gain["ci_low"] < gain["mean"] < gain["ci_high"]
    assert figures["gains"]["strong_synthetic_vs_strong"]["macro_auc"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert set(figures["gains"]) == {"augmented_vs_real_only", "strong_synthetic_vs_strong", "strong_vs_real_only",
                                     "augmented_vs_strong"}  # only gains of arms that ran
    recall = figures["rare_class_recall"]["real_only"]
    assert set(recall) == {"c"} and recall["c"]["ci_low"] <= recall["c"]["mean"] <= recall["c"]["ci_high"]


# --- end to end ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_toy_study_killed_after_its_first_run_resumes_without_repeating_it(tmp_path: Path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False), encoding="utf-8")
    command = [sys.executable, "-m", "histosynth.cli", "study", "--out", "study"]
    environment = {**env(), "HISTOSYNTH_PROGRESS": "0", "PYTHONPATH": str(REPO / "src")}
    regime = tmp_path / "study" / "long_tail"
    with (tmp_path / "first.log").open("w") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        # the first generator's run and the arms without synthetic images are done: kill -9, no clean-up
        while "arms" not in _record(regime / "shared") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the study ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert not (tmp_path / "study" / "study.json").exists()
    finished = {p: p.stat().st_mtime_ns for folder in ("shared", "tiny-seed0") for p in (regime / folder).rglob("*")
                if p.is_file()}

    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "study: 10 of 16 steps done before (recorded with the same params): not repeated" in done.stderr
    assert [line.split("done: ")[1].split(" (")[0] for line in done.stderr.splitlines() if "study step" in line] == [
        f"long_tail/tiny-seed1: {step}" for step in ("train", "generate", "curate", "qa", "package", "arms")]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished run's files untouched

    result = json.loads((tmp_path / "study" / "study.json").read_text())
    (tail,) = result["regimes"].values()
    assert (tail["real_per_class"], tail["long_tail"], tail["rare_classes"]) == (16, True, ["stroma"])
    assert list(tail["arms"]) == TOY_STUDY["arms"]
    for arm, figures in tail["arms"].items():
        assert figures["trainings"] == (2 if "synthetic" in arm or arm == "augmented" else 1)  # 2 generator seeds
        for metric in ("accuracy", "balanced_accuracy", "macro_auc"):
            assert figures[metric]["ci_low"] <= figures[metric]["mean"] <= figures[metric]["ci_high"]
    assert {"augmented_vs_real_only", "strong_synthetic_vs_strong", "affine_synthetic_vs_affine"} <= set(tail["gains"])
    assert set(tail["rare_class_recall"]) == set(TOY_STUDY["arms"])
    assert set(tail["rare_class_recall"]["real_oversampled"]) == {"stroma"}
    assert tail["arms"]["real_only"]["n_train"] == 16 + 16 + 4  # stroma's 16 cut to a quarter
    table = (tmp_path / "study" / "study.md").read_text()
    assert "| augmented - real_only |" in table and "| recall of the rare classes | stroma |" in table
    assert table.startswith("![Accuracy gains against real train images per class, 95 % intervals](study.png)")
    assert tail["qa_passed"] == {"tiny-seed0": False, "tiny-seed1": False}  # a GAN this small fails QA: reported
    assert "QA of the synthetic images (reported, not enforced): tiny-seed0 failed, tiny-seed1 failed." in table
    assert (tmp_path / "study" / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert again.returncode == 0 and "study: 16 of 16 steps done before" in again.stderr
    assert json.loads((tmp_path / "study" / "study.json").read_text()) == result

    # an arm added later is trained alone, in each run, beside the arms there; the others are not retrained
    params = toy_params()
    params["study"] = {**TOY_STUDY, "arms": TOY_STUDY["arms"] + ["synthetic_only"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    arm_files = {p: p.read_bytes() for p in regime.rglob("arms/*.npy")}
    added = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert [line.split("done: ")[1].split(" (")[0] for line in added.stderr.splitlines() if "study step" in line] == [
        "long_tail/tiny-seed0: arms", "long_tail/tiny-seed1: arms"]
    assert added.stderr.count("(1 training sets x") == 2  # synthetic_only alone, once per generator seed
    assert all(p.read_bytes() == content for p, content in arm_files.items())
    extended = json.loads((tmp_path / "study" / "study.json").read_text())["regimes"]["long_tail"]
    assert list(extended["arms"]) == TOY_STUDY["arms"][:4] + ["synthetic_only"] + TOY_STUDY["arms"][4:]
    assert extended["arms"]["real_only"] == tail["arms"]["real_only"]


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def test_a_folder_the_study_did_not_make_is_refused_and_left_as_it_was(tmp_path: Path):
    from histosynth.output_policy import OutputRefused
    from histosynth.study import run_study

    foreign = tmp_path / "my_results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefused, match="my_results: an existing folder that histosynth did not make"):
        run_study(params_from_mapping({}), foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
