"""One small module per metric, each a pure function of arrays.

``PAIR_METRICS`` are the metrics that compare a real set with a candidate set through
``compute(real, candidate, **options) -> dict``; QA computes each twice, once against the
synthetic images and once against other real images (the real-vs-real floor).
"""

from collections.abc import Callable

from histosynth.qa.metrics import colour_kl, duplicates, fid, label_agreement, memorisation, prdc

PAIR_METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "colour_kl": colour_kl.compute,  # on (N, H, W, 3) uint8 images
    "fid": fid.compute,  # on (N, D) features
    "prdc": prdc.compute,  # on (N, D) features
}

__all__ = ["PAIR_METRICS", "colour_kl", "duplicates", "fid", "label_agreement", "memorisation", "prdc"]
