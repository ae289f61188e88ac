"""``data.*``: where the real images come from, how they are shaped, grouped and split."""

from __future__ import annotations

from typing import Literal

import regex
from pydantic import Field, field_validator, model_validator

from histosynth.config.base import MAX_SEED, Section

SOURCE_KINDS = ("builtin", "medmnist", "folder")
IMAGE_SIZES = (28, 32, 64, 128, 224)
FIXED_SPLIT_KINDS = ("builtin", "medmnist")  # sources that come with their own splits
GROUP_PATTERN_NAME = "group"  # the named group data.group.pattern must have


class GroupParams(Section):
    """``data.group``: folder: sources only. Which images belong together (one patient, slide or
    original image): a group never straddles two splits (histosynth.data.grouping)."""

    # none: every image is its own group. folder: the sub-folder `level` levels below the class
    # folder (<class>/<patient>/<image> with level 1; level 2 takes <patient>/<slide>).
    # regex: `pattern` searched in the file name, its named group (?P<group>...) is the group.
    # csv: the file `csv` maps each image (its path inside the source folder) to a group.
    by: Literal["none", "folder", "regex", "csv"] = "none"
    level: int = Field(1, ge=1)
    pattern: str = ""
    # A CSV file with the columns file,group (relative paths: to the current folder). DVC does not
    # watch it: after changing it run `dvc repro --force ingest`.
    csv: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles_with_group(cls, value: str) -> str:
        if not value:
            return value
        try:
            compiled = regex.compile(value)  # the regex package: data.group matches with a time budget
        except (regex.error, ValueError, OverflowError) as err:
            raise ValueError(f"not a valid regular expression ({err})") from None
        if GROUP_PATTERN_NAME not in compiled.groupindex:
            raise ValueError(f"needs a named group (?P<{GROUP_PATTERN_NAME}>...) that captures the group,"
                             r" e.g. ^(?P<group>[A-Z]+\d+)_")
        return value

    @model_validator(mode="after")
    def _rule_has_its_setting(self) -> "GroupParams":
        if self.by == "regex" and not self.pattern:
            raise ValueError(r"by = regex needs a pattern with a named group, e.g. pattern: '^(?P<group>[A-Z]+\d+)_'")
        if self.by == "csv" and not self.csv.strip():
            raise ValueError("by = csv needs csv: the path of a CSV file with the columns file,group")
        return self


class DuplicateParams(Section):
    """``data.duplicates``: exact and near-duplicate images, found at ingest across and within
    splits and listed in reports/ingest/ (histosynth.data.duplicates)."""

    # auto: group for folder: sources, warn for sources with fixed splits (builtin, medmnist).
    # warn: report them and keep every image where the source put it.
    # drop: val/test images that duplicate an earlier image (train first, then val, then test)
    #       are not written.
    # group (folder: only): duplicates join one group, so they land in one split.
    action: Literal["auto", "warn", "drop", "group"] = "auto"
    # Largest distance between two images that still makes them near-duplicates: the RMS
    # difference of the images standardised per channel (mean 0, sd 1), under the flip or
    # 90-degree rotation that matches best; about sqrt(2 * (1 - correlation)). Re-encoded, resampled or
    # brightness-shifted copies score below 0.1; on BloodMNIST one copy of a cell scores 0.17 and
    # the closest distinct cells 0.40 (docs/data.md, "Splits"). 0 = exact copies only.
    near_max_distance: float = Field(0.25, ge=0.0, le=1.0)


class LongTailParams(Section):
    """``data.long_tail``: the long-tail regime. The TRAIN images of ``classes`` (names as the source
    gives them) are cut to ``keep`` of their number after ``max_per_class`` (at least one), a choice
    seeded with data.seed; val and test keep every image. [] = off."""

    classes: list[str] = Field([], max_length=10_000)
    keep: float = Field(0.1, gt=0.0, le=1.0)

    @field_validator("classes")
    @classmethod
    def _distinct_names(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("class names must not be empty")
        if len(set(values)) != len(values):
            raise ValueError("class names must be distinct")
        return values


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
    seed: int = Field(0, ge=0, le=MAX_SEED)
    group: GroupParams = GroupParams()
    duplicates: DuplicateParams = DuplicateParams()
    long_tail: LongTailParams = LongTailParams()

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

    @model_validator(mode="after")
    def _grouping_needs_a_folder_source(self) -> "DataParams":
        if self.source_kind in FIXED_SPLIT_KINDS:
            if self.group.by != "none":
                raise ValueError(f"group.by = {self.group.by}: {self.source_kind} sources come with fixed splits;"
                                 " grouping applies to folder: sources only (use group.by: none)")
            if self.duplicates.action == "group":
                raise ValueError(f"duplicates.action = group: {self.source_kind} sources come with fixed splits"
                                 " that grouping cannot change; use warn (report) or drop (leave the copies out"
                                 " of val/test)")
        return self

    @property
    def source_kind(self) -> str:
        return self.source.partition(":")[0]

    @property
    def source_arg(self) -> str:
        return self.source.partition(":")[2]

    @property
    def duplicate_action(self) -> str:
        """``duplicates.action`` with ``auto`` resolved for this source: warn, drop or group."""
        if self.duplicates.action != "auto":
            return self.duplicates.action
        return "warn" if self.source_kind in FIXED_SPLIT_KINDS else "group"
