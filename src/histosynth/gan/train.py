"""Train the label-conditioned GAN: the ``train`` stage and ``histosynth train``.

Resumes from ``model_dir/checkpoint.pt`` when it belongs to the same data and params
(``gan.epochs`` may grow), writes checkpoints every ``gan.checkpoint_every`` epochs and at the
end, and monitors training with fixed-noise grids, loss curves and a real-vs-fake probe.
Under ``torchrun`` every process trains on its shard; only the first one writes files.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from tqdm import tqdm

import histosynth
from histosynth import paths
from histosynth.config.gan import GanParams
from histosynth.dataset import ImageSet
from histosynth.errors import DataError, TrainingDiverged
from histosynth.gan import checkpoint
from histosynth.gan.models import check_image_size
from histosynth.gan.training.data import (
    epoch_batches,
    load_probe_set,
    load_training_set,
    manifest_md5,
    to_model_range,
)
from histosynth.gan.training.loop import EpochResult, GanTrainer
from histosynth.gan.training.monitor import SampleGrid, TrainingReport, grid_epochs, sample
from histosynth.gan.training.probe import real_vs_fake_accuracy
from histosynth.gan.training.runtime import Runtime, training_runtime
from histosynth.gan.training.seeds import derive_seed
from histosynth.gan.training.settings import TrainSettings, resolve_settings

log = logging.getLogger(__name__)

# Keep the training tensor on the GPU when it takes at most this share of the free memory.
DEVICE_DATA_SHARE = 0.25


@dataclass(frozen=True)
class TrainingData:
    images: ImageSet
    manifest_md5: str
    probe: ImageSet | None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.images.class_names


def default_train_dir(params: GanParams) -> Path:
    """The pipeline's training images for ``gan.train_on``: the augmented set or the real one."""
    return paths.AUGMENTED_DIR if params.train_on == "augmented" else paths.REAL_DIR


def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path) -> dict[str, Any]:
    """Train (or resume) and return the final record (also written to ``model_dir/record.json``)."""
    settings = resolve_settings(params)
    train_dir, model_dir, report_dir = Path(train_dir), Path(model_dir), Path(report_dir)
    log.info("loading training images from %s (gan.train_on = %s)", train_dir, settings.train_on)
    images = load_training_set(train_dir)
    check_image_size(settings.arch, images.image_size)
    probe = (load_probe_set(Path(holdout_dir), images.class_names, settings.probe_max_images, settings.seed)
             if settings.probe_every else None)
    data = TrainingData(images, manifest_md5(train_dir), probe)
    log.info("%d images of %d px in %d classes: %s", len(images), images.image_size, len(images.class_names),
             ", ".join(images.class_names))
    with training_runtime(settings.device, settings.precision, settings.threads) as runtime:
        return _Training(settings, runtime, data, model_dir, report_dir).run()


class _Training:
    def __init__(self, settings: TrainSettings, runtime: Runtime, data: TrainingData, model_dir: Path,
                 report_dir: Path) -> None:
        self.settings, self.runtime, self.data = settings, runtime, data
        self.model_dir, self.report_dir = model_dir, report_dir
        self.image_size = data.images.image_size
        self.n_classes = len(data.class_names)
        self.fingerprint = settings.fingerprint(data.manifest_md5, data.class_names, self.image_size)
        self.trainer = GanTrainer(settings, runtime, self.n_classes, self.image_size)
        self.report = TrainingReport(report_dir, with_penalty=settings.loss == "wgan-gp")
        self.grid = SampleGrid(self.n_classes, settings.latent_dim, settings.seed)
        self.history: list[dict[str, Any]] = []
        self.saved_epoch = 0

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s, rt = self.settings, self.runtime
        start = self._resume_or_start_fresh()
        images, labels = self._data_tensors()
        batch = self._batch_per_process(len(labels))
        grid_every = grid_epochs(s.epochs)
        started, seen = time.perf_counter(), 0
        for epoch in range(start, s.epochs):
            number = epoch + 1
            batches = epoch_batches(len(labels), batch, s.seed, epoch, rt.rank, rt.world_size)
            epoch_started = time.perf_counter()
            with tqdm(total=len(batches) * batch * rt.world_size, unit="img", disable=not rt.is_main, leave=False,
                      desc=f"{s.arch} epoch {number}/{s.epochs}") as bar:
                result = self.trainer.run_epoch(images, labels, batches, epoch, bar)
                seconds = time.perf_counter() - epoch_started
                bar.set_postfix_str(f"{_losses(result)}, {result.images / seconds:.0f} images/s")
            if not result.finite:
                self._diverged(number, result)
            seen += result.images
            last = number == s.epochs
            accuracy = self._probe(epoch) if s.probe_every and (number % s.probe_every == 0 or last) else None
            self.history.append(_history_row(number, result, accuracy, seconds))
            if rt.is_main:
                log.info("epoch %d/%d: %s%s, %.0f images/s", number, s.epochs, _losses(result),
                         "" if accuracy is None else f", real-vs-fake probe {accuracy:.3f}", result.images / seconds)
                if number % grid_every == 0 or last:
                    self.report.save_grid(self._grid(), number)
                self.report.write_curves(self.history)
                if number % s.checkpoint_every == 0 or last:
                    self._save(number)
        return self._finish(start, seen, time.perf_counter() - started)

    def _finish(self, start: int, seen: int, wall_time: float) -> dict[str, Any]:
        if self.runtime.is_main:
            if start == self.settings.epochs:  # the checkpoint was complete: refresh record and generator
                self._save(self.settings.epochs, with_training_state=False)
            self.report.save_grid(self._grid(), None)
            self.report.write_curves(self.history)
            self.report.write_metrics(self._metrics(start, seen, wall_time))
        log.info("trained %s to epoch %d; generator in %s", self.settings.arch, self.settings.epochs, self.model_dir)
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
                     **self.trainer.state_dict()}
            checkpoint.save_training_state(self.model_dir, state)
        checkpoint.save_generator(self.model_dir, self.trainer.sampling_generator.state_dict())
        checkpoint.write_record(self.model_dir, self._record(epoch))
        self.saved_epoch = epoch
        log.debug("checkpoint for epoch %d written to %s", epoch, self.model_dir)

    def _diverged(self, number: int, result: EpochResult) -> None:
        step = f" at step {result.bad_step + 1}" if result.bad_step >= 0 else ""
        kept = (f"the last good checkpoint (epoch {self.saved_epoch}) in {self.model_dir} is kept"
                if self.saved_epoch else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged: non-finite loss in epoch {number}{step} ({_losses(result)}); "
                              f"{kept}. Lower gan.g_lr / gan.d_lr or change gan.seed and rerun")

    # -- data and monitoring -------------------------------------------------------------------

    def _data_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images in [-1, 1] (on the GPU when they fit comfortably) and their labels."""
        images = to_model_range(self.data.images.images)
        labels = torch.tensor(self.data.images.labels)
        device = self.runtime.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if images.numel() * images.element_size() <= DEVICE_DATA_SHARE * free:
                return images.to(device), labels.to(device)
            log.info("training images kept in pinned host memory (too large for the GPU's free memory)")
            return images.pin_memory(), labels.pin_memory()
        return images, labels

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

    def _grid(self) -> np.ndarray:
        return self.grid.render(self.trainer.sampling_generator, self.runtime.device)

    def _probe(self, epoch: int) -> float | None:
        if not self.runtime.is_main or self.data.probe is None:
            return None
        probe = self.data.probe
        device = self.runtime.device
        real = to_model_range(probe.images).to(device)
        fake = sample(self.trainer.sampling_generator, torch.tensor(probe.labels), self.settings.latent_dim,
                      derive_seed(self.settings.seed, "probe-noise", epoch), device)
        return real_vs_fake_accuracy(real, fake, derive_seed(self.settings.seed, "probe", epoch))

    # -- records -------------------------------------------------------------------------------

    def _record(self, epoch: int) -> dict[str, Any]:
        s = self.settings
        return {
            "arch": s.arch,
            "n_classes": self.n_classes,
            "class_names": list(self.data.class_names),
            "image_size": self.image_size,
            "latent_dim": s.latent_dim,
            "width": s.width,
            "epoch": epoch,
            "generator_weights": "ema" if s.ema > 0 else "raw",
            "optimizer": "adam",
            "params": s.as_dict(),
            "fingerprint": self.fingerprint,
            "train_data": {"manifest_md5": self.data.manifest_md5, "n_images": len(self.data.images)},
            "versions": {
                "histosynth": histosynth.__version__,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }

    def _metrics(self, start: int, seen: int, wall_time: float) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        probed = [row["real_vs_fake_accuracy"] for row in self.history if row["real_vs_fake_accuracy"] is not None]
        return {
            "epochs": self.settings.epochs,
            "resumed_from_epoch": start,
            "d_loss": last.get("d_loss"),
            "g_loss": last.get("g_loss"),
            "real_vs_fake_accuracy": probed[-1] if probed else None,
            "images_per_s": round(seen / wall_time, 1) if seen and wall_time > 0 else None,
            "wall_time_s": round(wall_time, 1),
            "device": str(self.runtime.device),
            "precision": self.runtime.precision,
            "processes": self.runtime.world_size,
            "cpu_threads": torch.get_num_threads(),
        }


def _history_row(epoch: int, result: EpochResult, accuracy: float | None, seconds: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "d_loss": result.d_loss,
        "g_loss": result.g_loss,
        "gradient_penalty": result.gradient_penalty,
        "real_vs_fake_accuracy": accuracy,
        "images_per_s": result.images / seconds if seconds > 0 else None,
    }


def _remove_partial_writes(*folders: Path) -> None:
    """Temporary files of atomic writes that a killed run left behind (fsutil names them ``.<name>.tmp-<pid>``)."""
    for folder in folders:
        for leftover in folder.rglob(".*.tmp-*") if folder.is_dir() else ():
            if leftover.is_file():
                leftover.unlink()


def _losses(result: EpochResult) -> str:
    g_loss = "no G step" if result.g_loss is None else f"g_loss {result.g_loss:.4g}"
    return f"d_loss {result.d_loss:.4g}, {g_loss}"
