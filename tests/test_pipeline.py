"""The in-process pipeline (histosynth.pipeline.run_pipeline) and the stage definitions it runs; the
whole pipeline against `dvc repro` is in test_pipeline_e2e.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_run import invoke, one_error
from histosynth import paths
from histosynth.config import params_from_mapping
from histosynth.entry import EXIT_CONFIG
from histosynth.errors import ConfigError, DataError
from histosynth.manifest import read_manifest
from histosynth.pipeline import NAMES, STAGES, run_pipeline, stage
from histosynth.pipeline.run import select

AUGMENT_FOUR = params_from_mapping({"augment": {"per_class": 30}})


def test_the_stages_run_in_pipeline_order_and_a_selection_keeps_it() -> None:
    assert NAMES == ("ingest", "augment", "featurenet", "train", "generate", "curate", "qa", "package", "benchmark",
                     "report")
    assert [d.name for d in select(["qa", "ingest"])] == ["ingest", "qa"]
    assert [d.name for d in select(until="generate")] == ["ingest", "augment", "featurenet", "train", "generate"]
    assert [d.name for d in select(["augment", "qa"], until="curate")] == ["augment"]
    with pytest.raises(ConfigError, match="no stage 'tran'; the stages are ingest, augment, featurenet, train"):
        select(["tran"])


def test_a_stage_whose_input_is_missing_names_the_stage_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data/real: not found, and stage `augment` reads it; stage `ingest` makes "
                                        r"it: run it first"):
        run_pipeline(AUGMENT_FOUR, tmp_path, stages=["augment"])
    assert not (tmp_path / "data" / "augmented").exists()


def test_a_run_writes_the_project_layout_and_reads_upstream_what_it_does_not_make(tmp_path: Path,
                                                                                 tiny_real_dir: Path) -> None:
    upstream = tmp_path / "shared"
    shutil.copytree(tiny_real_dir, upstream / paths.REAL_DIR)
    assert run_pipeline(AUGMENT_FOUR, tmp_path / "run", stages=["augment"], upstream=upstream) == ["augment"]
    augmented = read_manifest(tmp_path / "run" / paths.AUGMENTED_DIR)
    assert augmented.groupby("class_name").size().tolist() == [30, 30, 30]
    assert sorted(p.name for p in (tmp_path / "run" / paths.AUGMENT_REPORT_DIR).glob("*.png")) == \
        sorted(f"{folder}.png" for folder in augmented["path"].str.split("/").str[0].unique())
    assert not (tmp_path / "run" / paths.REAL_DIR).exists()  # read where it was, not copied
    with pytest.raises(ConfigError, match="the report reads one project folder as a whole"):
        run_pipeline(AUGMENT_FOUR, tmp_path / "run", stages=["report"], upstream=upstream)


def test_every_stage_command_refuses_params_without_the_sections_it_declares(tmp_path: Path) -> None:
    """A params.yaml without the sections a stage reads is refused by that stage's command, as DVC refuses it."""
    for definition in STAGES:
        if not definition.sections:
            continue
        other = next(section for section in ("augment", "gan") if section not in definition.sections)
        params_file = tmp_path / f"{definition.name}.yaml"
        params_file.write_text(f"{other}: {{}}\n", encoding="utf-8")
        code, output = invoke(definition.name, "--params", str(params_file))
        missing = ", ".join(f"'{section}:'" for section in definition.sections)
        assert code == EXIT_CONFIG, (definition.name, output)
        assert f"no {missing} section; `{definition.name}` reads it" in one_error(output)


def test_command_line_options_move_the_slots_and_set_params(tmp_path: Path, tiny_real_dir: Path) -> None:
    params_file = tmp_path / "params.yaml"
    params_file.write_text("augment: {per_class: 26}\n", encoding="utf-8")
    out, preview = tmp_path / "elsewhere" / "augmented", tmp_path / "elsewhere" / "preview"
    code, output = invoke("augment", "--params", str(params_file), "--real", str(tiny_real_dir), "--out", str(out),
                          "--preview", str(preview))
    assert code == 0, output
    assert len(read_manifest(out)) == 3 * 26 and any(preview.glob("*.png"))
    assert {option for slot in stage("augment").slots for option in [slot.option]} <= set(
        invoke("augment", "--help")[1].replace("│", " ").split())
