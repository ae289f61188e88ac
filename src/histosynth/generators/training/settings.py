"""The settings every generator family takes from ``gan.*`` as they are, and a run's identity.

Each family resolves the rest of ``gan.*`` against its own recipe (:mod:`histosynth.generators.gan.settings`,
:mod:`histosynth.generators.diffusion.settings`) into a subclass of :class:`RunSettings`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from histosynth.config.gan import GanParams

# Values that may change between a checkpoint and its continuation: how long and where to
# train, how often to save and probe. Everything else defines the training run.
RESUMABLE_CHANGES = ("epochs", "checkpoint_every", "probe_every", "probe_max_images", "device", "precision",
                     "threads", "standing_stats")

SELECT_FIELDS = ("select_by", "select_window", "select_every", "select_per_class")


@dataclass(frozen=True)
class RunSettings:
    """What the shared run (:mod:`histosynth.generators.training.run`) reads; families add their own fields."""

    arch: str
    train_on: str
    batch_size: int
    ema: float
    seed: int
    epochs: int
    checkpoint_every: int
    probe_every: int
    probe_max_images: int
    device: str
    precision: str
    threads: int
    # which checkpoint becomes the generator (histosynth.generators.training.selection)
    select_by: str
    select_window: float
    select_every: int
    select_per_class: int

    def as_dict(self) -> dict[str, Any]:
        fields = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, as in record.json
        if fields["select_by"] == "last":  # scores only monitor then: records and fingerprints stay as before
            for key in SELECT_FIELDS:
                del fields[key]
        return fields


def run_fields(params: GanParams) -> dict[str, Any]:
    """The :class:`RunSettings` fields taken from ``gan.*`` as they are (no recipe; not the batch size)."""
    return dict(arch=params.arch, train_on=params.train_on, ema=params.ema, seed=params.seed, epochs=params.epochs,
                checkpoint_every=params.checkpoint_every, probe_every=params.probe.every,
                probe_max_images=params.probe.max_images, device=params.device, precision=params.precision,
                threads=params.threads, select_by=params.select.by, select_window=params.select.window,
                select_every=params.select.every, select_per_class=params.select.n_per_class)


def run_fingerprint(settings: dict[str, Any], data_md5: str, class_names: tuple[str, ...], image_size: int,
                    extra: dict[str, Any] | None = None) -> str:
    """MD5 of a run's resolved settings (less :data:`RESUMABLE_CHANGES`), its data and ``extra``."""
    identity = {k: v for k, v in settings.items() if k not in RESUMABLE_CHANGES}
    identity.update(data_md5=data_md5, class_names=list(class_names), image_size=image_size, **(extra or {}))
    blob = json.dumps(identity, sort_keys=True).encode("utf-8")
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()
