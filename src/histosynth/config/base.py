"""Base class for params.yaml sections: frozen, typed, and strict about unknown keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Upper bounds of the counts that allocate memory or disk: far above any real use, low enough that
# a slip (an extra zero, 10**25) is a clear error instead of a machine that runs out of memory.
MAX_IMAGES_PER_CLASS = 100_000  # images written or read per class (generate, augment, QA draws)
MAX_CANDIDATES_PER_CLASS = 1_000_000  # generate.n_per_class x generate.overgenerate
MAX_BATCH = 4096  # images per batch
MAX_NETWORK_WIDTH = 4096  # channels, latent dimensions
MAX_NEIGHBOURS = 1000  # k of a k-nearest-neighbour figure
MAX_SEED = 2**32 - 1  # numpy and torch take any seed up to here


class Section(BaseModel):
    """One mapping of params.yaml. Unknown keys are errors that list the allowed ones.

    Values are validated strictly, as a stage reads what DVC passes on: a bool or a string is no
    number (``epochs: true`` and ``epochs: "10"`` are errors, not 1 and 10), a number is no bool;
    a whole number is a float where a float is asked for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed keys here: {allowed}")
        return data
