"""Building blocks shared by several architectures."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ProjectionHead(nn.Module):
    """Projection discriminator output (Miyato & Koyama 2018): ``linear(h) + <embed(y), h>``.

    The inner product with a class embedding makes the score label-conditional without
    feeding the label into the convolutional trunk.
    """

    def __init__(self, in_features: int, n_classes: int, spectral: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        self.embed = nn.Embedding(n_classes, in_features)
        # N(0, 1) embeddings would let the projection term swamp the linear term at start.
        nn.init.xavier_uniform_(self.embed.weight)
        if spectral:
            spectral_norm(self.linear)
            spectral_norm(self.embed)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
