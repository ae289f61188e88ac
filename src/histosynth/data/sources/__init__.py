"""Data sources by kind: ``data.source = "<kind>:<argument>"`` -> :class:`SourceImages`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from histosynth.config.data import SOURCE_KINDS, DataParams
from histosynth.data.source_images import SourceImages
from histosynth.data.sources.builtin_ihc import load_builtin
from histosynth.data.sources.folder import load_folder
from histosynth.data.sources.medmnist_source import load_medmnist
from histosynth.errors import ConfigError

LOADERS: dict[str, Callable[[DataParams], SourceImages]] = {
    "builtin": load_builtin,
    "medmnist": load_medmnist,
    "folder": load_folder,
}


def load_source(params: DataParams) -> SourceImages:
    """Open the source named by ``params.source`` (ConfigError/DataError when it cannot be used)."""
    loader = LOADERS.get(params.source_kind)
    if loader is None:
        raise ConfigError(f"data.source = {params.source!r}: unknown source kind; allowed: {', '.join(SOURCE_KINDS)}")
    return loader(params)


def source_paths(params: DataParams) -> dict[str, Path]:
    """What ingest reads from disk, by what it is: the folder of a ``folder:`` source, the CSV of
    ``data.group.by: csv`` (no output may be, hold or lie in one; ``data.root``: see ingest)."""
    read: dict[str, Path] = {}
    if params.source_kind == "folder":
        read["data.source folder"] = Path(params.source_arg).expanduser()
    if params.group.by == "csv":
        read["data.group.csv"] = Path(params.group.csv).expanduser()
    return read
