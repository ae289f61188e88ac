"""Streaming a sampler's images to class folders, with MD5SUMS files and a manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from histosynth.errors import HistosynthError
from histosynth.generate.md5sums import write_md5sums
from histosynth.fsutil import unique_safe_names
from histosynth.generate.sampler import FORWARD_BLOCK, BlockSampler, class_blocks
from histosynth.generate.shards import Shard
from histosynth.images import write_pngs
from histosynth.manifest import write_manifest
from histosynth.parallel import usable_cores

SPLIT = "train"
SOURCE = "synthetic"


@dataclass(frozen=True)
class Provenance:
    """What the manifest records about how every image was made."""

    checkpoint_md5: str
    arch: str
    family: str  # gan | diffusion: the origin's prefix
    # how a diffusion model sampled (sampler, steps, guidance): one manifest column each; {} for a GAN
    sampling: dict[str, Any] = field(default_factory=dict)


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
    family: str = "gan",
    sampling: dict[str, Any] | None = None,
    shard: Shard | None = None,
) -> pd.DataFrame | None:
    """Write ``n_per_class`` PNGs per class to ``out_dir/<class folder>/``, an ``MD5SUMS`` per
    class folder and ``out_dir/manifest.parquet``; return the manifest.

    With a ``shard`` of several processes, each writes its share of the images and the main
    process, once all are on disk, the MD5SUMS and the manifest (and returns it; the others None).
    """
    shard = shard or Shard()
    folders = unique_safe_names(class_names)
    if shard.is_main:
        for folder in folders:
            (out_dir / folder).mkdir(parents=True)
    shard.barrier()  # the class folders exist
    blocks = shard.take(class_blocks(len(folders), n_per_class))
    written = write_images(sampler, out_dir, folders, n_per_class, blocks, lookahead=lookahead,
                           processes_here=shard.local_world_size, show_progress=shard.is_main)
    everything = shard.gather(written)  # after this every image is on disk
    if everything is None:
        return None
    provenance = Provenance(checkpoint_md5, arch, family, dict(sampling or {}))
    return write_index(out_dir, class_names, folders, n_per_class, [row for rows in everything for row in rows],
                       sampler, provenance)


def write_images(sampler: BlockSampler, out_dir: Path, folders: Sequence[str], n_per_class: int,
                 blocks: Sequence[tuple[int, int]], *, lookahead: int, processes_here: int = 1,
                 show_progress: bool = True) -> list[tuple[int, int, str]]:
    """Write the PNGs of ``blocks`` (``(label, block)`` pairs) into ``out_dir/<class folder>/``
    (which must exist); return ``(label, index, md5)`` of every image written.

    Images stream from the sampler through the threaded PNG writers: memory holds at most
    ``lookahead`` images plus the writers' queue, whatever the number of images.
    """
    keys: list[tuple[int, int]] = []

    def items():
        for label, index, image in sampler.stream(len(folders), n_per_class, lookahead, blocks, processes_here):
            keys.append((label, index))
            yield out_dir / folders[label] / f"{image_id(folders[label], index)}.png", image

    total = sum(min(FORWARD_BLOCK, n_per_class - b * FORWARD_BLOCK) for _, b in blocks)
    workers = max(1, usable_cores() // processes_here)
    md5s = list(tqdm(write_pngs(items(), workers=workers), total=total, unit="img", desc="generate",
                     mininterval=1.0, disable=not show_progress))
    return [(label, index, md5) for (label, index), md5 in zip(keys, md5s, strict=True)]


def write_index(out_dir: Path, class_names: Sequence[str], folders: Sequence[str], n_per_class: int,
                written: Sequence[tuple[int, int, str]], sampler: BlockSampler, provenance: Provenance) -> pd.DataFrame:
    """Write ``out_dir/<class folder>/MD5SUMS`` and ``out_dir/manifest.parquet`` for ``written``,
    which must hold every image of every class once (in any order); return the manifest."""
    md5_of = {(label, index): md5 for label, index, md5 in written}
    expected = len(folders) * n_per_class
    if len(md5_of) != expected or len(written) != expected:
        raise HistosynthError(f"generation wrote {len(written)} images ({len(md5_of)} distinct) where "
                              f"{expected} were due; nothing was published")
    labels = np.repeat(np.arange(len(folders), dtype=np.int64), n_per_class)
    indices = np.tile(np.arange(n_per_class, dtype=np.int64), len(folders))
    ids = [image_id(folders[label], index) for label, index in zip(labels.tolist(), indices.tolist())]
    md5s = [md5_of[key] for key in zip(labels.tolist(), indices.tolist())]
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
        "origin": f"{provenance.family}:{provenance.checkpoint_md5}",
        "seed": np.int64(sampler.seed),
        "latent_index": indices,
        "checkpoint_md5": provenance.checkpoint_md5,
        "arch": provenance.arch,
        # regenerate() reproduces the bytes on the same kind of device at the same precision.
        "device": sampler.device.type,
        "precision": sampler.precision,
        **provenance.sampling,
        **sampler.manifest_columns(labels, indices),
    })
    write_manifest(manifest, out_dir)
    return manifest
