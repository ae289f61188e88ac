"""GAN training internals: run settings, data order, runtime (devices, DDP), loop, probe, monitoring."""
