"""A small package database for the SQL tests: class names built to break hand-made SQL.

The metadata follows the package schema (histosynth.package.schema); the GAN record and the
QA metrics have the shape of models/gan/record.json and reports/qa/metrics.json.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from histosynth.fsutil import unique_safe_names
from histosynth.package.schema import validate_metadata

TRICKY_CLASSES = (
    "O'Brien \"quoted\" `ticks`",
    "back\\slash \\' \\\\ \\n \\0 \\%",
    "Épithélium – 細胞 😀",
    "x'); DROP TABLE images; --",
    "100% %s %(name)s %%",
    "SELECT",
    "NULL",
    "line\nbreak\r\ttab",
    "stroma",
    "stroma ",
    "Stroma",
)
RUN = "0123456789abcdef0123456789abcdef"


def md5_of(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def tricky_metadata(classes: tuple[str, ...] = TRICKY_CLASSES, n_real: int = 2, n_synthetic: int = 2) -> pd.DataFrame:
    """Package metadata: per class ``n_real`` real images (train, val, test...) and ``n_synthetic`` GAN images."""
    rows = []
    for label, (name, folder) in enumerate(zip(classes, unique_safe_names(classes))):
        for i in range(n_real):
            image_id = f"real_{label}_{i}" + ("_'%\"" if i == 0 else "")
            rows.append(dict(id=image_id, source="real", split=("train", "val", "test")[i % 3],
                             group=f"patient {name} {i}", origin=f"folder:/data/{name}/{i}.tif", generator_run=None, arch=None, seed=None,
                             latent_index=None, label=label, class_name=name, class_folder=folder))
        for i in range(n_synthetic):
            rows.append(dict(id=f"syn_{folder}_{i:06d}", source="synthetic", split="train", group=None,
                             origin=f"gan:{RUN}",
                             generator_run=RUN, arch="dcgan", seed=7, latent_index=i, label=label, class_name=name,
                             class_folder=folder, confidence=0.5 + i / (4 * n_synthetic), realism=1.0 + i,
                             copy_ratio=0.9, curation="kept" if i else "filled",
                             edit_of=f"real_{label}_0" + "_'%\"" if i % 2 else None))
    frame = pd.DataFrame(rows)
    frame["file_path"] = "images/" + frame["class_folder"] + "/" + frame["id"] + ".png"
    frame["md5"] = [md5_of(path) for path in frame["file_path"]]
    frame["width"] = 32
    frame["height"] = 32
    frame = frame.sort_values(["label", "source", "id"], kind="stable")
    columns = ["id", "file_path", "class_name", "class_folder", "label", "source", "split", "group", "md5", "width",
               "height", "origin", "generator_run", "arch", "seed", "latent_index", "edit_of", "confidence",
               "realism", "copy_ratio", "curation"]
    frame = frame.reindex(columns=columns).astype({"seed": "Int64", "latent_index": "Int64", "edit_of": "str",
                                                   "confidence": "float64",
                                                   "realism": "float64", "copy_ratio": "float64", "curation": "str"})
    return validate_metadata(frame.reset_index(drop=True))


def gan_record(classes: tuple[str, ...] = TRICKY_CLASSES, arch: str = "dcgan") -> dict[str, Any]:
    """A training record as histosynth.generators.gan.train writes it (small network)."""
    params = {"arch": arch, "batch_size": 64, "betas": [0.5, 0.999], "checkpoint_every": 10, "d_lr": 0.0002,
              "device": "auto", "diffaugment": ["color", "translation"], "ema": 0.999, "epochs": 100,
              "g_lr": 0.0002, "gp_weight": 10.0, "latent_dim": 16, "loss": "bce", "lr_step": [10, 0.9],
              "n_critic": 1, "perceptual_weights": "", "precision": "auto", "probe_every": 10,
              "probe_max_images": 400, "seed": 0, "threads": 1, "train_on": "augmented", "weight_decay": 0,
              "width": 8}
    return {"arch": arch, "class_names": list(classes), "epoch": 100, "fingerprint": md5_of("data"),
            "generator_weights": "ema", "image_size": 32, "latent_dim": 16, "n_classes": len(classes),
            "optimizer": "adam", "params": params, "train_data": {"manifest_md5": md5_of("manifest"), "n_images": 600},
            "versions": {"histosynth": "0.1.0", "python": "3.11.7", "torch": "2.15.0"}, "width": 8}


def qa_metrics(classes: tuple[str, ...] = TRICKY_CLASSES) -> dict[str, Any]:
    """QA metrics with the shape of reports/qa/metrics.json: per class figures, floors and gate verdicts."""
    per_class = {}
    for label, name in enumerate(classes):
        kl = 0.01 * (label + 1)
        per_class[name] = {
            "n_synthetic": 2, "kl": kl, "kl_real_floor": 0.02, "fid": 1.5 + label, "fid_real_floor": None,
            "label_agreement": 1.0, "coverage": float("nan"), "passed": kl <= 0.05,
            "gates": {"colour_kl": {"passed": kl <= 0.05, "threshold": 0.05},
                      "fid": {"passed": None, "threshold": None},
                      "label_consistency": {"passed": True, "threshold": 0.8}},
        }
    return {"passed": False, "failed_gates": 1, "classes": per_class, "fid": {"fid": 2.0, "fid_real_floor": 1.0}}
