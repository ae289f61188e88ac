"""``package.*``: the published dataset (BCADCID-style package in ``data/package/``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from histosynth.config.base import Section

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


class PackageParams(Section):
    # Dataset name and version, shown in the dataset card and the SQL dumps.
    name: str = Field("histosynth-demo", min_length=1)
    # Semantic version MAJOR.MINOR.PATCH, optionally -prerelease / +build (semver.org).
    version: str = "1.0.0"
    # Real splits copied into the package (the benchmark tests on the real test split).
    real_splits: list[Literal["train", "val", "test"]] = Field(["train", "val", "test"], min_length=1)
    # auto: hard-link images from data/real and data/synthetic where the filesystem allows, else copy.
    link: Literal["auto", "copy"] = "auto"
    # Terms of this package as a whole, shown in the card after the real images' own licence
    # (which the card takes from the source); "" = none beyond the source's.
    licence: str = ""
    # How to cite the dataset (free text, e.g. a BibTeX entry); "" = a citation made from name and version.
    citation: str = ""
    # For folder: sources (builtin: and medmnist: describe themselves): where the real images come
    # from (who made them, how), their licence and how to cite them, for the card. "" = unknown:
    # the card says so plainly and the package stage warns.
    source_description: str = ""
    source_licence: str = ""
    source_citation: str = ""

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("must be a semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0 or 1.1.0-rc.1 (semver.org)")
        return value

    @field_validator("real_splits")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a split twice")
        return value
