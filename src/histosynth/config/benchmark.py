"""``benchmark.*``: do the synthetic images make a classifier better? (the `benchmark` stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from histosynth.config.base import MAX_BATCH, MAX_SEED, Section
from histosynth.config.classifier import Arch, ClassifierRecipe


class BootstrapParams(Section):
    # Paired, class-stratified bootstrap over the real test images (confidence intervals).
    resamples: int = Field(2000, ge=100, le=1_000_000)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    # Also draw the seeds with replacement in every resample: the intervals then cover retraining
    # with other seeds, not only another test set (false: resample the test images only).
    resample_seeds: bool = True
    seed: int = Field(0, ge=0, le=MAX_SEED)


# Every arm the benchmark knows (histosynth.benchmark.arms), in the order results list them.
ARMS = ("real_only", "affine", "augmented", "affine_synthetic", "synthetic_only", "strong", "strong_synthetic",
        "real_weighted", "real_oversampled")
# The arms that use no synthetic image: a study trains them once per regime, whatever the generator.
GENERATOR_FREE_ARMS = ("real_only", "affine", "strong", "real_weighted", "real_oversampled")
DEFAULT_ARMS = ["real_only", "affine", "augmented", "affine_synthetic", "synthetic_only"]


def known_arms(values: list[str]) -> list[str]:
    """``values`` when they are distinct names of :data:`ARMS` (for the validators of benchmark.arms and study.arms)."""
    unknown = [value for value in values if value not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(ARMS)}")
    if len(set(values)) != len(values):
        raise ValueError("arms must be distinct")
    return values


class StrongParams(Section):
    """``benchmark.strong``: the strong conventional baseline's on-the-fly augmentation: torchvision's
    ``policy`` (trivial_augment_wide | rand_augment | none), then stain jitter (Tellez et al. 2019): each
    HED stain channel s of each image becomes alpha s + beta, alpha ~ U(1 - hed_scale, 1 + hed_scale),
    beta ~ U(-hed_shift, hed_shift)."""

    # none: chosen on BloodMNIST's real val (bench/results/strong_baseline.md), where TrivialAugmentWide and
    # RandAugment cost 3-4 points of accuracy and stain jitter alone did not
    policy: Literal["trivial_augment_wide", "rand_augment", "none"] = "none"
    hed_scale: float = Field(0.05, ge=0.0, le=1.0)
    hed_shift: float = Field(0.01, ge=0.0, le=1.0)


class BenchmarkParams(Section):
    # small_cnn (fast on CPU) | resnet18 (torchvision, random init, 3x3 stem for small tiles; needs a GPU's speed)
    classifier: Arch = "small_cnn"
    # Which arms to train (histosynth.benchmark.arms; each costs len(seeds) trainings).
    arms: list[str] = Field(DEFAULT_ARMS, min_length=1, max_length=len(ARMS))
    # Every arm is trained once per seed with the same recipe; figures are mean and std over seeds.
    seeds: list[int] = Field([0, 1, 2], min_length=1, max_length=1000)
    # Optimisation steps of every training, whatever its number of images: arms compare at equal
    # compute. The weights of the best real-val accuracy (scored every eval_every steps) are kept.
    steps: int = Field(1500, ge=1)
    eval_every: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=2, le=MAX_BATCH)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    width: int = Field(16, ge=4, le=256)  # small_cnn only
    dihedral_augment: bool = True
    # How the arms with real and synthetic images use them (chosen on real val, never on test:
    # bench/studies/recipes.py mixing, bench/results/recipes_mixing.md). mixed: every batch holds this share of
    # synthetic images, their losses multiplied by synthetic_weight. pretrain: the first
    # pretrain_share of the steps on synthetic images only, the rest on real images only.
    mode: Literal["mixed", "pretrain"] = "mixed"
    synthetic_ratio: float = Field(0.1, gt=0.0, lt=1.0)
    synthetic_weight: float = Field(1.0, gt=0.0)
    pretrain_share: float = Field(0.5, gt=0.0, lt=1.0)
    bootstrap: BootstrapParams = BootstrapParams()
    strong: StrongParams = StrongParams()
    # Synthetic images per class for extra runs of the augmented arm ([] = only 0 and all of them).
    sweep: list[int] = Field([], max_length=1000)
    # Trainings run at once, each on one torch thread (0 = one per core); results do not depend on it.
    threads: int = Field(2, ge=0)

    @field_validator("seeds", "sweep")
    @classmethod
    def _distinct(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError("values must be distinct")
        if any(v < 0 or v > MAX_SEED for v in values):
            raise ValueError(f"values must be between 0 and {MAX_SEED}")
        return values

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, values: list[str]) -> list[str]:
        return known_arms(values)

    def recipe(self, seed: int) -> ClassifierRecipe:
        """The optimiser recipe every arm is trained with, for one seed (steps come from the arm's schedule)."""
        return ClassifierRecipe(batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                                width=self.width, dihedral_augment=self.dihedral_augment, seed=seed)
