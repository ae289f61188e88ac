"""Inception-V3 features for an Inception FID comparable with the literature (optional).

Uses torch-fidelity's Inception (the TF-FID port: weights-inception-2015-12-05-6726825d.pth,
2048-d pool features) from a local weights file; nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from histosynth import progress
from histosynth.errors import ConfigError

log = logging.getLogger(__name__)

WEIGHTS_FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"
BATCH_SIZE = 64


def load_inception(weights: Path) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 giving the 2048-d features, from ``weights``."""
    weights = Path(weights)
    if not weights.is_file():
        raise ConfigError(f"qa.fid.inception_weights = {str(weights)!r}: file not found. Put torch-fidelity's "
                          f"{WEIGHTS_FILE_NAME} there (see docs/quality-gates.md, 'Inception FID'), or remove the key")
    try:  # refuse a file that would run pickled code: torch-fidelity itself loads it unrestricted
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"qa.fid.inception_weights = {str(weights)!r}: not a tensors-only PyTorch weights "
                          f"file ({type(err).__name__}); expected {WEIGHTS_FILE_NAME}") from None
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    except RuntimeError as err:  # load_state_dict: wrong or missing tensors
        first = str(err).splitlines()[0]
        raise ConfigError(f"qa.fid.inception_weights = {str(weights)!r}: not the FID Inception-V3 weights "
                          f"({first}); expected {WEIGHTS_FILE_NAME}") from None


@torch.inference_mode()
def inception_features(net: torch.nn.Module, images: np.ndarray, desc: str = "inception") -> np.ndarray:
    """(N, 2048) float32 features of (N, H, W, 3) uint8 images (resized to 299 inside the net)."""
    out = np.zeros((len(images), 2048), np.float32)
    for start in progress.bar(range(0, len(images), BATCH_SIZE), desc=desc, unit="batch", leave=False):
        batch = torch.as_tensor(images[start : start + BATCH_SIZE]).permute(0, 3, 1, 2).contiguous()
        (features,) = net(batch)
        out[start : start + len(batch)] = features.numpy()
    return out
