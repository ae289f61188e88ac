"""Inputs of the package stage, written the way the pipeline writes them (no GAN is trained):
ingest-style real images, generate-style synthetic images with MD5SUMS and manifest, a GAN
training record and a QA verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import textured_image, write_image_folder
from histosynth.config import Params, params_from_mapping
from histosynth.fsutil import unique_safe_names
from histosynth.generate.writer import image_id
from histosynth.generators.training.checkpoint import write_record
from histosynth.images import encode_png, md5_bytes
from histosynth.manifest import write_manifest
from histosynth.md5sums import write_md5sums
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5

# Quotes, unicode, spaces, SQL and CSV trouble, a name that pandas would read as missing.
AWKWARD_CLASSES = ("Épithélium \"DAB+\"", "stroma, it's 'loose'", "NA")
CHECKPOINT_MD5 = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class PackageInputs:
    real: Path
    synthetic: Path
    gan: Path
    qa_metrics: Path


def write_synthetic_folder(root: Path, classes: tuple[str, ...], n_per_class: int, size: int, seed: int) -> Path:
    """PNGs, an MD5SUMS per class folder and a manifest with the columns `generate` writes."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, (name, folder) in enumerate(zip(classes, unique_safe_names(classes))):
        (root / folder).mkdir(parents=True)
        sums = []
        for index in range(n_per_class):
            data = encode_png(textured_image(label, size, rng))
            ident = image_id(folder, index)
            (root / folder / f"{ident}.png").write_bytes(data)
            sums.append((f"{ident}.png", md5_bytes(data)))
            rows.append(dict(id=ident, path=f"{folder}/{ident}.png", class_name=name, label=label, split="train",
                             source="synthetic", md5=md5_bytes(data), origin=f"gan:{CHECKPOINT_MD5}", seed=7,
                             latent_index=index, checkpoint_md5=CHECKPOINT_MD5, arch="dcgan", device="cpu",
                             precision="fp32"))
        write_md5sums(root / folder, sums)
    write_manifest(pd.DataFrame(rows), root)
    return root


def qa_metrics(classes: tuple[str, ...], passed: bool, synthetic: Path) -> dict:
    """A QA verdict as the qa stage writes it, for the synthetic set in ``synthetic``."""
    gates = {"colour_kl": {"passed": passed, "threshold": 0.05}, "fid": {"passed": True, "threshold": 1.0}}
    return {"passed": passed, "failed_gates": 0 if passed else len(classes),
            SYNTHETIC_SET_KEY: synthetic_set_md5(synthetic),
            "classes": {name: {"kl": 0.01, "kl_real_floor": 0.02, "fid": 0.5, "fid_real_floor": 0.4,
                               "label_agreement": 1.0, "coverage": 0.9, "passed": passed, "gates": gates}
                        for name in classes}}


def write_package_inputs(root: Path, classes: tuple[str, ...] = AWKWARD_CLASSES, per_split: int = 3,
                         n_synthetic: int = 4, size: int = 28, qa_passed: bool = True) -> PackageInputs:
    real = write_image_folder(root / "real", {"train": per_split, "val": per_split, "test": per_split}, classes, size)
    synthetic = write_synthetic_folder(root / "synthetic", classes, n_synthetic, size, seed=1)
    gan = root / "gan"
    gan.mkdir()
    write_record(gan, {"arch": "dcgan", "class_names": list(classes), "n_classes": len(classes), "epoch": 3,
                       "image_size": size, "latent_dim": 8, "width": 4,
                       "params": {"batch_size": 4, "g_lr": 2e-4, "d_lr": 2e-4, "loss": "bce", "epochs": 3},
                       "train_data": {"n_images": len(classes) * per_split}})
    metrics_file = root / "qa" / "metrics.json"
    metrics_file.parent.mkdir()
    metrics_file.write_text(json.dumps(qa_metrics(classes, qa_passed, synthetic), indent=2))
    return PackageInputs(real, synthetic, gan, metrics_file)


def refresh_qa_verdict(inputs: PackageInputs) -> None:
    """Point the QA verdict at the synthetic set as it is now (after a test changed it on purpose)."""
    metrics = json.loads(inputs.qa_metrics.read_text())
    metrics[SYNTHETIC_SET_KEY] = synthetic_set_md5(inputs.synthetic)
    inputs.qa_metrics.write_text(json.dumps(metrics, indent=2))


def package_params(**package: object) -> Params:
    return params_from_mapping({"package": package, "qa": {"enforce": True}})
