"""Per-class preview grids: a row of originals, and under each original its augmented children."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.utils import make_grid

from histosynth.augment.plan import ClassPlan

PREVIEW_COLUMNS = 8
PREVIEW_CHILD_ROWS = 4
PREVIEW_CELL_PX = 96  # tiles are enlarged by a whole factor to about this size, so pixels stay crisp
PREVIEW_PADDING = 2
PREVIEW_PAD_VALUE = 255


class ClassPreview:
    """Keeps the few images one class's preview shows while the class is generated."""

    def __init__(self, plan: ClassPlan, originals: torch.Tensor) -> None:
        # Show the originals that get children first (they get the most); else the kept ones.
        order = plan.parents if len(plan.parents) else plan.kept
        shown = list(dict.fromkeys(order.tolist()))[:PREVIEW_COLUMNS]
        self._originals = {i: originals[i] for i in shown}
        self._children: dict[int, list[torch.Tensor]] = {i: [] for i in shown}

    def offer(self, parent: int, image: torch.Tensor) -> None:
        """Keep ``image`` if its parent is shown and still has room in its column."""
        column = self._children.get(parent)
        if column is not None and len(column) < PREVIEW_CHILD_ROWS:
            column.append(image)

    def grid(self) -> np.ndarray:
        """The preview as an (H, W, 3) uint8 array; cells without a child stay blank."""
        first = next(iter(self._originals.values()))
        blank = torch.full_like(first, PREVIEW_PAD_VALUE)
        n_rows = 1 + max(len(c) for c in self._children.values())
        tiles = [
            self._originals[i] if row == 0 else (kids[row - 1] if row <= len(kids) else blank)
            for row in range(n_rows)
            for i, kids in self._children.items()
        ]
        height, width = first.shape[-2:]
        factor = max(1, round(PREVIEW_CELL_PX / max(height, width)))
        cells = F.resize(torch.stack(tiles), [height * factor, width * factor],
                         interpolation=InterpolationMode.NEAREST)
        grid = make_grid(cells, nrow=len(self._children), padding=PREVIEW_PADDING, pad_value=PREVIEW_PAD_VALUE)
        return grid.permute(1, 2, 0).contiguous().numpy()
