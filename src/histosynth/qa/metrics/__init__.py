"""One small module per metric, each a pure function of arrays. How QA applies them per class,
with their draws and real-vs-real floors, is in histosynth.qa.evaluate; which gates judge them is in
histosynth.qa.registry."""

from histosynth.qa.metrics import colour_kl, duplicates, fid, label_agreement, memorisation, prdc

__all__ = ["colour_kl", "duplicates", "fid", "label_agreement", "memorisation", "prdc"]
