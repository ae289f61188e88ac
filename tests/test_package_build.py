"""The package stage on real files: layout, checksums, metadata, card, QA gate, atomicity,
reproducibility and hard links."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.entry import EXIT_GATE
from histosynth.errors import DataError, GateFailed
from histosynth.fsutil import safe_name
from histosynth.manifest import write_manifest
from histosynth.package.schema import read_metadata_csv, read_metadata_parquet
from histosynth.package.stage import build_package
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5
from package_inputs import AWKWARD_CLASSES, PackageInputs, package_params, refresh_qa_verdict, write_package_inputs

REVISION = "test-revision"
PER_SPLIT, N_SYNTHETIC = 3, 4


def build(inputs: PackageInputs, out: Path, **package: object) -> pd.DataFrame:
    return build_package(package_params(**package), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics,
                         out, revision=REVISION)


@pytest.fixture
def inputs(tmp_path: Path) -> PackageInputs:
    return write_package_inputs(tmp_path / "inputs", per_split=PER_SPLIT, n_synthetic=N_SYNTHETIC)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs the md5sum binary (GNU coreutils)")
def test_md5sum_checks_every_class_folder_and_the_top_level(inputs: PackageInputs, tmp_path: Path) -> None:
    out = tmp_path / "package"
    metadata = build(inputs, out)
    folders = sorted(p for p in (out / "images").iterdir())
    assert [p.name for p in folders] == sorted(metadata["class_folder"].unique())
    top_files = ["README.md", "metadata.csv", "metadata.parquet", "metadata.jsonl", "sql/mysql.sql",
                 "sql/postgresql.sql", "sql/sqlite.sql", "croissant.json"]
    for folder, listed in [*((f, sorted(p.name for p in f.glob("*.png"))) for f in folders), (out, top_files)]:
        result = subprocess.run(["md5sum", "--check", "--strict", "MD5SUMS"], cwd=folder, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert sorted(result.stdout.splitlines()) == sorted(f"{name}: OK" for name in listed)


def test_metadata_rows_files_and_class_names(inputs: PackageInputs, tmp_path: Path) -> None:
    out = tmp_path / "package"
    build(inputs, out)
    parquet = read_metadata_parquet(out / "metadata.parquet")
    csv = read_metadata_csv(out / "metadata.csv")
    pd.testing.assert_frame_equal(csv, parquet)

    n_classes = len(AWKWARD_CLASSES)
    assert len(parquet) == n_classes * (3 * PER_SPLIT + N_SYNTHETIC)
    assert parquet.groupby("source").size().to_dict() == {"real": 3 * PER_SPLIT * n_classes,
                                                          "synthetic": N_SYNTHETIC * n_classes}
    # Quotes, accents, commas and a name pandas would read as missing all survive both files.
    assert parquet.drop_duplicates("label")["class_name"].tolist() == list(AWKWARD_CLASSES)
    for name, folder in parquet[["class_name", "class_folder"]].drop_duplicates().itertuples(index=False):
        assert folder == safe_name(name) and (out / "images" / folder).is_dir()
    # Package order: label, real before synthetic, id.
    assert parquet.equals(parquet.sort_values(["label", "source", "id"], ignore_index=True))
    assert (parquet["width"] == 28).all() and (parquet["height"] == 28).all()
    synthetic = parquet[parquet["source"] == "synthetic"]
    assert synthetic["generator_run"].notna().all() and (synthetic["seed"] == 7).all()
    assert parquet[parquet["source"] == "real"]["latent_index"].isna().all()

    on_disk = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")}
    assert on_disk == set(parquet["file_path"])


def test_card_describes_counts_qa_and_provenance(inputs: PackageInputs, tmp_path: Path) -> None:
    out = tmp_path / "package"
    build(inputs, out, name="tiny-set", version="2.1.0", citation="Please cite: Tiny et al.")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# tiny-set 2.1.0\n")
    assert f"| 1 | stroma, it's 'loose' | `stroma_it_s_loose` | {PER_SPLIT} | {PER_SPLIT} | {PER_SPLIT} | " \
           f"{N_SYNTHETIC} | {3 * PER_SPLIT + N_SYNTHETIC} |" in card
    assert "passed every gate" in card and "0.01 (0.02)" in card
    assert REVISION in card and "`dcgan`" in card and "| g_lr | 0.0002 |" in card
    assert "Please cite: Tiny et al." in card
    assert "md5sum -c MD5SUMS" in card


def mark_as_edits(inputs: PackageInputs, every: int = 2, sources: str = "train") -> None:
    """Make every ``every``-th synthetic image an edit of a real image of its class (``sources``: that split)."""
    real = pd.read_parquet(inputs.real / "manifest.parquet")
    manifest = pd.read_parquet(inputs.synthetic / "manifest.parquet")
    source_of = real[real["split"] == sources].groupby("label")["id"].first()
    edits = manifest.index % every == 0
    manifest["edit_of"] = manifest["label"].map(source_of).where(edits)
    write_manifest(manifest, inputs.synthetic)
    refresh_qa_verdict(inputs)


def test_edits_record_their_source_in_metadata_sql_and_card(inputs: PackageInputs, tmp_path: Path) -> None:
    mark_as_edits(inputs)
    out = tmp_path / "package"
    build(inputs, out)
    parquet = read_metadata_parquet(out / "metadata.parquet")
    pd.testing.assert_frame_equal(read_metadata_csv(out / "metadata.csv"), parquet)
    edits = parquet[parquet["edit_of"].notna()]
    assert len(edits) == len(AWKWARD_CLASSES) * N_SYNTHETIC // 2 and set(edits["source"]) == {"synthetic"}
    real_ids = parquet[parquet["source"] == "real"].set_index("id")
    assert (real_ids.loc[edits["edit_of"], "label"].to_numpy() == edits["label"].to_numpy()).all()
    assert (real_ids.loc[edits["edit_of"], "split"] == "train").all()
    connection = sqlite3.connect(":memory:")
    connection.executescript((out / "sql" / "sqlite.sql").read_text("utf-8"))
    rows = connection.execute("SELECT id, edit_of FROM images WHERE edit_of IS NOT NULL ORDER BY id").fetchall()
    assert rows == sorted(edits[["id", "edit_of"]].itertuples(index=False, name=None))
    jsonl = [json.loads(line) for line in (out / "metadata.jsonl").read_text("utf-8").splitlines()]
    assert {r["id"]: r["edit_of"] for r in jsonl if r["edit_of"]} == dict(zip(edits["id"], edits["edit_of"]))
    croissant = json.loads((out / "croissant.json").read_text("utf-8"))
    images = next(r for r in croissant["recordSet"] if r["name"] == "images")
    assert {"@id": "metadata.parquet"} == next(f for f in images["field"]
                                               if f["name"] == "edit_of")["source"]["fileObject"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| synthetic | of which edits | total |" in card
    assert f"| {N_SYNTHETIC} | {N_SYNTHETIC // 2} | {3 * PER_SPLIT + N_SYNTHETIC} |" in card
    assert "edits of real train images (`edit_of` names the source)" in card
    verified = CliRunner().invoke(app, ["verify", "--deep", str(out)])  # the dumps read back as the metadata
    assert verified.exit_code == 0, verified.output


def test_an_edit_of_an_image_that_is_no_real_train_image_of_its_class_is_refused(inputs: PackageInputs,
                                                                                 tmp_path: Path) -> None:
    mark_as_edits(inputs, sources="val")
    with pytest.raises(DataError, match=r"edit\(s\) name no real train image of their class"):
        build(inputs, tmp_path / "package")
    assert not (tmp_path / "package").exists()


def test_only_the_chosen_real_splits_are_packaged(inputs: PackageInputs, tmp_path: Path) -> None:
    metadata = build(inputs, tmp_path / "package", real_splits=["val", "test"])
    real = metadata[metadata["source"] == "real"]
    assert set(real["split"]) == {"val", "test"}
    assert set(metadata[metadata["source"] == "synthetic"]["split"]) == {"train"}


def test_refuses_a_synthetic_set_that_failed_qa(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", qa_passed=False)
    with pytest.raises(GateFailed, match="failed QA") as err:
        build(inputs, tmp_path / "package")
    assert "\n" not in str(err.value) and "qa.enforce: false" in str(err.value)
    assert not (tmp_path / "package").exists()

    relaxed = package_params().model_copy(update={"qa": package_params().qa.model_copy(update={"enforce": False})})
    metadata = build_package(relaxed, inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics,
                             tmp_path / "package", revision=REVISION)
    assert (metadata["source"] == "synthetic").any()
    assert "packaged because `qa.enforce` is false" in (tmp_path / "package" / "README.md").read_text("utf-8")


def test_missing_qa_verdict_is_a_clear_error(inputs: PackageInputs, tmp_path: Path) -> None:
    inputs.qa_metrics.unlink()
    with pytest.raises(DataError, match="no QA verdict; run the qa stage first"):
        build(inputs, tmp_path / "package")


def test_an_interrupted_build_leaves_the_previous_package(inputs: PackageInputs, tmp_path: Path) -> None:
    out = tmp_path / "package"
    build(inputs, out)
    before = files_of(out)
    # A workspace file that no longer matches its manifest stops the build half way through.
    # (Replaced, not edited in place, as stages write files: the package's hard link keeps the old file.)
    victim = sorted(inputs.synthetic.rglob("*.png"))[-1]
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data + b"junk")
    with pytest.raises(DataError, match="differs from its manifest"):
        build(inputs, out)
    assert files_of(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".package")] == []


def test_same_inputs_give_a_byte_identical_package(inputs: PackageInputs, tmp_path: Path) -> None:
    build(inputs, tmp_path / "first")
    build(inputs, tmp_path / "second", link="copy")
    first, second = files_of(tmp_path / "first"), files_of(tmp_path / "second")
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_images_are_hard_linked_unless_copy_is_asked_for(inputs: PackageInputs, tmp_path: Path) -> None:
    linked = build(inputs, tmp_path / "linked")
    copied = build(inputs, tmp_path / "copied", link="copy")
    source = inputs.synthetic / "na" / "syn_na_000000.png"
    target = "images/na/syn_na_000000.png"
    assert (tmp_path / "linked" / target).stat().st_ino == source.stat().st_ino
    assert (tmp_path / "copied" / target).stat().st_ino != source.stat().st_ino
    assert (tmp_path / "copied" / target).stat().st_nlink == 1
    assert linked.equals(copied)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem (/dev/shm)")
def test_copies_when_the_inputs_are_on_another_filesystem(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        if os.stat(elsewhere).st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the test folder")
        inputs = write_package_inputs(Path(elsewhere), n_synthetic=2, per_split=1)
        out = tmp_path / "package"
        metadata = build(inputs, out)  # link: auto
        for path in metadata["file_path"]:
            assert (out / path).stat().st_nlink == 1
        assert (out / "images" / "na" / "syn_na_000001.png").read_bytes() == \
            (inputs.synthetic / "na" / "syn_na_000001.png").read_bytes()


def test_ids_shared_by_real_and_synthetic_images_are_refused(inputs: PackageInputs, tmp_path: Path) -> None:
    manifest = pd.read_parquet(inputs.synthetic / "manifest.parquet")
    real_id = pd.read_parquet(inputs.real / "manifest.parquet")["id"].iloc[0]
    manifest.loc[0, "id"] = real_id
    manifest.to_parquet(inputs.synthetic / "manifest.parquet", index=False)
    refresh_qa_verdict(inputs)
    with pytest.raises(DataError, match=f"image id '{real_id}' occurs in both"):
        build(inputs, tmp_path / "package")


def test_refusal_names_the_failing_classes(inputs: PackageInputs, tmp_path: Path) -> None:
    inputs.qa_metrics.write_text(json.dumps({"passed": False, "classes": {"NA": {"passed": False}},
                                             SYNTHETIC_SET_KEY: synthetic_set_md5(inputs.synthetic)}))
    with pytest.raises(GateFailed, match=r"classes: NA\)"):
        build(inputs, tmp_path / "package")


# What the package command reads besides package.*: DVC (and so the CLI) refuses a file without them.
SECTIONS = "qa: {enforce: true}\ndata: {source: builtin:ihc}\n"


def run_cli_package(inputs: PackageInputs, tmp_path: Path, params_yaml: str) -> tuple[int, str]:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(params_yaml, encoding="utf-8")
    result = CliRunner().invoke(app, ["package", "--params", str(params_file), "--real", str(inputs.real),
                                      "--synthetic", str(inputs.synthetic), "--gan", str(inputs.gan),
                                      "--qa-metrics", str(inputs.qa_metrics), "--out", str(tmp_path / "package")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_cli_packages_what_verify_accepts(inputs: PackageInputs, tmp_path: Path) -> None:
    code, output = run_cli_package(inputs, tmp_path, f"package: {{name: cli-set, version: 0.2.0}}\n{SECTIONS}")
    assert code == 0, output
    assert (tmp_path / "package" / "README.md").read_text("utf-8").startswith("# cli-set 0.2.0\n")
    verified = CliRunner().invoke(app, ["verify", str(tmp_path / "package")])
    assert verified.exit_code == 0 and verified.output.startswith("OK: ")


def test_cli_refusal_is_one_line_without_traceback(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", qa_passed=False, per_split=1, n_synthetic=1)
    code, output = run_cli_package(inputs, tmp_path, f"package: {{}}\n{SECTIONS}")
    assert code == EXIT_GATE
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "failed QA" in errors[0] and "Traceback" not in output
    assert not (tmp_path / "package").exists()


def test_card_records_the_git_revision_of_the_code(inputs: PackageInputs, tmp_path: Path) -> None:
    build_package(package_params(), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, tmp_path / "package")
    card = (tmp_path / "package" / "README.md").read_text("utf-8")
    assert re.search(r"git revision `([0-9a-f]{40}( with uncommitted changes)?|unknown \(not a git checkout\))`", card)


def test_unreadable_qa_verdict_is_a_clear_error(inputs: PackageInputs, tmp_path: Path) -> None:
    inputs.qa_metrics.write_text("{passed: yes")
    with pytest.raises(DataError, match="not valid JSON"):
        build(inputs, tmp_path / "package")
