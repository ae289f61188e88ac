"""Samples given the colours of real images (``generate.colour_match``): each sample's channels shifted
and scaled to the mean and spread of a real train image of its class.

Image ``i`` of class ``c`` takes the train image drawn by a stream of its own, ``(seed, c, i)`` with a
tag that sets it apart from the latent's stream: so a recoloured sample, like its latent, is a function
of the model, the seed, the class, the index and the real images alone, whatever the block, batch or
process that computes it.
"""

from __future__ import annotations

import numpy as np
import torch

from histosynth.generate.edits import EditSources, kept_colour
from histosynth.manifest import COLOUR_REFERENCE

# the fourth word of the reference's seed sequence: (seed, class, index) alone is the latent's
_REFERENCE_STREAM = 1


class ColourMatch:
    """The recolouring hook of :class:`~histosynth.generate.sampler.BlockSampler`."""

    def __init__(self, references: EditSources, how: str) -> None:
        self.references = references
        self.how = how

    def row(self, seed: int, label: int, index: int) -> int:
        """Which train image of class ``label`` gives image ``index`` its colours."""
        stream = np.random.SeedSequence((seed, label, int(index), _REFERENCE_STREAM))
        return int(np.random.default_rng(stream).integers(len(self.references.ids[label])))

    def manifest_columns(self, seed: int, labels: np.ndarray, indices: np.ndarray) -> dict[str, list[str]]:
        """Each image's colour reference: the id of its real train image."""
        ids = [str(self.references.ids[label][self.row(seed, label, index)])
               for label, index in zip(np.asarray(labels).tolist(), np.asarray(indices).tolist())]
        return {COLOUR_REFERENCE: ids}

    def __call__(self, x: torch.Tensor, seed: int, label: int, indices: np.ndarray) -> torch.Tensor:
        """(N, 3, S, S) generator output in [-1, 1] with the colours of its references."""
        images = self.references.images[label][[self.row(seed, label, index) for index in indices]]
        references = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return kept_colour(x.float().cpu(), references, self.how)
