"""Edits of real images (``generate.mode: edit``): which real image each edit starts from, and the sampler.

Image ``i`` of class ``c`` edits train image ``i mod n_c`` of that class (the real manifest's order,
``n_c`` its train images) with the noise of latent ``(seed, c, i)``: so an edit is a function of the
model, the seed, the class, the index and the real images alone. Edits run in the fixed blocks of
:mod:`histosynth.generate.sampler` like samples, so sharded generation writes the bytes of one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from histosynth.errors import DataError
from histosynth.generate.latents import latents
from histosynth.generate.sampler import FORWARD_BLOCK, BlockSampler, to_uint8_images
from histosynth.images import read_png_rgb
from histosynth.manifest import EDIT_OF, EDIT_STRENGTH, class_names_of, read_manifest



@dataclass(frozen=True)
class EditSources:
    """The real train images edits start from (and samples take their colours from), per label, in the real
    manifest's order."""

    ids: tuple[np.ndarray, ...]  # per label: (n_c,) str
    images: tuple[np.ndarray, ...]  # per label: (n_c, S, S, 3) uint8

    @classmethod
    def load(cls, real_dir: Path, class_names: Sequence[str], image_size: int) -> "EditSources":
        """The train split of ``real_dir`` (as ingest writes it), checked against the generator's classes."""
        real_dir = Path(real_dir)
        manifest = read_manifest(real_dir)
        names = class_names_of(manifest)
        if list(names) != list(class_names):
            raise DataError(f"{real_dir}: classes {names} differ from the generator's {list(class_names)}; "
                            "retrain it on this data (`dvc repro train`)")
        train = manifest[manifest["split"] == "train"]
        ids, images = [], []
        for label, name in enumerate(class_names):
            rows = train[train["label"] == label]
            if rows.empty:
                raise DataError(f"{real_dir}: class {name!r} has no train image; generate.mode: edit (and "
                                "generate.colour_match) need at least one per class")
            stack = np.stack([read_png_rgb(real_dir / path) for path in rows["path"]])
            if stack.shape[1:3] != (image_size, image_size):
                raise DataError(f"{real_dir}: train images of {stack.shape[1]}x{stack.shape[2]} px, but the "
                                f"generator makes {image_size} px; retrain it on this data (`dvc repro train`)")
            ids.append(rows["id"].to_numpy(str))
            images.append(stack)
        return cls(tuple(ids), tuple(images))

    def rows(self, label: int, indices: np.ndarray) -> np.ndarray:
        """Which train image of class ``label`` edits ``indices`` start from."""
        return np.asarray(indices) % len(self.ids[label])

    def source_ids(self, labels: np.ndarray, indices: np.ndarray) -> list[str]:
        return [str(self.ids[label][index % len(self.ids[label])])
                for label, index in zip(np.asarray(labels).tolist(), np.asarray(indices).tolist())]


def kept_colour(edits: torch.Tensor, sources: torch.Tensor, how: str) -> torch.Tensor:
    """(N, 3, H, W) ``edits`` (pixels in [-1, 1]) with the colours of their ``sources``: ``moments`` shifts and
    scales each channel to the source's mean and standard deviation (clamped to [-1, 1]; a flat channel is
    only shifted), ``histogram`` gives each channel the source's values in the order of the edit's (equal
    values in pixel order), ``none`` returns the edits."""
    if how == "moments":
        mean, spread = edits.mean(dim=(2, 3), keepdim=True), edits.std(dim=(2, 3), keepdim=True)
        source_mean, source_spread = sources.mean(dim=(2, 3), keepdim=True), sources.std(dim=(2, 3), keepdim=True)
        scale = torch.where(spread > 1e-6, source_spread / spread.clamp_min(1e-6), torch.ones_like(spread))
        return ((edits - mean) * scale + source_mean).clamp(-1.0, 1.0)
    if how == "histogram":
        flat = edits.flatten(2)
        ranks = flat.argsort(dim=2, stable=True)
        values = sources.flatten(2).sort(dim=2, stable=True).values
        return torch.empty_like(flat).scatter_(2, ranks, values).reshape(edits.shape)
    return edits


class EditSampler(BlockSampler):
    """Edits ``G.edit(z, y, x0, strength)`` of a diffusion sampler, a block at a time (see BlockSampler)."""

    def __init__(self, generator: nn.Module, latent_dim: int, seed: int, device: torch.device, precision: str,
                 sources: EditSources, strength: float, keep_colour: str = "none") -> None:
        super().__init__(generator, latent_dim, seed, device, precision)
        self.sources = sources
        self.strength = strength
        self.keep_colour = keep_colour

    def _block(self, label: int, block: int) -> np.ndarray:
        start = block * FORWARD_BLOCK
        z = torch.from_numpy(latents(self.seed, label, start, FORWARD_BLOCK, self.latent_dim))
        y = torch.full((FORWARD_BLOCK,), label, dtype=torch.long)
        sources = self.sources.images[label][self.sources.rows(label, np.arange(start, start + FORWARD_BLOCK))]
        x0 = torch.from_numpy(sources).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            x = self.generator.edit(z.to(self.device), y.to(self.device), x0.to(self.device), self.strength)
        if self.keep_colour != "none":
            x = kept_colour(x.float().cpu(), x0, self.keep_colour)
        return to_uint8_images(x)

    def manifest_columns(self, labels: np.ndarray, indices: np.ndarray) -> dict[str, Any]:
        return {EDIT_OF: self.sources.source_ids(labels, indices), EDIT_STRENGTH: float(self.strength)}
