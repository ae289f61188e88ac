"""``package.*``: the published dataset (BCADCID-style package in ``data/package/``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from histosynth.config.base import Section

# semver.org's own pattern (identifiers non-empty, no leading zeros in numeric ones). Every version it
# accepts also makes a valid git tag name (no "..", no trailing ".", only [0-9A-Za-z.+-]).
_IDENTIFIER = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(rf"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-{_IDENTIFIER}(?:\.{_IDENTIFIER})*)?"
                    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?")


def check_version(value: str) -> str:
    """``value`` if it is a semantic version, else ValueError saying what is allowed."""
    if SEMVER.fullmatch(value):
        return value
    if SEMVER.fullmatch(value.strip()):
        raise ValueError("has a line break or spaces around it (a folded or literal block, `>` or `|`, keeps "
                         "the line break): write it on the key's line, e.g. version: 1.0.0")
    raise ValueError("must be a semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0 or 1.1.0-rc.1 (semver.org: "
                     "dot-separated identifiers, none empty)")


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
        return check_version(value)

    @field_validator("real_splits")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a split twice")
        return value
