"""DVC stage `train`: data/augmented (or data/real) -> models/gan + reports/train.

Trains the generator gan.arch names, a GAN or the diffusion model.
Multi-GPU (or multi-process CPU): `torchrun --nproc_per_node=K stages/train.py`.
"""

from histosynth import paths
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.generators import default_train_dir, train

if __name__ == "__main__":
    setup_logging()

    def job() -> None:
        params = load_params(stage="train").gan  # inside run_guarded: a bad params.yaml is one error line
        train(params, default_train_dir(params), paths.REAL_DIR, paths.GAN_DIR, paths.TRAIN_REPORT_DIR)

    run_guarded(job)
