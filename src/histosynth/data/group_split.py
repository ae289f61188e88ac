"""The split of a ``folder:`` source: seeded, stratified by class, and no group in two splits.

Targets per class of n images: ``round(test_fraction * n)`` test and ``round(val_fraction * n)``
val images (halves round up; at least one each for a non-zero fraction), the rest train; a
class too small to leave a training image is an error.

Groups (histosynth.data.grouping) are placed one at a time, the largest first; groups of one
size in a seeded order: per home class (the class most of a group's images have, the lowest
label on a tie) a permutation seeded with (data.seed, SPLIT_STREAM, class), the classes
interleaved. A group goes to a held-out split when at least half of its images fill open
places of their class there: to test while the groups still to come can fill both test and
val, otherwise to whichever of the two has the larger share of its places open; else to
train, and never when that would leave a class without a training image. When every image is
its own group this is exactly the image-by-image split of earlier versions: per class, the
first images of the permutation go to test, the next to val.

Groups are not divisible, so the counts can only approach the targets. Afterwards a split with
a non-zero fraction that got nothing receives the smallest train group that can go (an error
when none can); a class left without val or test images is a warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from histosynth.errors import DataError

log = logging.getLogger(__name__)

SPLIT_STREAM = 1  # keeps this generator apart from other seeded choices made from data.seed
HELD_OUT = ("test", "val")  # filled in this order


def split_count(fraction: float, n: int) -> int:
    """round(fraction * n) with halves up, and at least 1 for a non-zero fraction."""
    return max(1, math.floor(fraction * n + 0.5)) if fraction > 0 else 0


def split_by_groups(labels: Sequence[int], groups: Sequence[str], class_names: Sequence[str], val_fraction: float,
                    test_fraction: float, seed: int) -> list[str]:
    """The split (train, val or test) of each image, as described in the module docstring."""
    labels = np.asarray(labels, dtype=np.int64)
    fractions = {"test": test_fraction, "val": val_fraction}
    per_class = np.bincount(labels, minlength=len(class_names))
    targets = {s: np.array([split_count(fractions[s], int(n)) for n in per_class]) for s in HELD_OUT}
    _require_training_room(per_class, targets, class_names, val_fraction, test_fraction)

    position: dict[str, int] = {}
    group_of = np.array([position.setdefault(g, len(position)) for g in groups], dtype=np.int64)
    counts = np.zeros((len(position), len(class_names)), dtype=np.int64)
    np.add.at(counts, (group_of, labels), 1)
    order = _placing_order(counts, seed)

    placed = np.array(["train"] * len(position), dtype=object)
    open_places = {s: targets[s].copy() for s in HELD_OUT}
    train_left, unplaced = per_class.copy(), per_class.copy()
    for g in order:
        members = counts[g]
        unplaced -= members
        if _holds_last_training_images(members, train_left):
            continue
        split = _held_out_split(members, open_places, targets, unplaced)
        if split is not None:
            placed[g] = split
            open_places[split] = np.maximum(open_places[split] - members, 0)
            train_left -= members
    _give_every_split_a_group(placed, counts, order, train_left, fractions)
    _warn_missing_classes(placed, counts, class_names, fractions)
    return placed[group_of].tolist()


def _holds_last_training_images(members: np.ndarray, train_left: np.ndarray) -> bool:
    return bool(np.any((members > 0) & (members >= train_left)))


def _held_out_split(members: np.ndarray, open_places: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                    unplaced: np.ndarray) -> str | None:
    """Where a group goes: a held-out split where at least half of its images fill open places,
    test first unless the groups still to come cannot fill both splits' open places of its
    classes, in which case the split with the larger open share of its target; None = train."""
    fits = [s for s in HELD_OUT if 2 * np.minimum(members, open_places[s]).sum() >= members.sum()]
    if len(fits) < 2:
        return fits[0] if fits else None
    mine = members > 0
    if np.all(unplaced[mine] >= (open_places["test"] + open_places["val"])[mine]):
        return "test"
    share = {s: open_places[s][mine].sum() / max(1, targets[s][mine].sum()) for s in HELD_OUT}
    return "test" if share["test"] >= share["val"] else "val"


def _require_training_room(per_class: np.ndarray, targets: dict[str, np.ndarray], class_names: Sequence[str],
                           val_fraction: float, test_fraction: float) -> None:
    for label, name in enumerate(class_names):
        n, n_val, n_test = int(per_class[label]), int(targets["val"][label]), int(targets["test"][label])
        if n - n_val - n_test < 1:
            raise DataError(f"class {name!r} has {n} usable image(s): too few for data.val_fraction ="
                            f" {val_fraction} and data.test_fraction = {test_fraction}, which"
                            f" take {n_val} and {n_test} and leave none for training; add images or lower"
                            " the fractions")


def _placing_order(counts: np.ndarray, seed: int) -> list[int]:
    sizes, home = counts.sum(axis=1), counts.argmax(axis=1)
    rank = np.zeros(len(counts), dtype=np.int64)
    for label in range(counts.shape[1]):
        members = np.flatnonzero(home == label)  # in order of first appearance
        permutation = np.random.default_rng([seed, SPLIT_STREAM, label]).permutation(len(members))
        rank[members[permutation]] = np.arange(len(members))
    return sorted(range(len(counts)), key=lambda g: (-sizes[g], rank[g], home[g]))


def _give_every_split_a_group(placed: np.ndarray, counts: np.ndarray, order: list[int], train_left: np.ndarray,
                              fractions: dict[str, float]) -> None:
    for split in HELD_OUT:
        if fractions[split] == 0 or (placed == split).any():
            continue
        movable = [g for g in order if placed[g] == "train" and not _holds_last_training_images(counts[g], train_left)]
        if not movable:
            raise DataError(f"the {len(placed)} group(s) of this folder cannot be shared out so that {split} gets one"
                            " and every class keeps a training image; add patients/groups, set"
                            f" data.{split}_fraction: 0, or group more finely (data.group)")
        g = min(reversed(movable), key=lambda g: counts[g].sum())  # the smallest, placed last among equals
        placed[g] = split
        train_left -= counts[g]
        log.warning("no group fitted the %s fraction (%.2f); %s gets the smallest group that can go (%d image(s))",
                    split, fractions[split], split, counts[g].sum())


def _warn_missing_classes(placed: np.ndarray, counts: np.ndarray, class_names: Sequence[str],
                          fractions: dict[str, float]) -> None:
    for split in HELD_OUT:
        if fractions[split] == 0:
            continue
        present = counts[placed == split].sum(axis=0) > 0
        for label in np.flatnonzero(~present):
            n_groups = int((counts[:, label] > 0).sum())
            log.warning("class %r has no %s images: its %d image(s) lie in %d group(s) that went elsewhere",
                        class_names[label], split, counts[:, label].sum(), n_groups)
