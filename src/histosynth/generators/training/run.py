"""The training run every generator family shares: data, resume, checkpoints, monitoring, record.

A family hands over a :class:`FamilyTrainer` (its networks, optimisers and one epoch of steps)
and the run does the rest the same way for a GAN and a diffusion model:

- resumes from ``model_dir/checkpoint.pt`` when it belongs to the same data and params
  (``gan.epochs`` may grow), and a resumed run ends with the same weights as an uninterrupted one;
- writes a checkpoint every ``gan.checkpoint_every`` epochs and at the end (tensors only);
- stops on a non-finite loss, naming the epoch and step and keeping the last good checkpoint;
- monitors with fixed-noise grids, loss curves and the held-out real-vs-fake probe.

Under ``torchrun`` every process trains on its shard; only the first one writes files.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torchvision
from torch import nn

import histosynth
from histosynth.dataset import ImageSet
from histosynth.errors import ConfigError, DataError, TrainingDiverged
from histosynth.generators.training import checkpoint
from histosynth.generators.training.batches import EpochBatches, TrainingImages
from histosynth.generators.training.data import (
    epoch_batches, load_training_set, manifest_md5, open_holdout, open_real_train, probe_subset, to_model_range,
)
from histosynth.generators.training.monitor import SampleGrid, TrainingReport, grid_epochs, sample
from histosynth.generators.training.probe import real_vs_fake_accuracy
from histosynth.generators.training.runtime import Runtime
from histosynth.generators.training.seeds import derive_seed
from histosynth.generators.training.selection import CheckpointChoice, SampleFilter, colour_kl_of, colour_reference
from histosynth.generators.training.settings import RunSettings
from histosynth.progress import EpochProgress

log = logging.getLogger(__name__)


class EpochOutcome(Protocol):
    images: int  # training images seen, all processes together
    bad_step: int  # this process's first step with a non-finite loss, -1 when all were finite

    @property
    def finite(self) -> bool: ...


class FamilyTrainer(Protocol):
    """Networks, optimisers and one epoch of steps: what a family contributes to a run."""

    @property
    def sampling_generator(self) -> nn.Module:
        """``G(z [B, latent_dim], y [B]) -> [B, 3, S, S]`` in [-1, 1]: what samples are drawn from."""

    def run_epoch(self, batches: EpochBatches, epoch: int, progress: EpochProgress | None = None) -> EpochOutcome:
        """Train on ``batches`` (``(images, labels)`` on the training device) of epoch ``epoch`` (0-based)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class TrainingData:
    images: ImageSet
    manifest_md5: str
    probe: ImageSet | None
    # (classes, 3, bins) colour counts of real train, what checkpoints are scored against; None: gan.select.by last
    colour_reference: np.ndarray | None = None
    sample_filter: SampleFilter | None = None  # curation's tests, for gan.select.by curated_colour

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.images.class_names

    @property
    def image_size(self) -> int:
        return self.images.image_size


def load_training_data(train_dir: Path, holdout_dir: Path, settings: RunSettings, image_sizes: tuple[int, ...],
                       sample_filter: SampleFilter | None = None) -> TrainingData:
    """The training images (train split of ``train_dir``, in one of the arch's ``image_sizes``), the probe's
    subset of the real val images and, unless ``gan.select.by`` is last, the real train images' colours
    that checkpoints are scored against (through ``sample_filter``: curation's tests, under curated_colour)."""
    if settings.select_by == "curated_colour" and sample_filter is None:
        raise ConfigError("gan.select.by = curated_colour scores samples as curation would keep them, which needs "
                          "curation's tests (the train stage builds them from models/featurenet); run `dvc repro "
                          "train` or set gan.select.by: train_colour")
    train_dir, holdout_dir = Path(train_dir), Path(holdout_dir)
    log.info("loading training images from %s (gan.train_on = %s)", train_dir, settings.train_on)
    images = load_training_set(train_dir)
    if images.image_size not in image_sizes:
        raise ConfigError(f"gan.arch={settings.arch} supports image sizes {', '.join(map(str, image_sizes))}; "
                          f"data.image_size is {images.image_size}")
    probe = (probe_subset(open_holdout(holdout_dir, images.class_names), holdout_dir, settings.probe_max_images,
                          settings.seed) if settings.probe_every else None)
    reference = None
    if settings.select_by != "last":
        real_train = images if train_dir.resolve() == holdout_dir.resolve() else open_real_train(holdout_dir)
        reference = colour_reference(real_train, images.class_names)
    log.info("%d images of %d px in %d classes: %s", len(images), images.image_size, len(images.class_names),
             ", ".join(images.class_names))
    return TrainingData(images, manifest_md5(train_dir), probe, reference,
                        sample_filter if settings.select_by == "curated_colour" else None)


@dataclass(frozen=True)
class FamilyRun:
    """What a family tells the run besides its trainer."""

    trainer: FamilyTrainer
    latent_dim: int  # size of the noise vector ``G`` takes per image
    fingerprint: str  # identity of the run: a checkpoint with the same fingerprint may be continued
    # The epoch's losses by name (columns of reports/train/losses.tsv, figures of metrics.json).
    losses: Callable[[EpochOutcome], dict[str, float | None]]
    loss_columns: tuple[str, ...]
    # What to change when training diverges, e.g. "Lower gan.g_lr / gan.d_lr or change gan.seed".
    divergence_hint: str
    # The family's fields of record.json (arch, width, params, network configs...).
    record: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)  # further library versions for the record


def run_training(settings: RunSettings, runtime: Runtime, data: TrainingData, family: FamilyRun, model_dir: Path,
                 report_dir: Path) -> dict[str, Any]:
    """Train (or resume) and return the final record (also written to ``model_dir/record.json``)."""
    return _Run(settings, runtime, data, family, Path(model_dir), Path(report_dir)).run()


class _Run:
    def __init__(self, settings: RunSettings, runtime: Runtime, data: TrainingData, family: FamilyRun,
                 model_dir: Path, report_dir: Path) -> None:
        self.settings, self.runtime, self.data, self.family = settings, runtime, data, family
        self.trainer = family.trainer
        self.model_dir, self.report_dir = model_dir, report_dir
        self.image_size = data.image_size
        self.n_classes = len(data.class_names)
        self.fingerprint = family.fingerprint
        if data.sample_filter is not None:  # the scores, and so the choice, depend on curation's tests too
            self.fingerprint = hashlib.md5(f"{family.fingerprint} {data.sample_filter.identity}".encode(),
                                           usedforsecurity=False).hexdigest()
        self.report = TrainingReport(report_dir, family.loss_columns)
        self.grid = SampleGrid(self.n_classes, family.latent_dim, settings.seed)
        self.history: list[dict[str, Any]] = []
        self.saved_epoch = 0
        self.choice = CheckpointChoice(settings.select_by, settings.select_window, settings.select_every,
                                       settings.epochs)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s, rt = self.settings, self.runtime
        start = self._resume_or_start_fresh()
        images = TrainingImages(self.data.images, rt.device)
        batch = self._batch_per_process(len(images))
        grid_every = grid_epochs(s.epochs)
        started, seen = time.perf_counter(), 0
        with EpochProgress(s.arch, start, s.epochs, unit="img", enabled=None if rt.is_main else False) as progress:
            for epoch in range(start, s.epochs):
                number = epoch + 1
                batches = images.epoch(epoch_batches(len(images), batch, s.seed, epoch, rt.rank, rt.world_size))
                epoch_started = time.perf_counter()
                progress.begin_epoch(len(batches) * batch * rt.world_size)
                result = self.trainer.run_epoch(batches, epoch, progress)
                seconds = time.perf_counter() - epoch_started
                losses = self.family.losses(result)
                if not result.finite:
                    self._diverged(number, result, losses)
                seen += result.images
                last = number == s.epochs
                probed = bool(s.probe_every) and (number % s.probe_every == 0 or last)
                accuracy = self._probe(epoch) if probed else None
                if rt.is_main and self.data.colour_reference is not None and self.choice.is_candidate(number):
                    self.choice.offer(number, self._colour_kl(), self.trainer.sampling_generator)
                self.history.append({"epoch": number, **losses, "real_vs_fake_accuracy": accuracy,
                                     "images_per_s": result.images / seconds if seconds > 0 else None})
                progress.end_epoch(number, {**losses, "probe": accuracy})
                if rt.is_main:
                    if number % grid_every == 0 or last:
                        self.report.save_grid(self._grid(), number)
                    self.report.write_curves(self.history)
                    self.report.write_colour(self.choice.scores, self.data.class_names)
                    saved = number % s.checkpoint_every == 0 or last
                    if saved:
                        self._save(number)
                    if probed or saved:  # the log, and the figures `dvc exp show` shows while the run goes on
                        log.info("%s", progress.describe())
                        self.report.write_metrics(self._metrics(start, seen, time.perf_counter() - started))
        return self._finish(start, seen, time.perf_counter() - started)

    def _finish(self, start: int, seen: int, wall_time: float) -> dict[str, Any]:
        if self.runtime.is_main:
            if start == self.settings.epochs:  # the checkpoint was complete: refresh record and generator
                self._save(self.settings.epochs, with_training_state=False)
            self.report.save_grid(self._grid(self._chosen_generator()), None)
            self.report.write_curves(self.history)
            self.report.write_colour(self.choice.scores, self.data.class_names)
            self.report.write_metrics(self._metrics(start, seen, wall_time))
        chosen, kl = self.choice.chosen(self.settings.epochs)
        log.info("trained %s to epoch %d; generator (the weights of epoch %d%s) in %s", self.settings.arch,
                 self.settings.epochs, chosen, f"; worst class's colour KL against real train {kl:.4f}" if kl is not None else "",
                 self.model_dir)
        return self._record(self.settings.epochs)

    # -- resume --------------------------------------------------------------------------------

    def _resume_or_start_fresh(self) -> int:
        """The epoch to start from (0 = fresh); loads the checkpoint's state when it continues."""
        if self.runtime.is_main:
            _remove_partial_writes(self.model_dir, self.report_dir)
        state = checkpoint.load_training_state(self.model_dir, self.runtime.device)
        epochs = self.settings.epochs
        if state is None:
            log.info("no checkpoint in %s: starting fresh", self.model_dir)
        elif state["fingerprint"] != self.fingerprint:
            log.info("the checkpoint in %s was trained on other data or params: starting fresh", self.model_dir)
        elif state["epoch"] > epochs:
            log.info("the checkpoint in %s is at epoch %d, past gan.epochs = %d: starting fresh",
                     self.model_dir, state["epoch"], epochs)
        elif not self._load_state(state):
            log.info("the checkpoint in %s does not fit the current model code: starting fresh", self.model_dir)
        elif not self.choice.load_state_dict(state.get("selection")):
            log.info("the checkpoint in %s kept weights that gan.epochs = %d no longer chooses among: starting fresh",
                     self.model_dir, epochs)
        else:
            self.history = list(state["history"])
            self.saved_epoch = state["epoch"]
            log.info("resuming from epoch %d of %d", self.saved_epoch, epochs)
            if self.runtime.is_main:
                self.report.start(fresh=False)
            return self.saved_epoch
        if self.runtime.is_main:
            self.report.start(fresh=True)
            for name in (checkpoint.CHECKPOINT_FILE, checkpoint.GENERATOR_FILE, checkpoint.RECORD_FILE):
                (self.model_dir / name).unlink(missing_ok=True)
        return 0

    def _load_state(self, state: dict[str, Any]) -> bool:
        """Load a checkpoint's training state; False when it was written by other model code."""
        try:
            self.trainer.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError):
            return False
        return True

    def _save(self, epoch: int, with_training_state: bool = True) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if with_training_state:  # a reloaded state does not re-save to the same bytes: keep the file DVC cached
            # throughput is a fact about the machine, not the run: kept out so that the same params
            # give the same checkpoint bytes
            history = [{k: v for k, v in row.items() if k != "images_per_s"} for row in self.history]
            state = {"fingerprint": self.fingerprint, "epoch": epoch, "history": history,
                     "selection": self.choice.state_dict(), **self.trainer.state_dict()}
            checkpoint.save_training_state(self.model_dir, state)
        checkpoint.save_generator(self.model_dir, self._chosen_generator().state_dict())
        checkpoint.write_record(self.model_dir, self._record(epoch))
        self.saved_epoch = epoch
        log.debug("checkpoint for epoch %d written to %s", epoch, self.model_dir)

    def _diverged(self, number: int, result: EpochOutcome, losses: dict[str, float | None]) -> None:
        step = f" at step {result.bad_step + 1}" if result.bad_step >= 0 else ""
        kept = (f"the last good checkpoint (epoch {self.saved_epoch}) in {self.model_dir} is kept"
                if self.saved_epoch else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged: non-finite loss in epoch {number}{step} ({_format(losses)}); "
                               f"{kept}. {self.family.divergence_hint} and rerun")

    # -- data and monitoring -------------------------------------------------------------------

    def _batch_per_process(self, n_images: int) -> int:
        rt = self.runtime
        batch = max(1, self.settings.batch_size // rt.world_size)
        shard = n_images // rt.world_size
        if shard < batch:
            log.warning("only %d training images per process: batches of %d instead of %d", shard, shard, batch)
            batch = shard
        if batch < 2:
            raise DataError(f"{n_images} training images are too few for {rt.world_size} process(es): "
                            "each needs a batch of at least 2")
        return batch

    def _grid(self, generator: nn.Module | None = None) -> np.ndarray:
        return self.grid.render(generator or self.trainer.sampling_generator, self.runtime.device)

    def _colour_kl(self) -> np.ndarray:
        return colour_kl_of(self.trainer.sampling_generator, self.data.colour_reference, self.settings.select_per_class,
                            self.family.latent_dim, self.settings.seed, self.runtime.device, self.data.sample_filter)

    def _chosen_generator(self) -> nn.Module:
        """The sampling generator, with the chosen checkpoint's weights when ``gan.select`` chose one."""
        current = self.trainer.sampling_generator
        if self.choice.best_weights is None:
            return current
        chosen = copy.deepcopy(current)
        chosen.load_state_dict(self.choice.best_weights)
        return chosen

    def _probe(self, epoch: int) -> float | None:
        if not self.runtime.is_main or self.data.probe is None:
            return None
        probe = self.data.probe
        device = self.runtime.device
        real = to_model_range(probe.images).to(device)
        fake = sample(self.trainer.sampling_generator, torch.tensor(probe.labels), self.family.latent_dim,
                      derive_seed(self.settings.seed, "probe-noise", epoch), device)
        return real_vs_fake_accuracy(real, fake, derive_seed(self.settings.seed, "probe", epoch))

    # -- records -------------------------------------------------------------------------------

    def _record(self, epoch: int) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes,
            "class_names": list(self.data.class_names),
            "image_size": self.image_size,
            "latent_dim": self.family.latent_dim,
            **self.family.record,
            "epoch": epoch,
            **({"selected_epoch": self.choice.chosen(epoch)[0]} if self.choice.chooses else {}),
            "params": self.settings.as_dict(),
            "fingerprint": self.fingerprint,
            "train_data": {"manifest_md5": self.data.manifest_md5, "n_images": len(self.data.images)},
            # Same params give the same bytes only on the same kind of device and, on CPU, the same
            # kernel family: torch picks kernels by CPU capability (ATEN_CPU_CAPABILITY forces one).
            "trained_on": {"device": self.runtime.device.type,
                           "cpu_capability": torch.backends.cpu.get_cpu_capability()},
            "versions": {
                "histosynth": histosynth.__version__,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
                **self.family.versions,
            },
        }

    def _metrics(self, start: int, seen: int, wall_time: float) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        probed = [row["real_vs_fake_accuracy"] for row in self.history if row["real_vs_fake_accuracy"] is not None]
        return {
            "arch": self.settings.arch,
            "epochs": self.settings.epochs,
            "epochs_done": last.get("epoch", start),
            "resumed_from_epoch": start,
            **{name: last.get(name) for name in self.family.loss_columns},
            "real_vs_fake_accuracy": probed[-1] if probed else None,
            **dict(zip(("selected_epoch", "selected_colour_kl"), self.choice.chosen(last.get("epoch", start)))),
            "images_per_s": round(seen / wall_time, 1) if seen and wall_time > 0 else None,
            "wall_time_s": round(wall_time, 1),
            "device": str(self.runtime.device),
            "precision": self.runtime.precision,
            "processes": self.runtime.world_size,
            "cpu_threads": torch.get_num_threads(),
        }


def _remove_partial_writes(*folders: Path) -> None:
    """Temporary files of atomic writes that a killed run left behind (fsutil names them ``.<name>.tmp-<pid>``)."""
    for folder in folders:
        for leftover in folder.rglob(".*.tmp-*") if folder.is_dir() else ():
            if leftover.is_file():
                leftover.unlink()


def _format(losses: Mapping[str, float | None]) -> str:
    return ", ".join(f"{name} {value:.4g}" if value is not None else f"no {name}" for name, value in losses.items())
