"""``generate.*``: sampling N images per class from the trained generator.

Under ``torchrun --nproc_per_node=K stages/generate.py`` (and ``--nnodes``) each process takes
a disjoint share of every class's images; the bytes are those of one process.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from histosynth.config.base import MAX_BATCH, MAX_CANDIDATES_PER_CLASS, MAX_IMAGES_PER_CLASS, MAX_SEED, Section


class DiffusionSampling(Section):
    """How a diffusion checkpoint samples; null = the value recorded with the model (its recipe's).

    Ignored, with a warning, for a GAN checkpoint.
    """

    # ddim: DDIM with eta 0 (Song et al. 2021); dpm: DPM-Solver++ 2M (Lu et al. 2022). Both are
    # deterministic given an image's initial noise, which comes from (seed, class, index).
    sampler: Literal["ddim", "dpm"] | None = None
    # Network evaluations per image (twice as many when guidance is not 0 or 1).
    steps: int | None = Field(None, ge=1, le=1000)
    # Classifier-free guidance scale w: eps = eps_uncond + w (eps_cond - eps_uncond);
    # 1 = the plain conditional model, 0 = unconditional, > 1 = pushed towards the class.
    guidance: float | None = Field(None, ge=0.0, le=20.0)


class EditParams(Section):
    """``generate.mode: edit``: real train images partly noised and denoised under their own label
    (SDEdit, Meng et al. 2022; DA-Fusion, Trabucco et al. 2024). Diffusion checkpoints only."""

    # t0 as a fraction of the noise schedule: the edit runs the last round(strength x steps) of the
    # sampler's steps (at least one), starting from the real image noised to timestep ~ strength x T.
    # Near 0 the edit returns its source (QA counts that as a copy); 1 = sampling from noise.
    # 0.2: chosen on BloodMNIST's real val split (bench/results/diffusion_edits.md).
    strength: float = Field(0.2, gt=0.0, le=1.0)
    # The source's colours, so that a colour drift of the model (BloodMNIST: backgrounds towards
    # yellow-green) does not reach the edits: none (the model's colours) | moments (each channel shifted
    # and scaled to the source's mean and spread) | histogram (each channel given the source's values,
    # in the edit's order: the source's colour histogram exactly).
    # histogram: chosen on BloodMNIST's real val split (bench/results/diffusion_edits.md).
    keep_colour: Literal["none", "moments", "histogram"] = "histogram"


class GenerateParams(Section):
    # Images per class that ship (data/synthetic) after curation.
    n_per_class: int = Field(200, ge=1, le=MAX_IMAGES_PER_CLASS)
    # Candidates generated per shipped image (data/candidates holds n_per_class x this per class);
    # the `curate` stage keeps the first n_per_class of each class that pass its tests.
    overgenerate: int = Field(3, ge=1, le=100)
    # Images generated ahead of the PNG writers (memory bound). The generator always runs on
    # fixed blocks of latents, so this changes no image: see histosynth.generate.sampler.
    batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    # With the class index and the image index, picks each image's latent vector.
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # auto: CUDA when present, CPU otherwise. Byte-identical outputs for the same params are
    # guaranteed on CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bf16 autocast on a GPU that supports it, fp32 otherwise. bf16 on a CPU with native
    # bf16 (AVX512-BF16, AMX) runs the generator about twice as fast; pixels move by at most a
    # grey level or so from fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    diffusion: DiffusionSampling = DiffusionSampling()
    # sample: images from noise. edit: each real train image of a class edited in turn (image i of
    # a class edits its (i mod n)-th train image, n = the class's train images), so every real
    # image gets about n_per_class x overgenerate / n candidates; each records its source (edit_of).
    mode: Literal["sample", "edit"] = "sample"
    edit: EditParams = EditParams()
    # Samples only (edits keep their source's colours: edit.keep_colour). moments: each sample's
    # channels shifted and scaled to the mean and spread of a real train image of its class, drawn per
    # image from (seed, class, index) (stain normalisation to a real reference, Reinhard et al. 2001,
    # in RGB); none: the generator's colours. The channels' shapes stay the generator's, so QA's colour
    # gate still sees a missing stain or mode.
    colour_match: Literal["none", "moments"] = "none"

    @model_validator(mode="after")
    def _colour_match_of_samples(self) -> "GenerateParams":
        if self.mode == "edit" and self.colour_match != "none":
            raise ValueError(f"colour_match = {self.colour_match!r} applies to samples; edits take their source's "
                             "colours with edit.keep_colour: set colour_match: none for mode: edit")
        return self

    @model_validator(mode="after")
    def _candidates_fit(self) -> "GenerateParams":
        if self.candidates_per_class > MAX_CANDIDATES_PER_CLASS:
            raise ValueError(f"n_per_class x overgenerate = {self.n_per_class} x {self.overgenerate} = "
                             f"{self.candidates_per_class:,} candidates per class; at most "
                             f"{MAX_CANDIDATES_PER_CLASS:,}")
        return self

    @property
    def candidates_per_class(self) -> int:
        return self.n_per_class * self.overgenerate
