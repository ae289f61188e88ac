"""``data.*``: where the real images come from and how they are shaped."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from histosynth.config.base import Section

SOURCE_KINDS = ("builtin", "medmnist", "folder")
IMAGE_SIZES = (28, 32, 64, 128, 224)


class DataParams(Section):
    # "<kind>:<argument>": builtin:ihc, medmnist:<flag>, folder:<path>
    source: str = "builtin:ihc"
    # Where downloads and local copies of source files live (e.g. MedMNIST .npz files).
    root: str = "data/raw"
    image_size: Literal[28, 32, 64, 128, 224] = 32
    # Let the medmnist package download a missing .npz into `root` (otherwise: an error naming the file).
    download: bool = False
    # Keep at most this many TRAIN images per class, a seeded choice (0 = all): the small-data regime.
    max_per_class: int = Field(0, ge=0)
    # The same cap for the val and test splits (0 = all).
    max_eval_per_class: int = Field(0, ge=0)
    # Only for sources without official splits (folder:): stratified fractions.
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0)

    @field_validator("source")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kind, sep, arg = value.partition(":")
        if not sep or not arg.strip():
            raise ValueError(f"must look like <kind>:<argument> with kind one of {', '.join(SOURCE_KINDS)}"
                             " (e.g. builtin:ihc, medmnist:pathmnist, folder:/path/to/classes)")
        if kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {kind!r}; allowed: {', '.join(SOURCE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> "DataParams":
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must be below 0.9 so that a training split remains")
        return self

    @property
    def source_kind(self) -> str:
        return self.source.partition(":")[0]

    @property
    def source_arg(self) -> str:
        return self.source.partition(":")[2]
