"""``curate.*``: which of the generated candidates ship (the `curate` stage).

``generate`` makes ``generate.n_per_class x generate.overgenerate`` candidates per class; curation
scores every one and keeps the first ``generate.n_per_class`` of each class that pass every test:
- the cross-fitted real-trained classifiers recognise the class asked for at least as surely as
  they recognise the class's real train images (out of fold) at ``confidence_quantile``;
- it lies on the real image manifold: its k-NN realism score (Kynkaanniemi et al. 2019) is at
  least ``realism_quantile`` of what real train images score against each other;
- it is not a near-copy of a training image or an affine child (QA's memorisation tests in
  ``near_copy_spaces``: pixels, flips and turns included, and QA's feature net's features; each
  calibrated on real val at ``near_copy_percentile``).
Thresholds are quantiles of what *real* images score, so they mean the same on every data set.
The defaults were chosen on real val (bench/results/recipes_curation.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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
    # Where reject_near_copies looks: QA's two memorisation tests. Feature space also catches shifted and
    # recoloured copies (on the demo a GAN checkpoint failed QA's feature test with 14 % while passing the pixel one).
    near_copy_spaces: list[Literal["pixel", "feature"]] = ["pixel", "feature"]

    @field_validator("near_copy_spaces")
    @classmethod
    def _each_space_once(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("lists each of pixel, feature at most once, and at least one (to reject nothing set "
                             "reject_near_copies: false)")
        return value
