"""Running a trained classifier over many images in bounded-memory batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from histosynth import progress
from histosynth.classifier.model import SmallCNN, to_input
from histosynth.image_store import Images
from histosynth.torch_runtime import single_torch_thread

# Images per evaluation batch: 512 up to 32 px, fewer above so that a batch holds at most as many pixels
# (at 224 px, 512 images made 1.6 GB activations per layer and the benchmark 4.6 GB; 10 images make 33 MB).
BATCH_SIZE = 512
BATCH_PIXELS = BATCH_SIZE * 32 * 32


def eval_batch_size(images: Images) -> int:
    """Images per batch for (N, H, W, 3) ``images``: :data:`BATCH_SIZE`, or fewer for images above 32 px."""
    height, width = images.shape[1:3]
    return max(1, min(BATCH_SIZE, BATCH_PIXELS // max(height * width, 1)))


@dataclass(frozen=True)
class Embedding:
    features: np.ndarray  # (N, feature_dim) float32, the pooled penultimate activations
    logits: np.ndarray  # (N, n_classes) float32

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    def subset(self, index: np.ndarray) -> "Embedding":
        return Embedding(self.features[index], self.logits[index])


@torch.inference_mode()
def embed(model: SmallCNN, images: Images, desc: str = "features") -> Embedding:
    """Features and logits of (N, H, W, 3) uint8 ``images`` (an array or stored images, read a batch
    at a time; the model is put in eval mode)."""
    model.eval()
    features = np.zeros((len(images), model.feature_dim), np.float32)
    logits = np.zeros((len(images), model.n_classes), np.float32)
    size = eval_batch_size(images)
    for start in progress.bar(range(0, len(images), size), desc=desc, unit="batch", leave=False, min_total=4):
        f = model.features(to_input(images[start : start + size]))
        features[start : start + len(f)] = f.numpy()
        logits[start : start + len(f)] = model.head(f).numpy()
    return Embedding(features, logits)


@torch.inference_mode()
def predict_proba(model: nn.Module, images: Images) -> np.ndarray:
    """Softmax class probabilities (N, n_classes) float32 of (N, H, W, 3) uint8 ``images`` (an array
    or stored images, read a batch at a time).

    Computed on one torch thread, in fixed batches, so the same model and images give the same
    bits on any machine (the thread count can change the last bits of a convolution).
    """
    model.eval()
    size = eval_batch_size(images)
    with single_torch_thread():
        batches = [torch.softmax(model(to_input(images[start : start + size])), dim=1).numpy()
                   for start in range(0, len(images), size)]
    return np.concatenate(batches).astype(np.float32, copy=False)
