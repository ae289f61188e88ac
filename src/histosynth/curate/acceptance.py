"""Curation's tests of a candidate on its own: does a real-trained classifier recognise its class, and
does it lie among real images? (Near copies are the third test; they need the whole copy reference.)

Both thresholds are quantiles of what the real train images score out of fold (``curate.*``), so the
tests mean the same on every data set. The ``curate`` stage applies them to every candidate; training
applies them to its checkpoints' samples when ``gan.select.by`` is ``curated_colour``, so that the
colours it chooses by are those of images curation would keep.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from histosynth.classifier.crossfit import load_fold_models, load_out_of_fold, out_of_fold_probabilities
from histosynth.config.curate import CurateParams
from histosynth.curate.scores import Embedding, RealismReference, confidence, embed_all
from histosynth.errors import DataError
from histosynth.image_sets import open_image_set
from histosynth.manifest import class_names_of, read_manifest

REALISM_MAJORITY = 0.5  # realistic in at least half of the fold models' feature spaces


@dataclass(frozen=True)
class CandidateTests:
    """Per class confidence thresholds and per fold model the realism reference and threshold."""

    class_names: tuple[str, ...]
    models: list[nn.Module]
    confidence_thresholds: np.ndarray  # (K,)
    realism: list[tuple[RealismReference, float]]
    fold_of: dict[str, int]  # real train image id -> the fold whose model never saw it
    identity: str  # MD5 of the thresholds: what a choice made with these tests depends on

    @classmethod
    def of(cls, params: CurateParams, real_dir: Path, featurenet_dir: Path) -> "CandidateTests":
        """Calibrate on the real train split of ``real_dir`` with ``featurenet_dir``'s cross-fitted classifiers."""
        manifest = read_manifest(real_dir)
        names = tuple(class_names_of(manifest))
        train = open_image_set(real_dir, "train")  # read a batch at a time
        train_ids = manifest.loc[manifest["split"] == "train", "id"].to_numpy(str)
        models = load_fold_models(featurenet_dir)
        oof = load_out_of_fold(featurenet_dir).set_index("id")
        if set(train_ids) - set(oof.index):
            raise DataError(f"{featurenet_dir}: its cross-fitted classifiers were trained on other data than "
                            f"{real_dir}; retrain them (`dvc repro featurenet`)")
        oof = oof.loc[train_ids]
        p_true = out_of_fold_probabilities(oof)[np.arange(len(train)), train.labels]
        thresholds = np.array([np.quantile(p_true[train.labels == c], params.confidence_quantile)
                               if np.any(train.labels == c) else 0.0 for c in range(len(names))])
        folds = oof["fold"].to_numpy()
        realism = []
        for j, embedding in enumerate(embed_all(models, train.images)):
            unseen = folds == j
            reference = RealismReference.of(embedding.features[unseen], params.realism_k)
            realism.append((reference, float(np.quantile(reference.real_scores(embedding.features[unseen]),
                                                          params.realism_quantile))))
        identity = hashlib.md5(json.dumps({"confidence": thresholds.tolist(), "realism": [t for _, t in realism],
                                           "k": params.realism_k}).encode(), usedforsecurity=False).hexdigest()
        return cls(names, models, thresholds, realism, dict(zip(train_ids.tolist(), folds.tolist())), identity)

    def score(self, embeddings: list[Embedding], labels: np.ndarray,
              source_folds: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per image: confidence, mean realism, the share of fold models it is realistic in, and each test."""
        probability = confidence(embeddings, labels, source_folds)
        realism = np.array([ref.scores(e.features) for e, (ref, _) in zip(embeddings, self.realism)])
        votes = (realism >= np.array([t for _, t in self.realism])[:, None]).mean(axis=0)
        return {"confidence": probability, "realism": realism.mean(axis=0), "realism_votes": votes,
                "passed_confidence": probability >= self.confidence_thresholds[labels],
                "passed_realism": votes >= REALISM_MAJORITY}

    def accepts(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Which of ``images`` (uint8 NHWC, made as ``labels``) pass both tests."""
        scores = self.score(embed_all(self.models, images), labels)
        return scores["passed_confidence"] & scores["passed_realism"]
