"""The HTML report without a browser: sections, notes for missing inputs, errors for malformed ones,
self-containment, escaping, sample grids and byte-identical rebuilds."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import TINY_CLASSES
from histosynth.entry import EXIT_INPUT
from histosynth.errors import DataError
from histosynth.fsutil import unique_safe_names
from histosynth.images import read_png_rgb
from histosynth.images import encode_png
from histosynth.manifest import read_manifest
from histosynth.qa.registry import GATES
from histosynth.report import build_report
from histosynth.report import figures
from histosynth.report.grids import PADDING_PX, choose_rows, enlarge, enlargement, sample_grid
from histosynth.report.inputs import Missing
from histosynth.report.schemas import Gain
from histosynth.report.sections import nearcopies
from histosynth.report.sections.benchmark import benchmark_section, confusion_table, synthetic_answer
from histosynth.report.sections.nearcopies import near_copy_section
from histosynth.report.sections.qa import load_qa_metrics
from histosynth.report.sections.training import progress_strip
from report_inputs import ARMS, GRID_EPOCHS, images_in_report, write_report_inputs


class Tags(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def part(html: str, element_id: str) -> str:
    """The HTML from the element with ``element_id`` to the end of its section or article."""
    start = html.index(f'id="{element_id}"')
    ends = [i for i in (html.find("</article>", start), html.find("</section>", start)) if i >= 0]
    return html[start:min(ends)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_inputs(tmp_path_factory.mktemp("report") / "project")


@pytest.fixture(scope="module")
def html(project: Path) -> str:
    return build_report(project).read_text(encoding="utf-8")


@pytest.fixture
def copy(project: Path, tmp_path: Path) -> Path:
    """A copy of the project that a test may change."""
    return Path(shutil.copytree(project, tmp_path / "project"))


def test_report_is_written_to_reports_index_html_by_default(project: Path, html: str) -> None:
    assert (project / "reports" / "index.html").read_text(encoding="utf-8") == html


def test_every_section_is_there_with_its_images(html: str) -> None:
    for section in ("overview", "qa", "near-copies", "classes", "augmentation", "training", "benchmark"):
        assert f'<section id="{section}">' in html
    for folder in unique_safe_names(TINY_CLASSES):
        assert len(Tags(part(html, f"class-{folder}")).all("img")) == 3
    assert "not computed" not in html
    images = Tags(html).all("img")
    assert len(images) == images_in_report()
    for attrs in images:
        assert attrs["alt"]
        assert attrs["src"].startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(attrs["src"].split(",", 1)[1]))) as png:
            png.verify()


def test_qa_table_shows_every_gate_and_the_failing_class(html: str) -> None:
    qa = part(html, "qa")
    for gate in GATES:
        assert gate.title in qa
    assert all(name in qa for name in TINY_CLASSES)
    # report_inputs makes the last class's label agreement fail; the others pass every gate.
    failing = part(html, f"class-{unique_safe_names(TINY_CLASSES)[-1]}")
    assert 'badge fail' in failing and "Failed gates: Right class." in failing
    passing = part(html, f"class-{unique_safe_names(TINY_CLASSES)[0]}")
    assert 'badge pass' in passing and 'badge fail' not in passing
    assert "1 quality gate(s) failed, in 1 of 3 class(es)" in html


def test_qa_section_shows_the_classification_accuracy_score(html: str) -> None:
    section = html.split('id="cas"')[1].split("</table>")[0]
    assert "trained on synthetic only" in section and "400 steps" in section
    assert "<th>all classes</th><td class=\"num\">0.612</td><td class=\"num\">0.934</td>" in section
    assert section.count("0.875") == 3  # one row per class


def test_benchmark_shows_every_arm_gains_and_confusion(html: str) -> None:
    benchmark = part(html, "benchmark")
    for title in ("real only", "real + affine augmentation", "real + synthetic", "real + affine + synthetic",
                  "synthetic only"):
        assert f"<td>{title}</td>" in benchmark
    assert "real + synthetic vs real only" in benchmark and "95% confidence interval" in benchmark
    assert len(Tags(benchmark).all("table")) == 2 + len(ARMS)  # arms, gains, one confusion table per arm


def test_the_benchmark_says_in_words_whether_the_synthetic_images_helped(html: str) -> None:
    answer = re.search(r'<p class="answer"><strong>(.*?)</strong></p>', part(html, "benchmark"))
    assert answer and answer.group(1).startswith("Did the synthetic images help? ")


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.01, 0.03, "Did the synthetic images help? Yes, +0.020 accuracy [+0.010, +0.030], the interval above 0."),
    (-0.03, -0.01, "Did the synthetic images help? No, they made it worse: +0.020 accuracy [-0.030, -0.010]"),
    (-0.01, 0.05, "Did the synthetic images help? Not shown: +0.020 accuracy [-0.010, +0.050], the interval includes 0."),
])
def test_the_answer_follows_the_interval_of_the_accuracy_gain(low: float, high: float, expected: str) -> None:
    gains = {"augmented_vs_real_only": {"accuracy": Gain(mean=0.02, ci_low=low, ci_high=high)},
             "affine_synthetic_vs_affine": {"accuracy": Gain(mean=-0.004, ci_low=-0.01, ci_high=0.002)}}
    answer = synthetic_answer(gains)
    assert answer.startswith(expected)
    assert answer.endswith("On top of affine augmentation: Not shown: -0.004 accuracy [-0.010, +0.002], "
                           "the interval includes 0.")
    assert synthetic_answer({}) is None


def test_page_needs_nothing_outside_itself(html: str) -> None:
    tags = Tags(html)
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("data:", "#")), (tag, key, value)
    assert not tags.all("link")
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http" not in without_images and "url(" not in without_images and "@import" not in without_images


def test_missing_benchmark_gives_a_note(copy: Path) -> None:
    shutil.rmtree(copy / "reports" / "benchmark")
    html = build_report(copy).read_text(encoding="utf-8")
    assert "not computed: run <code>dvc repro benchmark</code>" in part(html, "benchmark")
    assert "not computed" not in html.replace(part(html, "benchmark"), "")
    assert len(Tags(html).all("img")) == images_in_report() - 3  # no arm chart, no ROC, no sweep


def test_missing_roc_curves_alone_give_a_note_beside_the_tables(copy: Path) -> None:
    shutil.rmtree(copy / "reports" / "benchmark" / "roc")
    (copy / "reports" / "benchmark" / "sweep.csv").unlink()  # optional: no note for it
    benchmark = part(build_report(copy).read_text(encoding="utf-8"), "benchmark")
    assert benchmark.count("not computed: run <code>dvc repro benchmark</code>") == 1
    assert "<td>real + synthetic</td>" in benchmark and len(Tags(benchmark).all("img")) == 1  # the arm chart


def test_a_single_seed_has_no_spread(copy: Path) -> None:
    """One seed gives no standard deviation (null in metrics.json, empty in sweep.csv): means only."""
    path = copy / "reports/benchmark/metrics.json"
    metrics = json.loads(path.read_text())
    for arm in ARMS:
        for figure in ("accuracy", "balanced_accuracy", "auc"):
            metrics[arm][figure].update(std=None, values=metrics[arm][figure]["values"][:1])
    path.write_text(json.dumps(metrics))
    sweep = pd.read_csv(copy / "reports/benchmark/sweep.csv").assign(accuracy_std=None)
    sweep.to_csv(copy / "reports/benchmark/sweep.csv", index=False)
    benchmark = part(build_report(copy).read_text(encoding="utf-8"), "benchmark")
    arms_table = benchmark.split("<table>")[1].split("</table>")[0]
    assert "±" not in arms_table and len(Tags(benchmark).all("img")) == 3  # arm chart, ROC and sweep


def test_an_empty_project_gives_a_page_of_notes(tmp_path: Path) -> None:
    html = build_report(tmp_path, tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for stage in ("ingest", "qa", "train", "benchmark"):
        assert f"not computed: run <code>dvc repro {stage}</code>" in html
    assert not Tags(html).all("img")


def test_missing_synthetic_images_and_histograms_give_notes_per_class(copy: Path) -> None:
    shutil.rmtree(copy / "data" / "synthetic")
    shutil.rmtree(copy / "reports" / "qa" / "histograms")
    html = build_report(copy).read_text(encoding="utf-8")
    for folder in unique_safe_names(TINY_CLASSES):
        article = part(html, f"class-{folder}")
        assert "dvc repro generate" in article and "dvc repro qa" in article
        assert len(Tags(article).all("img")) == 1  # the real grid


@pytest.mark.parametrize(("relative", "content", "expected"), [
    ("reports/qa/metrics.json", '{"passed": true, "classes": ', "not valid JSON"),
    ("reports/qa/metrics.json", '{"passed": true}', "classes"),
    ("reports/benchmark/metrics.json", json.dumps({"real_only": {"accuracy": {"mean": 1, "std": 0}, "n_train": 3}}),
     "auc"),
    ("reports/benchmark/roc/affine.csv", "curve,fpr\nmicro,0.0\n", "missing column(s) tpr"),
    ("reports/train/losses.tsv", "epoch\td_loss\tg_loss\n1\tlow\t2.0\n", "column d_loss must hold numbers"),
    ("reports/qa/histograms/green_stripes.csv", "intensity,red_real\n8,0.1\n", "missing column(s) red_synthetic"),
])
def test_malformed_input_is_one_line_naming_the_file(copy: Path, relative: str, content: str, expected: str) -> None:
    (copy / relative).write_text(content)
    with pytest.raises(DataError) as caught:
        build_report(copy)
    message = str(caught.value)
    assert message.startswith(str(copy / relative)) and expected in message and "\n" not in message


def test_unreadable_listed_image_names_the_file(copy: Path) -> None:
    chosen = choose_rows(read_manifest(copy / "data/synthetic").query("label == 0"), 0)
    broken = copy / "data/synthetic" / chosen["path"].iloc[0]
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match=re.escape(str(broken))):
        build_report(copy)


def test_same_inputs_give_identical_bytes_from_the_cli(project: Path, html: str, tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    done = subprocess.run([sys.executable, "-m", "histosynth.cli", "report", "--root", str(project), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == html.encode("utf-8")


def test_cli_reports_malformed_input_as_one_error_line(copy: Path) -> None:
    (copy / "reports/index.html").unlink(missing_ok=True)
    (copy / "reports/benchmark/metrics.json").write_text("{")
    done = subprocess.run([sys.executable, "-m", "histosynth.cli", "report", "--root", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_INPUT
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in done.stderr.splitlines() if "metrics.json" in line]
    assert len(errors) == 1 and str(copy / "reports/benchmark/metrics.json") in errors[0]
    assert not (copy / "reports" / "index.html").exists()


def test_class_names_are_escaped(tmp_path: Path) -> None:
    classes = ('<b>Ki-67</b> "hot"', "Épithélium & co", "stroma")
    project = write_report_inputs(tmp_path / "project", classes)
    html = build_report(project).read_text(encoding="utf-8")
    assert "<b>Ki-67</b>" not in html
    assert "&lt;b&gt;Ki-67&lt;/b&gt; &#34;hot&#34;" in html and "Épithélium &amp; co" in html


def test_every_gate_is_explained() -> None:
    for gate in GATES:
        assert gate.title and len(gate.explanation) > 40


def test_sample_choice_is_seeded_and_ignores_row_order(tiny_real_dir: Path) -> None:
    rows = read_manifest(tiny_real_dir).query("label == 1 and split == 'train'")
    chosen = choose_rows(rows, 1, n=5)
    assert len(chosen) == 5 and chosen["id"].is_unique
    assert chosen["id"].tolist() == choose_rows(rows.sample(frac=1, random_state=3), 1, n=5)["id"].tolist()
    assert chosen["id"].tolist() != choose_rows(rows, 1, n=5, seed=1)["id"].tolist()
    assert len(choose_rows(rows, 1, n=1000)) == len(rows)


def test_sample_grid_holds_the_chosen_images_enlarged_pixel_for_pixel(tiny_real_dir: Path) -> None:
    rows = choose_rows(read_manifest(tiny_real_dir).query("label == 0 and split == 'train'"), 0, n=6)
    grid = np.asarray(Image.open(io.BytesIO(sample_grid(tiny_real_dir, rows, columns=4))))
    factor = enlargement(32)
    tile = 32 * factor
    assert factor >= 2 and grid.shape == (2 * tile + 3 * PADDING_PX, 4 * tile + 5 * PADDING_PX, 3)
    for index, rel in enumerate(rows["path"]):
        top, left = (PADDING_PX + (tile + PADDING_PX) * divmod(index, 4)[k] for k in (0, 1))
        expected = enlarge(read_png_rgb(tiny_real_dir / rel), factor)
        np.testing.assert_array_equal(grid[top:top + tile, left:left + tile], expected)
    assert (grid[-tile:, -tile:] == 255).all()  # the two empty places of the last row stay white


def test_confusion_table_counts_and_shares() -> None:
    rows = pd.DataFrame({"actual": ["a", "a", "a", "b", "c"], "predicted": ["a", "b", "b", "b", "a"]})
    table = confusion_table("arm", rows, ["b", "a"])
    assert table.classes == ["b", "a", "c"]  # label order first, then others as they appear
    assert table.counts == [[1, 0, 0], [2, 1, 0], [0, 1, 0]]
    assert table.shares[1] == pytest.approx([2 / 3, 1 / 3, 0.0], abs=1e-4)


def test_a_missing_project_folder_is_an_error_not_an_empty_page(tmp_path):
    from histosynth.errors import DataError

    with pytest.raises(DataError, match="no such project folder"):
        build_report(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


# -- near-copies, augmentation previews, training strip, feature classifier, arm chart -------------------


def decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_near_copy_gallery_shows_the_closest_synthetic_images_beside_their_nearest_training_images(project: Path):
    qa = load_qa_metrics(project)
    galleries = near_copy_section(project, list(TINY_CLASSES), qa)
    table = pd.read_csv(project / "reports/qa/memorisation.csv").query("source == 'synthetic'")
    assert [g.name for g in galleries] == list(TINY_CLASSES)
    for gallery in galleries:
        assert [space.space for space in gallery.spaces] == ["pixel", "feature"]
        for space in gallery.spaces:
            rows = table[table["class"] == gallery.name].sort_values([f"{space.space}_ratio", "id"])
            assert [p.synthetic_id for p in space.pairs] == rows["id"].head(4).tolist()
            assert [p.ratio for p in space.pairs] == pytest.approx(rows[f"{space.space}_ratio"].head(4).tolist())
            assert space.threshold == qa.classes[gallery.name].figure(f"near_copy_ratio_threshold_{space.space}")
        # the class's first synthetic image copies an affine child: ratio 0, found in data/augmented, flagged
        first = gallery.spaces[0].pairs[0]
        assert first.ratio == 0 and first.flagged and first.nearest_id.startswith("aug_")
        assert first.nearest_kind == f"affine child of {first.nearest_id.removeprefix('aug_')}"
        image = decoded(first.image)
        half = (image.shape[1] - 4 * PADDING_PX) // 2
        np.testing.assert_array_equal(image[:, :half], image[:, -half:])  # a copy beside its original
        other = gallery.spaces[0].pairs[-1]
        assert other.nearest_kind in ("real training image", f"affine child of {other.nearest_id.removeprefix('aug_')}")


def test_near_copies_in_the_page(html: str) -> None:
    section = part(html, "near-copies")
    assert section.count('<span class="badge fail">near-copy</span>') >= len(TINY_CLASSES)
    assert "Closest in pixels" in section and "Closest in the feature classifier&#39;s view" in section
    assert "affine child of train_0_0000" in section or "affine child of train_0_" in section


def test_near_copy_columns_are_read_by_name_whatever_the_spaces_and_the_chunks(project: Path, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch):
    root = Path(shutil.copytree(project, tmp_path / "project"))
    csv = root / "reports/qa/memorisation.csv"
    table = pd.read_csv(csv)
    renamed = table.rename(columns=lambda c: c.replace("feature", "embedding")).assign(nearest_train_source="x")
    renamed[list(reversed(renamed.columns))].to_csv(csv, index=False)
    expected = near_copy_section(root, list(TINY_CLASSES), None)
    assert [s.title for s in expected[0].spaces] == ["in embedding space", "in pixels"]  # in column order
    assert all(pair.flagged is None for g in expected for s in g.spaces for pair in s.pairs)  # no thresholds given
    monkeypatch.setattr(nearcopies, "CHUNK_ROWS", 5)  # the closest rows survive reading in small chunks
    assert near_copy_section(root, list(TINY_CLASSES), None) == expected


def test_a_missing_input_leaves_its_section_saying_which_command_makes_it(copy: Path) -> None:
    removed = {"reports/qa/memorisation.csv": ("near-copies", "qa"), "reports/augment": ("augmentation", "augment"),
               "reports/train/samples": ("training", "train"), "reports/featurenet": ("qa", "featurenet")}
    for relative in removed:
        target = copy / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    html = build_report(copy).read_text(encoding="utf-8")
    for section, stage in removed.values():
        assert part(html, section).count(f"not computed: run <code>dvc repro {stage}</code>") == 1, (section, stage)
    assert html.count("not computed") == len(removed)
    # gone: the near-copy pairs, the previews, the per-epoch grids, the feature classifier curve
    assert len(Tags(html).all("img")) == images_in_report() - len(TINY_CLASSES) * (2 * 4 + 1) - len(GRID_EPOCHS) - 1


def test_nearest_images_that_are_affine_children_need_the_augmented_folder(copy: Path) -> None:
    shutil.rmtree(copy / "data/augmented")
    assert near_copy_section(copy, list(TINY_CLASSES), None) == Missing("augment")


def test_a_stale_memorisation_table_says_to_rerun_qa(copy: Path) -> None:
    csv = copy / "reports/qa/memorisation.csv"
    table = pd.read_csv(csv)
    table.loc[0, "nearest_train_id_pixel"] = "gone_0001"
    table.to_csv(csv, index=False)
    view = near_copy_section(copy, list(TINY_CLASSES), None)
    assert "gone_0001" in view.reason and "dvc repro qa" in view.reason


@pytest.mark.parametrize(("content", "expected"), [
    ("class,source,id,pixel_distance\nred blobs,synthetic,a,0.1\n", "<space>_ratio with nearest_train_id_<space>"),
    ("class,source,id,pixel_ratio,nearest_train_id_pixel\nred blobs,synthetic,a,low,b\n",
     "column pixel_ratio must hold numbers"),
])
def test_malformed_memorisation_table_is_one_line_naming_the_file(copy: Path, content: str, expected: str) -> None:
    (copy / "reports/qa/memorisation.csv").write_text(content)
    with pytest.raises(DataError) as caught:
        near_copy_section(copy, list(TINY_CLASSES), None)
    assert str(caught.value).startswith(str(copy / "reports/qa/memorisation.csv")) and expected in str(caught.value)


def test_the_strip_shows_evenly_spread_epochs_with_first_and_last(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    for epoch in range(1, 26):
        (folder / f"epoch_{epoch:04d}.png").write_bytes(encode_png(np.full((8, 8, 3), epoch, dtype=np.uint8)))
    (folder / ".epoch_0026.png.tmp-1").write_bytes(b"partial")  # a killed run's leftover is not a grid
    strip = progress_strip(folder, most=5)
    assert [epoch for epoch, _ in strip] == [1, 7, 13, 19, 25]
    assert [int(decoded(png)[0, 0, 0]) for _, png in strip] == [1, 7, 13, 19, 25]
    assert [epoch for epoch, _ in progress_strip(folder, most=30)] == list(range(1, 26))


def test_training_section_shows_the_strip_of_per_epoch_grids(html: str) -> None:
    training = part(html, "training")
    assert [f"epoch {e}" for e in GRID_EPOCHS] == re.findall(r"<figcaption>(epoch \d+)</figcaption>", training)
    alts = [attrs["alt"] for attrs in Tags(training).all("img")]
    assert alts[2:] == [f"generated samples after epoch {e}" for e in GRID_EPOCHS]


def test_augmentation_previews_are_shown_per_class(project: Path, html: str) -> None:
    section = part(html, "augmentation")
    images = Tags(section).all("img")
    assert [attrs["alt"] for attrs in images] == [f"augmentation preview of {name}" for name in TINY_CLASSES]
    for attrs, folder in zip(images, unique_safe_names(TINY_CLASSES)):
        shown = decoded(base64.b64decode(attrs["src"].split(",", 1)[1]))
        np.testing.assert_array_equal(shown, read_png_rgb(project / "reports/augment" / f"{folder}.png"))


def test_the_feature_classifier_curve_is_in_the_qa_section(html: str) -> None:
    alts = [attrs["alt"] for attrs in Tags(part(html, "qa")).all("img")]
    assert alts == ["feature classifier training loss and validation accuracy per epoch"]


def test_the_arm_chart_shows_every_arm_in_metrics_json(copy: Path) -> None:
    path = copy / "reports/benchmark/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["mixup_only"] = metrics["real_only"]  # an arm this code has never heard of
    path.write_text(json.dumps(metrics))
    view = benchmark_section(copy, list(TINY_CLASSES))
    assert [row.title for row in view.arms] == ["real only", "real + affine augmentation", "real + synthetic",
                                                "real + affine + synthetic", "synthetic only", "mixup only"]
    without = figures.arm_intervals([(row.title, {"accuracy": row.metrics.accuracy, "auc": row.metrics.auc})
                                     for row in view.arms[:-1]])
    assert decoded(view.chart).shape[0] > decoded(without).shape[0]  # one more row of intervals


def test_curation_shows_kept_and_rejected_candidates_per_class(html: str) -> None:
    start = html.index('id="curation"')
    curation = html[start:html.index("</section>", start)]
    for name in TINY_CLASSES:
        assert f"<h3>{name}</h3>" in curation
    assert curation.count('alt="kept candidates of') == curation.count('alt="rejected candidates of') == len(TINY_CLASSES)
    assert "3 kept of 6 candidates. Failed: 3 not recognised as its class, 1 a near-copy." in curation


def test_missing_curation_scores_give_a_note(copy: Path) -> None:
    shutil.rmtree(copy / "reports" / "curate")
    html = build_report(copy).read_text(encoding="utf-8")
    assert "not computed: run <code>dvc repro curate</code>" in part(html, "curation")
    assert len(Tags(html).all("img")) == images_in_report() - 2 * len(TINY_CLASSES)
