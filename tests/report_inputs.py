"""Every input of the HTML report, written small and in the formats the stages write (no stage is run):
real, augmented and synthetic image folders with manifests, augmentation previews, QA metrics, histogram
tables and nearest-training-image distances computed from those images, the feature classifier's history,
GAN training curves and per-epoch samples, and benchmark results computed from simulated classifier scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from skimage.util import montage
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import label_binarize

from conftest import TINY_CLASSES, textured_image, write_image_folder
from histosynth.config.qa import QaParams
from histosynth.dataset import load_image_set
from histosynth.fsutil import unique_safe_names
from histosynth.images import encode_png, md5_bytes
from histosynth.images import read_png_rgb
from histosynth.manifest import class_names_of, read_manifest, write_manifest
from histosynth.qa.floors import floor_keys
from histosynth.qa.gates import evaluate_gates
from histosynth.qa.metrics import colour_kl
from histosynth.qa.report import overlay_table

ARMS = ("real_only", "affine", "augmented", "affine_synthetic", "synthetic_only")
SEEDS = (0, 1, 2)
BINS = 16
IMAGE_SIZE = 32
SYNTHETIC_PER_CLASS = 6
NEAR_COPY_SPACES = ("pixel", "feature")
GRID_EPOCHS = (2, 4, 6, 8, 10)


def images_in_report(n_classes: int = len(TINY_CLASSES)) -> int:
    """<img> in the report of write_report_inputs: per class a real grid, a synthetic grid, a histogram, an
    augmentation preview and 4 near-copy pairs per distance space; the feature classifier's curves; the GAN's
    curves, final samples and per-epoch grids; the benchmark's arm chart, ROC curves and sweep; per class the
    curation's kept and rejected candidates."""
    per_class = 3 + 1 + 4 * len(NEAR_COPY_SPACES)
    return per_class * n_classes + 2 * n_classes + 1 + 2 + len(GRID_EPOCHS) + 3  # + kept and rejected grids


def write_report_inputs(root: Path, classes: tuple[str, ...] = TINY_CLASSES) -> Path:
    """A project folder at ``root`` holding every input of the report; the failing gate is the last class's,
    and each class's first synthetic image is a copy of one of its affine children."""
    real = write_image_folder(root / "data/real", {"train": 8, "val": 2, "test": 4}, classes, IMAGE_SIZE)
    augmented = write_augmented_folder(root / "data/augmented", real, root / "reports/augment")
    synthetic = write_synthetic_folder(root / "data/synthetic", classes, SYNTHETIC_PER_CLASS, copies_of=augmented)
    write_qa_report(root / "reports/qa", real, synthetic, augmented)
    write_curation_report(root / "reports/curate", root / "data/candidates", synthetic)
    write_featurenet_history(root / "reports/featurenet")
    write_training_report(root / "reports/train", len(classes))
    write_benchmark_report(root / "reports/benchmark", classes, n_test=4)
    return root


def write_augmented_folder(root: Path, real_dir: Path, preview_dir: Path) -> Path:
    """``root/<class folder>/*.png`` and a manifest as the augment stage writes them: every real training image
    (source original, same id) and a mirrored child of each (source affine, origin = the parent's id); and a
    preview per class in ``preview_dir``: the originals in the top row, their children below."""
    real = read_manifest(real_dir).query("split == 'train'")
    rows = []
    preview_dir.mkdir(parents=True)
    folders = unique_safe_names(class_names_of(real))
    for (label, name), group in real.groupby(["label", "class_name"]):
        folder = folders[label]
        (root / folder).mkdir(parents=True)
        originals, children = [], []
        for parent in group.itertuples():
            image = read_png_rgb(real_dir / parent.path)
            for ident, pixels, source in ((parent.id, image, "original"), (f"aug_{parent.id}", image[:, ::-1], "affine")):
                data = encode_png(np.ascontiguousarray(pixels))
                (root / folder / f"{ident}.png").write_bytes(data)
                rows.append(dict(id=ident, path=f"{folder}/{ident}.png", class_name=name, label=label, split="train",
                                 source=source, md5=md5_bytes(data), origin=parent.id, ops="" if source == "original"
                                 else "hflip"))
            originals.append(image)
            children.append(np.ascontiguousarray(image[:, ::-1]))
        preview = montage(np.stack(originals + children), grid_shape=(2, len(originals)), padding_width=2,
                          fill=(255, 255, 255), channel_axis=-1)
        (preview_dir / f"{folder}.png").write_bytes(encode_png(preview))
    write_manifest(pd.DataFrame(rows), root)
    return root


def write_synthetic_folder(root: Path, classes: tuple[str, ...], n_per_class: int, seed: int = 1,
                           copies_of: Path | None = None) -> Path:
    """``root/<class folder>/<id>.png`` and a manifest, as the generate stage writes them; with ``copies_of``
    (an augmented folder), each class's first image is a copy of that class's first affine child."""
    rng = np.random.default_rng(seed)
    children = None if copies_of is None else read_manifest(copies_of).query("source == 'affine'")
    rows = []
    for label, (name, folder) in enumerate(zip(classes, unique_safe_names(classes))):
        (root / folder).mkdir(parents=True)
        for index in range(n_per_class):
            if index == 0 and children is not None:
                data = (copies_of / children.query("label == @label")["path"].iloc[0]).read_bytes()
            else:
                data = encode_png(textured_image(label, IMAGE_SIZE, rng))
            ident = f"syn_{folder}_{index:06d}"
            (root / folder / f"{ident}.png").write_bytes(data)
            rows.append(dict(id=ident, path=f"{folder}/{ident}.png", class_name=name, label=label, split="train",
                             source="synthetic", md5=md5_bytes(data), origin="gan:test", seed=0, latent_index=index))
    write_manifest(pd.DataFrame(rows), root)
    return root


def floor_of(metric: str, value: float) -> dict[str, float]:
    """A floor without spread, under the keys QA writes (mean, sd, lower and upper quantile)."""
    return dict(zip(floor_keys(metric), (value, 0.0, value, value)))


def write_qa_report(report: Path, real_dir: Path, synthetic_dir: Path, augmented_dir: Path) -> None:
    """metrics.json and histograms/<class folder>.csv: colour KL and histograms measured on the images,
    the other figures set by hand (the last class recognised badly), every verdict from the real gates;
    memorisation.csv: nearest and second-nearest training images (real and augmented) measured on the images."""
    train, synthetic = load_image_set(real_dir, "train"), load_image_set(synthetic_dir)
    (report / "histograms").mkdir(parents=True)
    thresholds = write_memorisation_table(report / "memorisation.csv", real_dir, synthetic_dir, augmented_dir)
    names = train.class_names
    figures = {}
    for label, (name, folder) in enumerate(zip(names, unique_safe_names(names))):
        real_images, synthetic_images = train.of_class(label), synthetic.of_class(label)
        half = len(real_images) // 2
        kl = colour_kl.compute(real_images, synthetic_images, BINS)
        floor = colour_kl.compute(real_images[:half], real_images[half:], BINS)
        # the KL floor's spread is set so that the measured KL passes (3 x its upper quantile)
        figures[name] = {**kl, **floor_of("kl", floor["kl"]), "kl_real_floor_q_high": kl["kl"], "fid": 1.5,
                         **floor_of("fid", 1.0), "label_agreement": 0.2 if label == len(names) - 1 else 0.95,
                         **floor_of("label_agreement", 1.0), "coverage": 0.9, **floor_of("coverage", 0.95),
                         "duplicate_share": 0.0, "memorised_share_pixel": 0.0, "memorised_share_feature": None,
                         **{f"near_copy_ratio_threshold_{space}": thresholds[space] for space in NEAR_COPY_SPACES}}
        real_p, synthetic_p = (colour_kl.smoothed_distribution(colour_kl.colour_histograms(images, BINS), 1.0)
                               for images in (real_images, synthetic_images))
        rows = pd.DataFrame([dict(channel=channel, bin=b, real=real_p[c, b], synthetic=synthetic_p[c, b])
                             for c, channel in enumerate(colour_kl.CHANNELS) for b in range(BINS)])
        overlay_table(rows, BINS).to_csv(report / "histograms" / f"{folder}.csv", index=False)
    results = evaluate_gates(figures, QaParams())
    classes = {name: {**values, "passed": not any(r.failed for r in results if r.class_name == name),
                      "gates": {r.gate.name: r.as_json() for r in results if r.class_name == name}}
               for name, values in figures.items()}
    metrics = {"passed": not any(r.failed for r in results), "failed_gates": sum(r.failed for r in results),
               "classes": classes, "fid": {"fid": 1.4, "fid_real_floor": 0.9},
               "featurenet": {"real_val_accuracy": 0.9, "feature_dim": 64},
               "cas": {"synthetic_only": 0.612, "real_only": 0.934, "gap": 0.322, "steps": 400, "n_val": 24,
                       "per_class": {name: {"synthetic_only": 0.5, "real_only": 0.875, "n_val": 8} for name in names}}}
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2))


def write_memorisation_table(path: Path, real_dir: Path, synthetic_dir: Path, augmented_dir: Path) -> dict:
    """Per synthetic and held-out real image, the distance to its nearest training image (real or affine child)
    over the second-nearest's, in pixels and in 4x4-block colour means (a stand-in for features), as QA writes
    it; returns the near-copy ratio threshold per space (the lowest held-out real ratio)."""
    train = read_manifest(augmented_dir)
    heldout = read_manifest(real_dir).query("split != 'train'").assign(source="real_heldout")
    queries = pd.concat([read_manifest(synthetic_dir), heldout])
    spaces = {"pixel": lambda x: x.reshape(len(x), -1),
              "feature": lambda x: x.reshape(len(x), IMAGE_SIZE // 4, 4, IMAGE_SIZE // 4, 4, 3).mean(axis=(2, 4))
              .reshape(len(x), -1)}

    def pixels(folder: Path, rows: pd.DataFrame) -> np.ndarray:
        return np.stack([read_png_rgb(folder / rel) for rel in rows["path"]]).astype(np.float64) / 255

    folders = {"synthetic": synthetic_dir, "real_heldout": real_dir}
    query_images = np.concatenate([pixels(folders[source], rows) for source, rows in queries.groupby("source", sort=False)])
    train_images = pixels(augmented_dir, train)
    table = queries[["class_name", "source", "id"]].rename(columns={"class_name": "class"}).reset_index(drop=True)
    thresholds = {}
    for space, embed in spaces.items():
        distances = cdist(embed(query_images), embed(train_images)) / np.sqrt(embed(train_images[:1]).shape[1])
        order = np.argsort(distances, axis=1, kind="stable")
        nearest_two = np.take_along_axis(distances, order[:, :2], axis=1)
        table[f"{space}_distance"] = nearest_two[:, 0]
        d1, d2 = nearest_two[:, 0], nearest_two[:, 1]
        table[f"{space}_ratio"] = np.divide(d1, d2, out=np.zeros_like(d1), where=d1 > 0)
        table[f"nearest_train_id_{space}"] = train["id"].to_numpy()[order[:, 0]]
        thresholds[space] = float(table.loc[table["source"] == "real_heldout", f"{space}_ratio"].min())
    table.to_csv(path, index=False, lineterminator="\n")
    return thresholds


def write_curation_report(report: Path, candidates: Path, synthetic: Path) -> None:
    """data/candidates (a copy of the synthetic images) and reports/curate as the curate stage writes them: per
    class the first half kept, the other half rejected (the last one as a near-copy, the others unrecognised)."""
    shutil.copytree(synthetic, candidates)
    rows = read_manifest(candidates)[["id", "class_name", "label"]]
    rank = rows.groupby("label").cumcount()
    half = SYNTHETIC_PER_CLASS // 2
    report.mkdir(parents=True)
    rows.assign(confidence=np.where(rank < half, 0.9, 0.2), realism=1.5, realism_votes=1.0, copy_ratio=0.8,
                near_copy=rank == SYNTHETIC_PER_CLASS - 1, passed_confidence=rank < half, passed_realism=True,
                passed_copy=rank != SYNTHETIC_PER_CLASS - 1, curation=np.where(rank < half, "kept", "")
                ).to_csv(report / "scores.csv", index=False)
    (report / "metrics.json").write_text(json.dumps({"enabled": True}))


def write_featurenet_history(report: Path, epochs: int = 8) -> None:
    report.mkdir(parents=True)
    epoch = np.arange(1, epochs + 1)
    pd.DataFrame({"epoch": epoch, "train_loss": 1.2 / epoch, "val_accuracy": 0.9 - 0.5 / epoch}).to_csv(
        report / "history.csv", index=False)


def write_training_report(report: Path, n_classes: int, epochs: int = 10) -> None:
    """losses.tsv, probe.tsv, metrics.json, samples_final.png and samples/epoch_NNNN.png (each epoch's grid a
    little less noisy) as the train stage writes them."""
    report.mkdir(parents=True)
    epoch = np.arange(1, epochs + 1)
    pd.DataFrame({"epoch": epoch, "d_loss": 1 / epoch, "g_loss": 2 - 1 / epoch}).to_csv(
        report / "losses.tsv", sep="\t", index=False)
    probed = epoch[epoch % 2 == 0]
    pd.DataFrame({"epoch": probed, "real_vs_fake_accuracy": 0.5 + 0.4 / probed}).to_csv(
        report / "probe.tsv", sep="\t", index=False)
    (report / "metrics.json").write_text(json.dumps({"epochs": epochs, "device": "cpu", "wall_time_s": 3.5}))
    rng = np.random.default_rng(2)
    tiles = np.stack([textured_image(label, IMAGE_SIZE, rng) for label in range(n_classes) for _ in range(8)])
    grid = montage(tiles, grid_shape=(n_classes, 8), padding_width=2, fill=(255, 255, 255), channel_axis=-1)
    (report / "samples_final.png").write_bytes(encode_png(grid))
    (report / "samples").mkdir()
    for epoch in GRID_EPOCHS:
        noise = rng.integers(0, 256, grid.shape, dtype=np.uint8)
        blend = (grid * (epoch / epochs) + noise * (1 - epoch / epochs)).astype(np.uint8)
        (report / "samples" / f"epoch_{epoch:04d}.png").write_bytes(encode_png(blend))


def write_benchmark_report(report: Path, classes: tuple[str, ...], n_test: int) -> None:
    """metrics.json, roc/<arm>.csv, confusion/<arm>.csv and sweep.csv from simulated class scores
    (each arm's scores favour the true class by its own margin), measured with scikit-learn."""
    (report / "roc").mkdir(parents=True)
    (report / "confusion").mkdir()
    actual = np.repeat(np.arange(len(classes)), n_test)
    onehot = label_binarize(actual, classes=range(len(classes)))
    metrics: dict = {}
    for index, arm in enumerate(ARMS):
        accuracies, aucs, pooled_scores, predictions = [], [], [], []
        for seed in SEEDS:
            rng = np.random.default_rng([index, seed])
            scores = rng.random((len(actual), len(classes))) + (0.2 + 0.2 * index) * onehot
            scores /= scores.sum(axis=1, keepdims=True)
            predicted = scores.argmax(axis=1)
            accuracies.append(float((predicted == actual).mean()))
            aucs.append(float(roc_auc_score(actual, scores, multi_class="ovr")))
            pooled_scores.append(scores)
            predictions.append(predicted)
        metrics[arm] = {name: _over_seeds(v) for name, v in
                        (("accuracy", accuracies), ("balanced_accuracy", accuracies), ("auc", aucs))}
        metrics[arm]["n_train"] = 24 + 8 * index
        scores, truth = np.concatenate(pooled_scores), np.tile(onehot, (len(SEEDS), 1))
        curves = [("micro", *roc_curve(truth.ravel(), scores.ravel())[:2])]
        curves += [(name, *roc_curve(truth[:, c], scores[:, c])[:2]) for c, name in enumerate(classes)]
        pd.concat([pd.DataFrame({"curve": name, "fpr": fpr, "tpr": tpr}) for name, fpr, tpr in curves]).to_csv(
            report / "roc" / f"{arm}.csv", index=False)
        pd.DataFrame({"actual": np.asarray(classes)[np.tile(actual, len(SEEDS))],
                      "predicted": np.asarray(classes)[np.concatenate(predictions)],
                      "seed": np.repeat(SEEDS, len(actual))}).to_csv(
            report / "confusion" / f"{arm}.csv", index=False)
    metrics["gains"] = {f"augmented_vs_{base}": {name: _gain(metrics["augmented"][name]["values"],
                                                             metrics[base][name]["values"])
                                                 for name in ("accuracy", "auc")} for base in ("real_only", "affine")}
    metrics |= {"seeds": list(SEEDS), "n_test": len(actual), "classifier": "small_cnn",
                "bootstrap": {"resamples": 0, "confidence": 0.95, "method": "normal approximation over seeds"}}
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2))
    pd.DataFrame({"n_synthetic_per_class": [0, 10, 20], "accuracy_mean": [0.6, 0.7, 0.72],
                  "accuracy_std": [0.05, 0.04, 0.04]}).to_csv(report / "sweep.csv", index=False)


def _over_seeds(values: list[float]) -> dict:
    """Mean, sample std and a normal-approximation 95% interval over seeds."""
    mean, half = float(np.mean(values)), 1.96 * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return {"mean": mean, "std": float(np.std(values, ddof=1)), "values": values, "ci_low": mean - half,
            "ci_high": mean + half}


def _gain(ours: list[float], theirs: list[float]) -> dict[str, float]:
    """Mean paired difference over seeds with a normal-approximation 95% interval."""
    diff = np.subtract(ours, theirs)
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    return {"mean": float(diff.mean()), "ci_low": float(diff.mean() - half), "ci_high": float(diff.mean() + half)}
