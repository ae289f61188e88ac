"""The package database as the package stage builds it: the SQL rows (:mod:`histosynth.package.sql`)
fed with the generator's network documents and the QA gates' names."""

from __future__ import annotations

from typing import Any

import pandas as pd

from histosynth.package.networks import describe_gan
from histosynth.package.sql import PackageDatabase, build_database
from histosynth.qa.registry import GATES


def package_database(metadata: pd.DataFrame, gan_record: dict[str, Any], qa_metrics: dict[str, Any] | None,
                     *, name: str | None = None, version: str | None = None) -> PackageDatabase:
    """:func:`~histosynth.package.sql.build_database` for a package's metadata, the generator's training
    record (``models/gan/record.json``) and the QA metrics (``reports/qa/metrics.json``, None = no QA run)."""
    return build_database(metadata, gan_record, qa_metrics, networks=describe_gan(gan_record),
                          gate_of_metric={gate.metric: gate.name for gate in GATES}, name=name, version=version)
