"""Label-conditioned GANs: architectures, losses, limited-data tricks, training and sampling."""
