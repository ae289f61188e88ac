"""histosynth: versioned real + GAN-synthesised microscopy datasets."""
__version__ = "0.1.0"
