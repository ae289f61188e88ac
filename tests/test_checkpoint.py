import json

import pytest
import torch

from histosynth.errors import DataError
from histosynth.generators import load_sampling_model
from histosynth.generators.gan.models import build_generator
from histosynth.generators.training import checkpoint
from histosynth.images import md5_file

SPEC = dict(arch="dcgan", n_classes=3, image_size=32, latent_dim=16, width=4)


def _write_generator(model_dir, **overrides):
    spec = SPEC | overrides
    torch.manual_seed(0)
    generator = build_generator(spec["arch"], spec["n_classes"], spec["image_size"], spec["latent_dim"], spec["width"])
    checkpoint.save_generator(model_dir, generator.state_dict())
    checkpoint.write_record(model_dir, spec | {"class_names": ["a", "b", "c"], "epoch": 1})
    return generator.eval()


def test_training_state_round_trips_and_loads_with_weights_only(tmp_path):
    state = {"epoch": 3, "fingerprint": "abc", "history": [{"epoch": 1, "d_loss": 0.5, "real_vs_fake_accuracy": None}],
             "generator": {"w": torch.arange(4.0)}, "betas": (0.5, 0.999)}
    checkpoint.save_training_state(tmp_path, state)
    raw = torch.load(tmp_path / checkpoint.CHECKPOINT_FILE, weights_only=True)
    assert raw["history"] == state["history"] and raw["betas"] == (0.5, 0.999)
    loaded = checkpoint.load_training_state(tmp_path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["generator"]["w"], torch.arange(4.0))
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_missing_state_is_none_and_unreadable_state_is_a_data_error(tmp_path):
    assert checkpoint.load_training_state(tmp_path) is None
    (tmp_path / checkpoint.CHECKPOINT_FILE).write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable histosynth checkpoint"):
        checkpoint.load_training_state(tmp_path)


class Payload:
    """Any class: unpickling it could run code, so weights-only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"obj": Payload()}, tmp_path / checkpoint.CHECKPOINT_FILE)
    with pytest.raises(DataError, match="not a readable histosynth checkpoint"):
        checkpoint.load_training_state(tmp_path)


def test_load_sampling_model_rebuilds_the_recorded_architecture(tmp_path):
    original = _write_generator(tmp_path)
    generator, record, _ = load_sampling_model(tmp_path)
    assert record["class_names"] == ["a", "b", "c"]
    assert not generator.training
    z, y = torch.randn(6, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert torch.equal(generator(z, y), original(z, y))


def test_checkpoint_hash_is_the_generator_file_md5(tmp_path):
    _write_generator(tmp_path)
    assert checkpoint.checkpoint_hash(tmp_path) == md5_file(tmp_path / checkpoint.GENERATOR_FILE)


def test_weights_that_do_not_match_the_record_are_a_data_error(tmp_path):
    _write_generator(tmp_path)
    record = json.loads((tmp_path / checkpoint.RECORD_FILE).read_text())
    checkpoint.write_record(tmp_path, record | {"width": 8})
    with pytest.raises(DataError, match="do not match the architecture"):
        load_sampling_model(tmp_path)


def test_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="no training record.*dvc repro train"):
        load_sampling_model(tmp_path)
    with pytest.raises(DataError, match="generator weights missing"):
        checkpoint.checkpoint_hash(tmp_path)


def test_the_model_record_floor_reads_what_the_families_write(tmp_path):
    """histosynth.model_record (what package and generate read) and the GAN's checkpoint module name the same
    files and read a record the same way, until the families import it."""
    from histosynth import model_record

    assert (model_record.CHECKPOINT_FILE, model_record.GENERATOR_FILE, model_record.RECORD_FILE) == \
        (checkpoint.CHECKPOINT_FILE, checkpoint.GENERATOR_FILE, checkpoint.RECORD_FILE)
    assert model_record.RECORD_FIELDS == checkpoint.RECORD_FIELDS
    _write_generator(tmp_path)
    assert model_record.read_record(tmp_path) == checkpoint.read_record(tmp_path)
    assert model_record.checkpoint_hash(tmp_path) == checkpoint.checkpoint_hash(tmp_path)
    (tmp_path / checkpoint.RECORD_FILE).write_text(json.dumps(SPEC | {"class_names": ["a"]}))
    for read in (model_record.read_record, checkpoint.read_record):
        with pytest.raises(DataError, match="n_classes = 3 but 1 class names"):
            read(tmp_path)
