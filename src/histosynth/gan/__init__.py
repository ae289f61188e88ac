"""Label-conditioned GANs: models, losses, training, checkpoints."""
