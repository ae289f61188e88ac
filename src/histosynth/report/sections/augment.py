"""The augmentation section: per class, the preview the augment stage draws (a row of originals, under
each its affine children), from reports/augment/<class folder>.png."""

from __future__ import annotations

from pathlib import Path

from histosynth import paths
from histosynth.fsutil import unique_safe_names
from histosynth.report.grids import as_png
from histosynth.report.inputs import Missing


def augment_section(root: Path, class_names: list[str]) -> list[tuple[str, bytes | Missing]] | Missing:
    """(class, preview) in label order; without a class list (no real images yet), every preview by file name."""
    folder = root / paths.AUGMENT_REPORT_DIR
    if not folder.is_dir():
        return Missing("augment")
    if not class_names:
        previews = sorted(folder.glob("*.png"))
        return [(path.stem, as_png(path)) for path in previews] if previews else Missing("augment")
    return [(name, as_png(path) if (path := folder / f"{safe}.png").is_file()
             else Missing("augment", reason=f"no preview for this class in {paths.AUGMENT_REPORT_DIR}: run "
                                            "`dvc repro augment`"))
            for name, safe in zip(class_names, unique_safe_names(class_names))]
