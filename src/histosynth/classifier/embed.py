"""Running a trained classifier over many images in bounded-memory batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from histosynth.classifier.model import SmallCNN, to_input

BATCH_SIZE = 512


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
def embed(model: SmallCNN, images: np.ndarray, desc: str = "features") -> Embedding:
    """Features and logits of (N, H, W, 3) uint8 ``images`` (the model is put in eval mode)."""
    model.eval()
    features = np.zeros((len(images), model.feature_dim), np.float32)
    logits = np.zeros((len(images), model.n_classes), np.float32)
    starts = range(0, len(images), BATCH_SIZE)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=len(starts) < 4):
        f = model.features(to_input(images[start : start + BATCH_SIZE]))
        features[start : start + len(f)] = f.numpy()
        logits[start : start + len(f)] = model.head(f).numpy()
    return Embedding(features, logits)
