"""Inception FID from a local weights file (no download): loading, refusals, and the figures it adds.

The real FID Inception weights cannot be fetched here, so the end-to-end test builds a file
of the same architecture with random weights: everything from the file on runs for real.
"""

import numpy as np
import pytest
import torch
from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

from conftest import write_image_folder
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import FeaturenetParams
from histosynth.errors import ConfigError
from histosynth.generate.sampler import single_torch_thread
from histosynth.qa.inception import load_inception
from histosynth.qa.run import run_qa


def test_a_file_with_pickled_code_or_other_tensors_is_refused(tmp_path):
    pickled = tmp_path / "pickled.pth"
    torch.save({"weights": object()}, pickled)
    with pytest.raises(ConfigError, match="not a tensors-only PyTorch weights file"):
        load_inception(pickled)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ConfigError, match="not the FID Inception-V3 weights"):
        load_inception(other)


@pytest.fixture
def random_inception_weights(tmp_path, monkeypatch):
    """A state dict of torch-fidelity's Inception architecture with random weights."""
    with monkeypatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
def test_inception_fid_is_reported_beside_its_floor(tmp_path, random_inception_weights):
    real = write_image_folder(tmp_path / "real", {"train": 6, "val": 6, "test": 2})
    synthetic = write_image_folder(tmp_path / "synthetic", {"train": 6}, seed=5, source="synthetic")
    train_featurenet(FeaturenetParams(epochs=2, folds=2), real, tmp_path / "featurenet")
    params = params_from_mapping({"qa": {"enforce": False, "fid": {"inception_weights": str(random_inception_weights)},
                                         "cas": {"enabled": False}}}).qa
    with single_torch_thread():  # 2048-d eigen-decompositions crawl on two threads of a busy machine
        metrics = run_qa(params, real, synthetic, tmp_path / "featurenet", tmp_path / "qa").metrics
    overall = metrics["fid"]
    assert set(overall) == {"fid", "fid_real_floor", "fid_real_floor_sd", "inception_fid", "inception_fid_real_floor",
                            "inception_fid_real_floor_sd"}
    assert np.isfinite(overall["inception_fid"]) and overall["inception_fid"] >= 0
    assert np.isfinite(overall["inception_fid_real_floor"]) and overall["inception_fid_real_floor"] >= 0
