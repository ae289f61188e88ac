"""DVC stage `train`: data/augmented (or data/real) -> models/gan + reports/train.

Trains the generator gan.arch names, a GAN or the diffusion model.
Multi-GPU (or multi-process CPU): `torchrun --nproc_per_node=K stages/train.py`.
"""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("train")
