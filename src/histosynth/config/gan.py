"""``gan.*``: training the label-conditioned generator, a GAN or a diffusion model.

The section keeps its name for every generator family (users script ``gan.*``). Keys set to
``null`` take the value of the architecture's recipe (the source documents' training recipe:
``histosynth.generators.gan.models.get_recipe`` for the GANs, ``histosynth.generators.diffusion.recipe``
for the diffusion arch); set a value to override it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from histosynth.config.base import MAX_BATCH, MAX_IMAGES_PER_CLASS, MAX_NETWORK_WIDTH, MAX_SEED, Section

GAN_ARCHS = ("dcgan", "sagan", "ascgan", "cwgan128", "projected")
DIFFUSION_ARCHS = ("ddpm",)
ARCHS = GAN_ARCHS + DIFFUSION_ARCHS
# Keys that only a GAN reads: setting one for a diffusion arch is a mistake worth naming.
GAN_ONLY_KEYS = ("latent_dim", "d_lr", "n_critic", "diffaugment", "feature_size")
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")


class ProbeParams(Section):
    """The held-out real-vs-fake probe: accuracy near 50% means fakes are hard to tell apart."""

    # Run it every this many epochs (and after the last one); 0 = off.
    every: int = Field(1, ge=0)
    # At most this many real validation images (half to fit, half to score); fakes match in number.
    max_images: int = Field(400, ge=4, le=MAX_IMAGES_PER_CLASS)


class SelectParams(Section):
    """Which checkpoint becomes the generator (histosynth.generators.training.selection)."""

    # last: the weights after the last epoch. train_colour: of the checkpoints scored, the one whose
    # samples' colour histograms are closest to the real train images' in its worst class. curated_colour:
    # the same, scored on the samples that pass curation's confidence and realism tests (curate.*, with
    # models/featurenet's classifiers), as the images that ship are.
    by: Literal["last", "train_colour", "curated_colour"] = "last"
    # Checkpoints are scored (reports/train/colour.tsv) every `every` epochs within the last `window`
    # share of the run, and after the last epoch; each score samples n_per_class images per class.
    window: float = Field(0.5, gt=0.0, le=1.0)
    every: int = Field(10, ge=1)
    n_per_class: int = Field(150, ge=10, le=MAX_IMAGES_PER_CLASS)


class DiffusionParams(Section):
    """Diffusion archs only (``gan.arch: ddpm``); null = the arch's recipe."""

    # Noise levels of the training process (DDPM: 1000).
    timesteps: int | None = Field(None, ge=10, le=4000)
    # Noise schedule: cosine (Nichol & Dhariwal 2021) or DDPM's linear betas.
    schedule: Literal["cosine", "linear"] | None = None
    # What the UNet predicts: the added noise (DDPM) or the velocity v (Salimans & Ho 2022).
    prediction: Literal["epsilon", "v_prediction"] | None = None
    # Share of training labels replaced by the null class, so that one network also learns the
    # unconditional model that classifier-free guidance needs (Ho & Salimans 2022: 0.1-0.2).
    label_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    # Residual blocks per UNet level (DDPM: 2).
    layers_per_block: int | None = Field(None, ge=1, le=4)

    def is_set(self) -> list[str]:
        return [key for key, value in self.model_dump().items() if value is not None]


class GanParams(Section):
    arch: Literal["dcgan", "sagan", "ascgan", "cwgan128", "projected", "ddpm"] = "dcgan"
    # Train on the augmented set (thesis) or on the real train split directly.
    train_on: Literal["augmented", "real"] = "augmented"
    epochs: int = Field(30, ge=1)
    # Recipe values (null = the arch's recipe). batch_size is global: split across DDP processes.
    batch_size: int | None = Field(None, ge=2, le=MAX_BATCH)
    latent_dim: int | None = Field(None, ge=1, le=MAX_NETWORK_WIDTH)
    width: int | None = Field(None, ge=1, le=MAX_NETWORK_WIDTH)
    # The generator's learning rate (diffusion: the UNet's).
    g_lr: float | None = Field(None, gt=0.0)
    d_lr: float | None = Field(None, gt=0.0)
    n_critic: int | None = Field(None, ge=1, le=100)
    # DiffAugment policies applied to every discriminator input; [] = off.
    diffaugment: list[str] | None = None
    # projected only: the size images are resized to before the frozen ImageNet network
    # (null = twice the image size, at least 64). CPU cost grows with its square.
    feature_size: int | None = Field(None, ge=32, le=512)
    # projected only: also judge the pixels with dcgan's discriminator, its loss weighing as much as
    # the frozen network's four scales together (vision-aided GAN's ensemble, Kumari et al. 2022).
    pixel_discriminator: bool = False
    # WGAN-GP gradient-penalty weight (used by wgan-gp archs only).
    gp_weight: float = Field(10.0, ge=0.0)
    # Generator (diffusion: UNet) EMA decay, reached after a warm-up (update n uses min(ema, (1+n)/(10+n)));
    # 0 = off (sample from the raw generator).
    ema: float = Field(0.999, ge=0.0, lt=1.0)
    # Sample from the EMA generator with BatchNorm statistics recomputed from its own weights
    # (BigGAN's standing statistics) instead of averaged ones; changes sampling, not training.
    # Off by default: on the demo it moved every class's colours away from the real tiles (colour KL
    # 0.08-0.13 against 0.01-0.05 from the same EMA weights without it); on BloodMNIST it changed nothing.
    standing_stats: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per process; 0 = OMP_NUM_THREADS if set, else the cores shared among processes.
    # Results are byte-identical only for the same thread count (float sums are split differently).
    threads: int = Field(0, ge=0)
    # auto: bf16 autocast on CUDA when the GPU supports it, fp32 otherwise.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Write a resumable checkpoint every this many epochs (and after the last one).
    checkpoint_every: int = Field(5, ge=1)
    # VGG-19 weights file for ascgan's perceptual loss; "" = off. Never downloaded.
    perceptual_weights: str = ""
    probe: ProbeParams = ProbeParams()
    select: SelectParams = SelectParams()
    diffusion: DiffusionParams = DiffusionParams()
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("diffaugment")
    @classmethod
    def _known_policies(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        unknown = [p for p in value if p not in DIFFAUGMENT_POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment polic(ies) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(DIFFAUGMENT_POLICIES)} ([] = off, null = the arch's default)")
        if len(set(value)) != len(value):
            raise ValueError("lists a DiffAugment policy twice")
        return value

    @model_validator(mode="after")
    def _keys_fit_the_family(self) -> "GanParams":
        if self.arch in DIFFUSION_ARCHS:
            wrong = [key for key in GAN_ONLY_KEYS if getattr(self, key) is not None]
            wrong += ["pixel_discriminator"] if self.pixel_discriminator else []
            if wrong:
                raise ValueError(f"{', '.join(wrong)} only apply to GAN archs (arch is {self.arch!r}, a diffusion "
                                 "model); set them to null (pixel_discriminator: false) or switch arch")
        elif self.diffusion.is_set():
            raise ValueError(f"diffusion.{', diffusion.'.join(self.diffusion.is_set())} only apply to diffusion "
                             f"archs ({', '.join(DIFFUSION_ARCHS)}; arch is {self.arch!r}); set them to null or "
                             "switch arch")
        return self

    @model_validator(mode="after")
    def _projected_keys_need_projected(self) -> "GanParams":
        if self.arch == "projected" or self.arch in DIFFUSION_ARCHS:
            return self
        if self.feature_size is not None:
            raise ValueError(f"feature_size is only used by arch projected (arch is {self.arch!r}); set it to null "
                             "or switch arch")
        if self.pixel_discriminator:
            raise ValueError(f"pixel_discriminator is only used by arch projected (arch is {self.arch!r}); set it "
                             "to false or switch arch")
        return self

    @model_validator(mode="after")
    def _perceptual_needs_ascgan(self) -> "GanParams":
        if self.perceptual_weights and self.arch != "ascgan":
            raise ValueError(f"perceptual_weights is only used by arch ascgan (arch is {self.arch!r}); "
                             "set it to \"\" or switch arch")
        return self
