"""``curate.*``: which of the generated candidates ship (the `curate` stage).

``generate`` makes ``generate.n_per_class x generate.overgenerate`` candidates per class; curation
scores every one and keeps the first ``generate.n_per_class`` of each class that pass every test:
- the cross-fitted real-trained classifiers recognise the class asked for at least as surely as
  they recognise the class's real train images (out of fold) at ``confidence_quantile``;
- it lies on the real image manifold: its k-NN realism score (Kynkaanniemi et al. 2019) is at
  least ``realism_quantile`` of what real train images score against each other;
- it is not a near-copy of a training image or an affine child (the QA memorisation test in
  pixel space, flips and turns included, calibrated on real val at ``near_copy_percentile``).
Thresholds are quantiles of what *real* images score, so they mean the same on every data set.
The defaults were chosen on real val (bench/results/recipes_curation.md).
"""

from __future__ import annotations

from pydantic import Field

from histosynth.config.base import MAX_NEIGHBOURS, Section


class CurateParams(Section):
    # false: keep the first n_per_class candidates of each class (scores are still computed and kept).
    enabled: bool = True
    confidence_quantile: float = Field(0.3, ge=0.0, lt=1.0)
    realism_quantile: float = Field(0.05, ge=0.0, lt=1.0)
    # Neighbours behind the realism score's radii (the authors use 3).
    realism_k: int = Field(3, ge=1, le=MAX_NEIGHBOURS)
    reject_near_copies: bool = True
    near_copy_percentile: float = Field(1.0, gt=0.0, lt=100.0)
