"""``qa.*``: quality gates for the synthetic images, and the feature net they use.

Every gate compares a per-class figure of the synthetic images with a threshold. Most figures
also have a *floor*: the same figure computed between two disjoint sets of real images of the
same sizes, i.e. what a perfect generator would score. A floor is not one number: QA repeats
every comparison ``qa.draws`` times with fresh random draws and keeps the whole distribution
(mean, standard deviation and the ``qa.floor_quantile`` quantile on the bad side). The rule:

- lower is better (KL, FID): pass when value <= min(absolute limit, floor_factor x the floor's
  upper quantile);
- higher is better (label agreement, coverage): pass when value >= max(absolute limit,
  floor_factor x the floor's lower quantile);
- gates without a floor (duplicates, memorisation) compare with their absolute limit only.

The absolute limits always apply; they catch what sampling noise alone would excuse. The value
is the mean over the same draws (or the figure over all synthetic images where no draw is
needed), so a real held-out set sits at the floor's mean, well inside the threshold, and a
verdict does not hinge on one draw. Feature-space figures (FID, coverage, label agreement,
memorisation in feature space) compare with the real *val* split, which the feature net never
trained on; the real test split is never read before the benchmark.

The defaults were calibrated so that held-out real images of the demo and of BloodMNIST pass
every gate and each deliberately broken set fails its gate (bench/results/qa_calibration.md,
tests/test_qa_gates.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from histosynth.config.classifier import FeaturenetParams
from histosynth.config.base import MAX_IMAGES_PER_CLASS, MAX_NEIGHBOURS, MAX_SEED, Section


class KlParams(Section):
    # Images per class in each histogram (thesis: 150 real vs 150 synthetic), real ones from the
    # train split (pixel histograms involve no learned model). Fewer are used when a class has
    # fewer than 2 * n real train images (the floor needs two disjoint sets) or fewer than n
    # synthetic ones.
    n_per_class: int = Field(150, ge=2, le=MAX_IMAGES_PER_CLASS)
    # Equal-width bins per RGB channel over 0..255.
    bins: int = Field(32, ge=2, le=256)
    # Pseudo-count added to every bin before normalising, so an empty synthetic bin gives a
    # finite KL. 1 is negligible next to the >100k pixels in 150 tiles.
    smoothing: float = Field(1.0, gt=0.0)
    # Absolute limit: however much real halves differ, KL above this fails. The thesis' GAN
    # scored 0.003-0.0095; real halves of the demo tiles 0.01-0.08 (hematoxylin_rich varies most).
    max: float = Field(0.1, ge=0.0)
    # Tolerance over the real-vs-real floor's upper quantile. Real halves of BloodMNIST differ by
    # 0.001-0.006, so this is the binding limit there; a shift of 8 grey levels already fails.
    floor_factor: float = Field(3.0, ge=1.0)


class FidParams(Section):
    # Domain-feature FID has no absolute scale (it depends on the feature net), so the gate is
    # relative only: FID(val half A, synthetic) <= floor_factor x the upper quantile of
    # FID(val half A, val half B), at equal sample sizes.
    floor_factor: float = Field(3.0, ge=1.0)
    # Optional local Inception-V3 weights file (torch-fidelity's
    # weights-inception-2015-12-05-6726825d.pth, see docs/quality-gates.md) for an overall Inception FID
    # reported beside the domain FID (not gated). Relative paths are relative to the project root.
    inception_weights: Path | None = Field(None, strict=False)  # YAML gives a string


class LabelParams(Section):
    # Share of a class's synthetic images that the real-trained feature net assigns to the class
    # asked for. Floor: the cross-fitted classifiers' out-of-fold recall on that class's real
    # train images (bootstrapped): how well real images of the distribution the generator learns
    # are recognised by nets that never saw them, so a class the nets confuse is judged fairly.
    # Absolute limit: below this share the images are mostly of another class.
    min_agreement: float = Field(0.5, ge=0.0, le=1.0)
    # 0 leaves the absolute limit alone.
    floor_factor: float = Field(0.8, ge=0.0, le=1.0)


class DiversityParams(Section):
    # Nearest neighbours for precision/recall/density/coverage (Naeem et al. 2020 use 5).
    k: int = Field(5, ge=1, le=MAX_NEIGHBOURS)
    # Coverage: share of the real val half's k-NN balls that hold a synthetic image. Identical
    # distributions cover about 1 - 2**-k (0.97 for k = 5); a generator that drops modes covers
    # less. Absolute limit and tolerance over the floor's lower quantile.
    min_coverage: float = Field(0.5, ge=0.0, le=1.0)
    # 0 leaves the absolute limit alone.
    floor_factor: float = Field(0.8, ge=0.0, le=1.0)
    # Duplicates among a class's synthetic images (same pixels, also after a flip or a
    # 90-degree rotation), as a share of them. A working generator essentially never repeats one.
    max_duplicate_share: float = Field(0.01, ge=0.0, le=1.0)


class MemorisationParams(Section):
    # A synthetic image is a near-copy when the ratio of the distances to its nearest and second
    # nearest training image (different originals; flips and rotations included) is at most this
    # percentile of the held-out real images' ratios (histosynth.qa.metrics.memorisation).
    percentile: float = Field(1.0, gt=0.0, lt=100.0)
    # Largest share of near-copies allowed, in pixel space and in feature space. Held-out real
    # images score about percentile/100 by construction (the floor, with its spread, is
    # reported); copies of training images or of their affine children score 1.
    max_share: float = Field(0.1, ge=0.0, le=1.0)


class CasParams(Section):
    """Classification Accuracy Score (histosynth.qa.cas): a classifier trained on the synthetic images
    only, beside the same recipe trained on the real train split only, both scored on real val.
    Reported, not gated. The recipe is ``qa.featurenet``'s (batch size, lr, weight decay, width,
    dihedral augmentation); the two trainings run at once on a 2-core machine."""

    enabled: bool = True
    # Optimisation steps of each of the two trainings (the demo: about 30 s on 2 cores).
    steps: int = Field(400, ge=1)
    seed: int = Field(0, ge=0)


class QaParams(Section):
    # false: report only; true: the qa stage fails when a gate fails.
    enforce: bool = True
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # At most this many synthetic images per class are examined (drawn with `seed`).
    max_per_class: int = Field(5000, ge=2, le=MAX_IMAGES_PER_CLASS)
    # Repeated random draws behind every floor (and every drawn value): more draws, steadier
    # quantiles; each costs one more KL, FID and coverage per class.
    draws: int = Field(50, ge=5, le=1000)
    # Which quantile of the floor's distribution a threshold is built on (the upper one for
    # lower-is-better figures, 1 - this for higher-is-better ones).
    floor_quantile: float = Field(0.95, ge=0.5, lt=1.0)
    kl: KlParams = KlParams()
    fid: FidParams = FidParams()
    label: LabelParams = LabelParams()
    diversity: DiversityParams = DiversityParams()
    memorisation: MemorisationParams = MemorisationParams()
    # Training recipe of the domain feature net and its cross-fitted copies (the `featurenet` stage);
    # also the recipe of the classification accuracy score's two trainings.
    featurenet: FeaturenetParams = FeaturenetParams()
    cas: CasParams = CasParams()
