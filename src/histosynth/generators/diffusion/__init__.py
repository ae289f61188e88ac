"""The class-conditional diffusion family (``gan.arch: ddpm``), built on the diffusers library.

A UNet with a class embedding and one extra *null* class, trained with the DDPM objective and
label dropout, sampled deterministically (DDIM with eta 0 or DPM-Solver++) with classifier-free
guidance from each image's own seeded initial noise. Nothing is downloaded: the networks and
schedulers are built from configs written here and stored in ``record.json``.
"""
