"""Duplicates at ingest: each split is checked against the splits before it and against itself.

Splits are checked in train, val, test order, images in source order, so "earlier" means an
earlier split or an earlier image of the same split. What is kept about a duplicate image:

- per earlier split, the first image it duplicates (and the first one of another class, if
  any): the report's counts per split pair and its list of pairs;
- ``duplicate_of``: the first train image it duplicates ("" when none), the manifest column
  that lets the memorisation gate and the benchmark leave copies of training images out;
- up to EXAMPLES pairs with their pixels for the report's picture: conflicting labels first,
  then pairs across splits.

With ``drop``, val and test images that duplicate an earlier image are not written and not
indexed (a later copy of one is still found through the image it copies).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from histosynth.data.duplicates import find_matches
from histosynth.data.fingerprint import Fingerprints, fingerprint_all
from histosynth.images import read_png_rgb

EXAMPLES = 16


@dataclass(frozen=True, slots=True)
class ImageRef:
    split: str
    id: str
    class_name: str
    order: int  # position among all checked images, train first


@dataclass(frozen=True, slots=True)
class Finding:
    """``later`` duplicates ``earlier``."""

    later: ImageRef
    earlier: ImageRef
    exact: bool
    distance: float
    transform: str  # how ``earlier`` is flipped or rotated to match (histosynth.data.duplicates.TRANSFORMS)
    dropped: bool = False

    @property
    def conflict(self) -> bool:
        return self.later.class_name != self.earlier.class_name

    @property
    def kind(self) -> str:
        return "exact" if self.exact else "near"

    def priority(self) -> tuple:
        """Sort key of the report's examples: conflicting labels, then across splits, then exact."""
        return (not self.conflict, self.later.split == self.earlier.split, not self.exact, self.later.order,
                self.earlier.order)


@dataclass
class PairCounts:
    """Images of the later split of a split pair that duplicate an image of the earlier one."""

    images: int = 0
    exact: int = 0  # of them, with an exact copy there
    conflicting_labels: int = 0  # of them, duplicating an image of another class there


@dataclass
class _Record:
    first: Finding | None = None  # the earliest image duplicated in that split
    conflict: Finding | None = None  # the earliest one of another class
    exact: bool = False

    def add(self, finding: Finding) -> None:
        if self.first is None or finding.earlier.order < self.first.earlier.order:
            self.first = finding
        if finding.conflict and (self.conflict is None or finding.earlier.order < self.conflict.earlier.order):
            self.conflict = finding
        self.exact |= finding.exact


@dataclass(frozen=True)
class Example:
    finding: Finding
    earlier: np.ndarray
    later: np.ndarray


@dataclass
class DuplicateCheck:
    action: str  # warn | drop | group: data.duplicates.action resolved for the source
    max_distance: float
    image_size: int
    findings: list[Finding] = field(default_factory=list)
    counts: dict[tuple[str, str], PairCounts] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    _index: Fingerprints = field(default_factory=Fingerprints.empty)
    _refs: list[ImageRef] = field(default_factory=list)
    _paths: list[str] = field(default_factory=list)

    def check(self, split: str, refs: Sequence[tuple[str, str, str]], image: Callable[[int], np.ndarray],
              written: Path) -> tuple[list[bool], list[str]]:
        """Check one split: ``refs`` (id, class name, path relative to ``written``) and ``image(k)``
        (pixels) of each image. Return whether to drop each image, and its ``duplicate_of``.

        The images kept are indexed at their paths: their PNGs must be under ``written`` before
        the next split is checked."""
        start = sum(self.checked.values())
        batch = [ImageRef(split, image_id, name, start + k) for k, (image_id, name, _) in enumerate(refs)]
        prints = fingerprint_all(len(batch), image, self.image_size)
        earlier_pixels = self._reader(written)
        records = self._records(batch, prints, image, earlier_pixels)
        drop = [False] * len(batch)
        if self.action == "drop" and split != "train":
            for later, _ in records:
                drop[later] = True
        duplicate_of = [""] * len(batch)
        for (later, earlier_split), record in sorted(records.items(), key=lambda item: item[0]):
            counts = self.counts.setdefault((earlier_split, split), PairCounts())
            counts.images += 1
            counts.exact += record.exact
            counts.conflicting_labels += record.conflict is not None
            if earlier_split == "train":
                duplicate_of[later] = record.first.earlier.id
            for finding in dict.fromkeys((record.first, record.conflict)):
                if finding is not None:
                    finding = dataclasses.replace(finding, dropped=drop[later])
                    self.findings.append(finding)
                    self._offer_example(finding, start, image, earlier_pixels)
        kept = [k for k in range(len(batch)) if not drop[k]]
        self._index = Fingerprints.concat([self._index, prints.take(kept)])
        self._refs.extend(batch[k] for k in kept)
        self._paths.extend(refs[k][2] for k in kept)
        self.checked[split] = len(batch)
        self.dropped[split] = len(batch) - len(kept)
        return drop, duplicate_of

    def _records(self, batch: list[ImageRef], prints: Fingerprints, image: Callable[[int], np.ndarray],
                 earlier_pixels: Callable[[int], np.ndarray]) -> dict[tuple[int, str], _Record]:
        """(batch position, earlier split) -> what that image duplicates in that split."""
        records: dict[tuple[int, str], _Record] = {}

        def wanted(later: int, earlier: int, indexed: bool) -> bool:
            """Could this candidate change the record? Not once an exact copy is known, unless it
            may be the first copy of another class."""
            ref = self._refs[earlier] if indexed else batch[earlier]
            record = records.get((later, ref.split))
            if record is None or not record.exact:
                return True
            return record.conflict is None and ref.class_name != batch[later].class_name

        for match in find_matches(prints, image, self._index, earlier_pixels, self.max_distance, wanted):
            earlier = self._refs[match.earlier] if match.earlier_indexed else batch[match.earlier]
            finding = Finding(batch[match.later], earlier, match.exact, match.distance, match.transform)
            records.setdefault((match.later, earlier.split), _Record()).add(finding)
        return records

    def _reader(self, written: Path) -> Callable[[int], np.ndarray]:
        return lambda j: read_png_rgb(written / self._paths[j])

    def _offer_example(self, finding: Finding, batch_start: int, image: Callable[[int], np.ndarray],
                       earlier_pixels: Callable[[int], np.ndarray]) -> None:
        if len(self.examples) == EXAMPLES and finding.priority() >= self.examples[-1].finding.priority():
            return
        order = finding.earlier.order
        if order >= batch_start:
            earlier = image(order - batch_start)
        else:  # indexed images are in order: find it by bisection
            earlier = earlier_pixels(bisect.bisect_left(self._refs, order, key=lambda ref: ref.order))
        self.examples.append(Example(finding, earlier, image(finding.later.order - batch_start)))
        self.examples.sort(key=lambda example: example.finding.priority())
        del self.examples[EXAMPLES:]
