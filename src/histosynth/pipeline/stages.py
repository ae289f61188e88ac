"""Every stage of the pipeline, defined once, in pipeline order (DESIGN.md "Stages").

Each definition names the params it reads, its slots (the folders its runner reads and writes,
with the command-line option that moves each), what DVC tracks of them, and its runner. The DVC
stage scripts, the CLI commands, the tests and the studies run these definitions
(:mod:`histosynth.pipeline.run`); ``tests/test_dvc_yaml.py`` checks dvc.yaml against them.

A runner imports its stage's code when it runs, never at the top of this module: a stage's code
dependencies (which dvc.yaml lists) are what its own runner imports, not every stage's.
"""

from __future__ import annotations

from pathlib import Path

from histosynth import paths
from histosynth.config import Params
from histosynth.errors import ConfigError
from histosynth.pipeline.definition import Slot, Stage, StageIO, Tracked, index

REAL_MANIFEST, REAL_TRAIN, REAL_VAL = (paths.REAL_DIR / part for part in (paths.MANIFEST_NAME, "train", "val"))
QA_METRICS = paths.QA_REPORT_DIR / "metrics.json"


def _ingest(params: Params, io: StageIO) -> None:
    from histosynth.data.ingest import ingest

    ingest(params.data, io["out"], io["report"])


def _augment(params: Params, io: StageIO) -> None:
    from histosynth.augment import augment

    augment(params.augment, io["real"], io["out"], io["preview"])


def _train(params: Params, io: StageIO) -> None:
    from histosynth.generators import default_train_dir, train

    data = io["data"] or io.locate(default_train_dir(params.gan))
    sample_filter = None
    if params.gan.select.by == "curated_colour":
        from histosynth.curate.acceptance import CandidateTests
        from histosynth.output_policy import check_outputs

        if not params.curate.enabled:
            raise ConfigError("gan.select.by = curated_colour scores samples as curation keeps them, but curation is "
                              "off (curate.enabled: false); set gan.select.by: train_colour")
        # train checks its outputs too, but curation's tests read the inputs first
        check_outputs({"model folder": io["out"], "report folder": io["report"]},
                      {"training images": data, "real images": io["real"], "feature net": io["featurenet"]})
        sample_filter = CandidateTests.of(params.curate, io["real"], io["featurenet"])
    train(params.gan, data, io["real"], io["out"], io["report"], sample_filter)


def _generate(params: Params, io: StageIO) -> None:
    from histosynth.generate.run import generate

    candidates = params.generate.model_copy(update={"n_per_class": params.generate.candidates_per_class})
    generate(candidates, io["checkpoint"], io["out"], io["real"])


def _featurenet(params: Params, io: StageIO) -> None:
    from histosynth.classifier.featurenet import train_featurenet
    from histosynth.parallel import usable_cores

    # the copies train side by side on every usable core: the same bytes as one after the other
    train_featurenet(params.qa.featurenet, io["real"], io["out"], io["report"], workers=usable_cores())


def _curate(params: Params, io: StageIO) -> None:
    from histosynth.curate.stage import curate

    curate(params.curate, params.generate.n_per_class, io["candidates"], io["real"], io["augmented"],
           io["featurenet"], io["out"], io["report"])


def _qa(params: Params, io: StageIO) -> None:
    from histosynth.qa.run import run_qa

    run_qa(params.qa, io["real"], io["synthetic"], io["featurenet"], io["out"], io["augmented"])


def _package(params: Params, io: StageIO) -> None:
    from histosynth.package.stage import build_package, git_revision

    build_package(params, io["real"], io["synthetic"], io["gan"], io["qa_metrics"], io["out"],
                  revision=git_revision(io.root))


def _benchmark(params: Params, io: StageIO) -> None:
    from histosynth.benchmark.run import run_benchmark

    run_benchmark(params.benchmark, params.augment, io["package"], io["augmented"], io["out"])


def _report(params: Params, io: StageIO) -> None:
    from histosynth.report.build import build_report

    build_report(io.root, io["out"])


def _in(name: str, path: Path | None, help: str, option: str | None = None, command_line: bool = True) -> Slot:
    return Slot(name, path, option or f"--{name.replace('_', '-')}", help, command_line=command_line)


def _out(name: str, path: Path, help: str, option: str | None = None, command_line: bool = True) -> Slot:
    return Slot(name, path, option or f"--{name.replace('_', '-')}", help, output=True, command_line=command_line)


REAL_HELP = "Folder written by `ingest`."

STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest", "Read the data source named by data.source into split class folders.", _ingest,
        params=("data",),
        slots=(_out("out", paths.REAL_DIR, "Output folder (train/val/test class folders + manifest)."),
               _out("report", paths.INGEST_REPORT_DIR, "Folder for the duplicates report (the DVC stage writes "
                    "reports/ingest; from the command line only when given).", command_line=False)),
        deps=(),
        outputs=(Tracked(paths.REAL_DIR),
                 Tracked(paths.INGEST_REPORT_DIR / "duplicates.tsv", cache=False),  # every duplicate pair found
                 Tracked(paths.INGEST_REPORT_DIR / "duplicates.json", "metrics", cache=False),
                 Tracked(paths.INGEST_REPORT_DIR / "duplicates.png", "plots", cache=False)),
    ),
    Stage(
        "augment", "Rudi-style affine augmentation of the real train split to augment.per_class per class.", _augment,
        params=("augment",),
        slots=(_in("real", paths.REAL_DIR, REAL_HELP),
               _out("out", paths.AUGMENTED_DIR, "Output folder (class folders + manifest)."),
               _out("preview", paths.AUGMENT_REPORT_DIR, "Folder for the per-class preview grids.")),
        deps=(paths.REAL_DIR,),
        outputs=(Tracked(paths.AUGMENTED_DIR), Tracked(paths.AUGMENT_REPORT_DIR, "plots", cache=False)),
    ),
    Stage(
        "featurenet", "Train the domain feature net that `qa` measures synthetic images with, and its cross-fitted "
                      "copies (qa.featurenet recipe).", _featurenet,
        params=("qa.featurenet",),
        slots=(_in("real", paths.REAL_DIR, "Folder written by `ingest` (its train and val splits are read)."),
               _out("out", paths.FEATURENET_DIR, "Output folder (weights.pt + record.json, the cross-fitted copies in "
                    "folds/ and their out-of-fold predictions); replaced."),
               _out("report", paths.FEATURENET_REPORT_DIR, "Folder for metrics.json and history.csv.")),
        deps=(REAL_MANIFEST, REAL_TRAIN, REAL_VAL),  # never the test split
        outputs=(Tracked(paths.FEATURENET_DIR),
                 Tracked(paths.FEATURENET_REPORT_DIR / "metrics.json", "metrics", cache=False),
                 Tracked(paths.FEATURENET_REPORT_DIR / "history.csv", "plots", cache=False,
                         plot={"x": "epoch", "y": "val_accuracy"})),
    ),
    Stage(
        "train", "Train (or resume) the generator named by gan.arch (a GAN or the diffusion model). Multi-GPU: run "
                 "under torchrun.", _train,
        params=("gan", "curate.enabled", "curate.confidence_quantile", "curate.realism_quantile",
                "curate.realism_k"),  # curation's tests, through which gan.select.by curated_colour scores
        slots=(_in("data", None, "Training images, a folder with a manifest (default: data/augmented, or data/real "
                   "when gan.train_on = real); its train split is used."),
               _in("real", paths.REAL_DIR, "Folder written by `ingest`; its val split feeds the real-vs-fake "
                   "probe, its train split the checkpoints' colour scores (gan.select)."),
               _in("featurenet", paths.FEATURENET_DIR, "Folder written by `featurenet`: its cross-fitted classifiers "
                   "are curation's tests, which gan.select.by curated_colour scores checkpoints through."),
               _out("out", paths.GAN_DIR, "Model folder (checkpoint.pt, generator.pt, record.json); a matching "
                    "checkpoint there is resumed."),
               _out("report", paths.TRAIN_REPORT_DIR, "Folder for sample grids, loss and probe curves, metrics.json.")),
        deps=(paths.AUGMENTED_DIR, paths.REAL_DIR, paths.FEATURENET_DIR),
        outputs=(Tracked(paths.GAN_DIR, persist=True),  # the checkpoint survives a kill: the next run resumes it
                 Tracked(paths.TRAIN_REPORT_DIR / "metrics.json", "metrics", cache=False),
                 Tracked(paths.TRAIN_REPORT_DIR / "losses.tsv", "plots", cache=False),
                 Tracked(paths.TRAIN_REPORT_DIR / "probe.tsv", "plots", cache=False),
                 Tracked(paths.TRAIN_REPORT_DIR / "colour.tsv", "plots", cache=False),
                 Tracked(paths.TRAIN_REPORT_DIR / "samples", "plots", cache=False, persist=True),
                 Tracked(paths.TRAIN_REPORT_DIR / "samples_final.png", "plots", cache=False)),
    ),
    Stage(
        "generate", "Sample generate.n_per_class x generate.overgenerate candidates per class from the trained "
                    "generator, with MD5SUMS per class and a manifest, for `curate`.", _generate,
        # generate.batch_size is read too, but changes no image: DVC does not rerun for it
        params=("generate.n_per_class", "generate.overgenerate", "generate.seed", "generate.device",
                "generate.precision", "generate.diffusion", "generate.mode", "generate.edit"),
        slots=(_in("checkpoint", paths.GAN_DIR, "Folder written by `train` (generator.pt + record.json)."),
               _in("real", paths.REAL_DIR, "Folder written by `ingest`: its train images are edited (generate.mode: "
                   "edit only)."),
               _out("out", paths.CANDIDATES_DIR, "Output folder (class folders with MD5SUMS + manifest); replaced.")),
        deps=(paths.GAN_DIR, REAL_MANIFEST, REAL_TRAIN),
        outputs=(Tracked(paths.CANDIDATES_DIR),),
    ),
    Stage(
        "curate", "Score every candidate (class confidence, realism, near-copy ratio) and keep the first n per class "
                  "that pass.", _curate,
        params=("curate", "generate.n_per_class"),
        slots=(_in("candidates", paths.CANDIDATES_DIR, "Candidates written by `generate` (a folder with a manifest)."),
               _in("real", paths.REAL_DIR, "Folder written by `ingest` (train and val splits are read)."),
               _in("augmented", paths.AUGMENTED_DIR, "Folder written by `augment` (near-copy reference)."),
               _in("featurenet", paths.FEATURENET_DIR, "Folder written by `featurenet` (its cross-fitted classifiers "
                   "score the candidates)."),
               _out("out", paths.SYNTHETIC_DIR, "Output folder for the kept images; replaced."),
               _out("report", paths.CURATE_REPORT_DIR, "Folder for scores.csv and metrics.json; replaced.")),
        deps=(paths.CANDIDATES_DIR, REAL_MANIFEST, REAL_TRAIN, REAL_VAL, paths.AUGMENTED_DIR, paths.FEATURENET_DIR),
        outputs=(Tracked(paths.SYNTHETIC_DIR), Tracked(paths.CURATE_REPORT_DIR, cache=False)),
    ),
    Stage(
        "qa", "Check synthetic images against real ones per class and apply the QA gates (qa.* thresholds).", _qa,
        params=("qa.enforce", "qa.seed", "qa.max_per_class", "qa.draws", "qa.floor_quantile", "qa.kl", "qa.fid",
                "qa.label", "qa.diversity", "qa.memorisation",
                "qa.cas", "qa.featurenet"),  # the classification accuracy score trains qa.featurenet's recipe
        slots=(_in("real", paths.REAL_DIR, "Real images with a manifest (as `ingest` writes them)."),
               _in("synthetic", paths.SYNTHETIC_DIR, "Synthetic images: a folder with a manifest, or plain class "
                   "folders named like the real ones."),
               _in("featurenet", paths.FEATURENET_DIR, "Folder written by `featurenet`."),
               _in("augmented", paths.AUGMENTED_DIR, "Affine children of the real train images, searched for copies "
                   "too (the DVC stage reads data/augmented; from the command line only when given).",
                   command_line=False),
               _out("out", paths.QA_REPORT_DIR, "Report folder (metrics.json, histograms, memorisation); replaced.")),
        deps=(REAL_MANIFEST, REAL_TRAIN, REAL_VAL, paths.AUGMENTED_DIR, paths.SYNTHETIC_DIR, paths.FEATURENET_DIR),
        outputs=(Tracked(QA_METRICS, "metrics", cache=False),
                 Tracked(paths.QA_REPORT_DIR / "histograms.csv", cache=False),
                 Tracked(paths.QA_REPORT_DIR / "histograms", cache=False),
                 Tracked(paths.QA_REPORT_DIR / "memorisation.csv", cache=False)),
    ),
    Stage(
        "package", "Merge real and QA-checked synthetic images into the publishable package (package.* params).",
        _package,
        params=("package", "qa.enforce", "data.source"),  # data.source: the card's provenance and licence
        slots=(_in("real", paths.REAL_DIR, "Real images with a manifest (as `ingest` writes them)."),
               _in("synthetic", paths.SYNTHETIC_DIR, "Synthetic images with a manifest (as `curate` writes them)."),
               _in("gan", paths.GAN_DIR, "Model folder with the training record.json."),
               _in("qa_metrics", QA_METRICS, "QA verdict written by `qa`."),
               _out("out", paths.PACKAGE_DIR, "Package folder; replaced when complete.")),
        deps=(paths.REAL_DIR, paths.SYNTHETIC_DIR, paths.GAN_DIR / "record.json", QA_METRICS),
        outputs=(Tracked(paths.PACKAGE_DIR),),
    ),
    Stage(
        "benchmark", "Train the same classifier for the same steps on real only, real + affine, real + synthetic, "
                     "real + affine + synthetic and synthetic only; test on real.", _benchmark,
        # augment.*: the affine_synthetic arm gives the synthetic images the augment stage's operations
        params=("benchmark", "augment"),
        slots=(_in("package", paths.PACKAGE_DIR, "Package folder (real splits + synthetic)."),
               _in("augmented", paths.AUGMENTED_DIR, "Folder written by `augment` (the affine arm)."),
               _out("out", paths.BENCHMARK_REPORT_DIR, "Report folder (metrics.json, roc/, confusion/, history/, "
                    "sweep.csv); replaced.")),
        deps=(paths.PACKAGE_DIR, paths.AUGMENTED_DIR),
        # metrics.json, roc/, confusion/, history/, sweep.csv: one folder written atomically
        outputs=(Tracked(paths.BENCHMARK_REPORT_DIR, cache=False),),
    ),
    Stage(
        "report", "Rebuild the self-contained HTML report: sample grids, QA verdicts, training and benchmark charts.",
        _report,
        params=(),
        slots=(_out("out", paths.REPORT_HTML, "HTML file to write (default: reports/index.html under --root)."),),
        deps=(paths.REAL_DIR, paths.SYNTHETIC_DIR, QA_METRICS, paths.QA_REPORT_DIR / "histograms",
              paths.TRAIN_REPORT_DIR / "losses.tsv", paths.TRAIN_REPORT_DIR / "probe.tsv",
              paths.TRAIN_REPORT_DIR / "metrics.json", paths.TRAIN_REPORT_DIR / "samples_final.png",
              paths.TRAIN_REPORT_DIR / "samples", paths.AUGMENT_REPORT_DIR, paths.FEATURENET_REPORT_DIR / "history.csv",
              paths.QA_REPORT_DIR / "memorisation.csv", paths.CURATE_REPORT_DIR, paths.CANDIDATES_DIR,
              paths.AUGMENTED_DIR, paths.BENCHMARK_REPORT_DIR),
        outputs=(Tracked(paths.REPORT_HTML),),  # 2 MB of inline images: DVC's cache, not git
        reads_project=True,
    ),
)

BY_NAME = index(STAGES)
NAMES = tuple(BY_NAME)


def stage(name: str) -> Stage:
    """The definition of stage ``name``."""
    return BY_NAME[name]
