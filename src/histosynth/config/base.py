"""Base class for params.yaml sections: frozen, typed, and strict about unknown keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Section(BaseModel):
    """One mapping of params.yaml. Unknown keys are errors that list the allowed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed keys here: {allowed}")
        return data
