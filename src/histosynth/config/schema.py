"""The whole params.yaml as one typed object."""

from __future__ import annotations

from histosynth.config.augment import AugmentParams
from histosynth.config.base import Section
from histosynth.config.benchmark import BenchmarkParams
from histosynth.config.curate import CurateParams
from histosynth.config.data import DataParams
from histosynth.config.gan import GanParams
from histosynth.config.generate import GenerateParams
from histosynth.config.package import PackageParams
from histosynth.config.qa import QaParams
from histosynth.config.study import StudyParams


class Params(Section):
    data: DataParams = DataParams()
    augment: AugmentParams = AugmentParams()
    gan: GanParams = GanParams()
    generate: GenerateParams = GenerateParams()
    curate: CurateParams = CurateParams()
    qa: QaParams = QaParams()
    package: PackageParams = PackageParams()
    benchmark: BenchmarkParams = BenchmarkParams()
    study: StudyParams = StudyParams()  # read by `histosynth study` only, no stage
