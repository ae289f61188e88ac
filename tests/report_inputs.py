"""Every input of the HTML report, written small and in the formats the stages write (no stage is run):
real and synthetic image folders with manifests, QA metrics and histogram tables computed from those
images, GAN training curves and samples, and benchmark results computed from simulated classifier scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.util import montage
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import label_binarize

from conftest import TINY_CLASSES, textured_image, write_image_folder
from histosynth.config.qa import QaParams
from histosynth.dataset import load_image_set
from histosynth.fsutil import unique_safe_names
from histosynth.images import encode_png, md5_bytes
from histosynth.manifest import write_manifest
from histosynth.qa.floors import floor_keys
from histosynth.qa.gates import evaluate_gates
from histosynth.qa.metrics import colour_kl
from histosynth.qa.report import overlay_table

ARMS = ("real_only", "affine", "augmented", "synthetic_only")
SEEDS = (0, 1, 2)
BINS = 16
IMAGE_SIZE = 32


def images_in_report(n_classes: int = len(TINY_CLASSES)) -> int:
    """<img> in the report of write_report_inputs: per class a real grid, a synthetic grid and a histogram;
    the training curves and samples; the ROC curves; the sweep."""
    return 3 * n_classes + 2 + 1 + 1


def write_report_inputs(root: Path, classes: tuple[str, ...] = TINY_CLASSES) -> Path:
    """A project folder at ``root`` holding every input of the report; the failing gate is the last class's."""
    real = write_image_folder(root / "data/real", {"train": 8, "val": 2, "test": 4}, classes, IMAGE_SIZE)
    synthetic = write_synthetic_folder(root / "data/synthetic", classes, 6)
    write_qa_report(root / "reports/qa", real, synthetic)
    write_training_report(root / "reports/train", len(classes))
    write_benchmark_report(root / "reports/benchmark", classes, n_test=4)
    return root


def write_synthetic_folder(root: Path, classes: tuple[str, ...], n_per_class: int, seed: int = 1) -> Path:
    """``root/<class folder>/<id>.png`` and a manifest, as the generate stage writes them."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, (name, folder) in enumerate(zip(classes, unique_safe_names(classes))):
        (root / folder).mkdir(parents=True)
        for index in range(n_per_class):
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


def write_qa_report(report: Path, real_dir: Path, synthetic_dir: Path) -> None:
    """metrics.json and histograms/<class folder>.csv: colour KL and histograms measured on the images,
    the other figures set by hand (the last class recognised badly), every verdict from the real gates."""
    train, synthetic = load_image_set(real_dir, "train"), load_image_set(synthetic_dir)
    names = train.class_names
    (report / "histograms").mkdir(parents=True)
    figures = {}
    for label, (name, folder) in enumerate(zip(names, unique_safe_names(names))):
        real_images, synthetic_images = train.of_class(label), synthetic.of_class(label)
        half = len(real_images) // 2
        kl = colour_kl.compute(real_images, synthetic_images, BINS)
        floor = colour_kl.compute(real_images[:half], real_images[half:], BINS)
        # the KL floor's spread is set so that the measured KL passes (3 x its upper quantile)
        figures[name] = {**kl, **floor_of("kl", floor["kl"]), "kl_real_floor_q_high": kl["kl"], "fid": 1.5, **floor_of("fid", 1.0),
                         "label_agreement": 0.2 if label == len(names) - 1 else 0.95,
                         **floor_of("label_agreement", 1.0), "coverage": 0.9, **floor_of("coverage", 0.95),
                         "duplicate_share": 0.0, "memorised_share_pixel": 0.0, "memorised_share_feature": None}
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
               "featurenet": {"real_val_accuracy": 0.9, "feature_dim": 64}}
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2))


def write_training_report(report: Path, n_classes: int, epochs: int = 10) -> None:
    """losses.tsv, probe.tsv, metrics.json and samples_final.png as the train stage writes them."""
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
