"""Streaming a sampler's images to class folders, with MD5SUMS files and a manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from histosynth.fsutil import unique_safe_names
from histosynth.generate.md5sums import write_md5sums
from histosynth.generate.sampler import BlockSampler
from histosynth.images import write_pngs
from histosynth.manifest import write_manifest
from histosynth.parallel import usable_cores

SPLIT = "train"
SOURCE = "synthetic"


def image_id(class_folder: str, index: int) -> str:
    return f"syn_{class_folder}_{index:06d}"


def write_synthetic_set(
    sampler: BlockSampler,
    class_names: Sequence[str],
    n_per_class: int,
    out_dir: Path,
    *,
    checkpoint_md5: str,
    arch: str,
    lookahead: int,
) -> pd.DataFrame:
    """Write ``n_per_class`` PNGs per class to ``out_dir/<class folder>/``, an ``MD5SUMS`` per
    class folder and ``out_dir/manifest.parquet``; return the manifest.

    Images stream from the sampler through the threaded PNG writers: memory holds at most
    ``lookahead`` images plus the writers' queue, whatever ``n_per_class`` is.
    """
    folders = unique_safe_names(class_names)
    folder_paths = [out_dir / folder for folder in folders]
    for path in folder_paths:
        path.mkdir(parents=True)
    items = (
        (folder_paths[label] / f"{image_id(folders[label], index)}.png", image)
        for label, index, image in sampler.stream(len(folders), n_per_class, lookahead)
    )
    total = len(folders) * n_per_class
    md5s = list(tqdm(write_pngs(items, workers=usable_cores()), total=total, unit="img", desc="generate",
                     mininterval=1.0))

    labels = np.repeat(np.arange(len(folders), dtype=np.int64), n_per_class)
    indices = np.tile(np.arange(n_per_class, dtype=np.int64), len(folders))
    ids = [image_id(folders[label], index) for label, index in zip(labels.tolist(), indices.tolist())]
    for label, folder in enumerate(folders):
        rows = slice(label * n_per_class, (label + 1) * n_per_class)
        write_md5sums(out_dir / folder, zip((f"{i}.png" for i in ids[rows]), md5s[rows]))

    manifest = pd.DataFrame({
        "id": ids,
        "path": [f"{folders[label]}/{i}.png" for label, i in zip(labels.tolist(), ids)],
        "class_name": [class_names[label] for label in labels.tolist()],
        "label": labels,
        "split": SPLIT,
        "source": SOURCE,
        "md5": md5s,
        "origin": f"gan:{checkpoint_md5}",
        "seed": np.int64(sampler.seed),
        "latent_index": indices,
        "checkpoint_md5": checkpoint_md5,
        "arch": arch,
        # regenerate() reproduces the bytes on the same kind of device at the same precision.
        "device": sampler.device.type,
        "precision": sampler.precision,
    })
    write_manifest(manifest, out_dir)
    return manifest
