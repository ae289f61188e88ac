"""``histosynth``: the pipeline's jobs from the command line, outside DVC.

Each command calls the same library function as the matching DVC stage script and reads
params.yaml as strictly as the stage does. Commands are listed in pipeline order; exit
statuses are those of :mod:`histosynth.entry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from histosynth import __version__, paths
from histosynth.config import PARAMS_FILE, load_params
from histosynth.config.loader import with_options
from histosynth.entry import run_guarded, setup_logging

app = typer.Typer(
    help="Versioned real + GAN-synthesised microscopy datasets (see README.md). Exit statuses: 0 done, "
         "1 verify found damage, 2 usage, 3 params, 4 input, 5 QA gate failed, 6 training diverged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

STAGES = "Pipeline stages, in order"
PACKAGES = "Packages"

ParamsOption = typer.Option(PARAMS_FILE, "--params", "-p", help="params.yaml to read.")


def _verbose(value: bool) -> None:
    if value:
        setup_logging(verbose=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"histosynth {__version__}")
        raise typer.Exit()


# Accepted after any command as well as before it (`histosynth train -v`).
VerboseOption = typer.Option(False, "--verbose", "-v", help="Debug logging.", callback=_verbose,
                             expose_value=False, is_eager=True)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version,
                                 is_eager=True),
) -> None:
    setup_logging(verbose)


@app.command(rich_help_panel=STAGES)
def ingest(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    out: Path = typer.Option(paths.REAL_DIR, help="Output folder (train/val/test class folders + manifest)."),
) -> None:
    """Read the data source named by data.source into split class folders."""
    from histosynth.data.ingest import ingest as run

    run_guarded(lambda: run(load_params(params_file, "ingest").data, out))



@app.command(rich_help_panel=STAGES)
def augment(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    real: Path = typer.Option(paths.REAL_DIR, help="Folder written by `ingest`."),
    out: Path = typer.Option(paths.AUGMENTED_DIR, help="Output folder (class folders + manifest)."),
    preview: Path = typer.Option(paths.AUGMENT_REPORT_DIR, help="Folder for the per-class preview grids."),
) -> None:
    """Rudi-style affine augmentation of the real train split to augment.per_class per class."""
    from histosynth.augment import augment as run

    run_guarded(lambda: run(load_params(params_file, "augment").augment, real, out, preview))



@app.command(rich_help_panel=STAGES)
def train(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    data: Path | None = typer.Option(None, help="Training images, a folder with a manifest (default: data/augmented, "
                                     "or data/real when gan.train_on = real); its train split is used."),
    real: Path = typer.Option(paths.REAL_DIR, help="Folder written by `ingest`; its val split feeds the real-vs-fake probe."),
    out: Path = typer.Option(paths.GAN_DIR, help="Model folder (checkpoint.pt, generator.pt, record.json); a matching "
                             "checkpoint there is resumed."),
    report: Path = typer.Option(paths.TRAIN_REPORT_DIR, help="Folder for sample grids, loss and probe curves, metrics.json."),
    epochs: int | None = typer.Option(None, min=1, help="Train up to this epoch (default: gan.epochs)."),
    device: Literal["auto", "cpu", "cuda"] | None = typer.Option(None, help="Where to train (default: gan.device)."),
) -> None:
    """Train (or resume) the generator named by gan.arch (a GAN or the diffusion model). Multi-GPU: run under torchrun."""
    from histosynth.generators import default_train_dir
    from histosynth.generators import train as run

    def job() -> None:
        params = with_options(load_params(params_file, "train").gan, "gan", epochs=epochs, device=device)
        run(params, data or default_train_dir(params), real, out, report)

    run_guarded(job)



@app.command(rich_help_panel=STAGES)
def generate(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    checkpoint: Path = typer.Option(paths.GAN_DIR, help="Folder written by `train` (generator.pt + record.json)."),
    out: Path = typer.Option(paths.SYNTHETIC_DIR, help="Output folder (class folders with MD5SUMS + manifest); replaced."),
    n_per_class: int | None = typer.Option(None, min=1, help="Images per class (default: generate.n_per_class)."),
    seed: int | None = typer.Option(None, min=0, help="Latent seed (default: generate.seed)."),
    batch_size: int | None = typer.Option(None, min=1, help="Images generated ahead of the writers; changes no image "
                                          "(default: generate.batch_size)."),
    device: Literal["auto", "cpu", "cuda"] | None = typer.Option(
        None, help="Where the generator runs (default: generate.device)."),
    precision: Literal["auto", "fp32", "bf16"] | None = typer.Option(
        None, help="Generator arithmetic (default: generate.precision)."),
    sampler: Literal["ddim", "dpm"] | None = typer.Option(
        None, help="Diffusion checkpoints: DDIM or DPM-Solver++ (default: generate.diffusion.sampler, else the model's)."),
    steps: int | None = typer.Option(None, min=1, max=1000, help="Diffusion checkpoints: sampling steps per image "
                                     "(default: generate.diffusion.steps, else the model's)."),
    guidance: float | None = typer.Option(None, min=0.0, max=20.0, help="Diffusion checkpoints: classifier-free "
                                          "guidance scale (default: generate.diffusion.guidance, else the model's)."),
    mode: Literal["sample", "edit"] | None = typer.Option(
        None, help="sample: from noise; edit: diffusion checkpoints edit the real train images (default: generate.mode)."),
    strength: float | None = typer.Option(None, min=0.0, max=1.0, help="Edits: t0 as a fraction of the noise "
                                          "schedule, above 0 (default: generate.edit.strength)."),
    real: Path = typer.Option(paths.REAL_DIR, help="Folder written by `ingest`: its train images are edited "
                              "(edit mode only)."),
) -> None:
    """Sample N images per class from a trained generator, or edit the real train images with a diffusion one, with
    MD5SUMS per class and a manifest (the pipeline's `generate` stage writes n_per_class x overgenerate candidates
    to data/candidates for `curate`)."""
    from histosynth.generate import generate as run

    def job() -> None:
        params = load_params(params_file, "generate").generate
        if strength == 0:
            from histosynth.errors import ConfigError

            raise ConfigError("--strength 0 would copy the real images; give a strength above 0 (at most 1)")
        diffusion = with_options(params.diffusion, "generate.diffusion", sampler=sampler, steps=steps,
                                 guidance=guidance)
        edit = with_options(params.edit, "generate.edit", strength=strength)
        params = with_options(params, "generate", n_per_class=n_per_class, seed=seed, batch_size=batch_size,
                              device=device, precision=precision, diffusion=diffusion.model_dump(), mode=mode,
                              edit=edit.model_dump())
        run(params, checkpoint, out, real)

    run_guarded(job)



@app.command(rich_help_panel=STAGES)
def featurenet(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    real: Path = typer.Option(paths.REAL_DIR, help="Folder written by `ingest` (its train and val splits are read)."),
    out: Path = typer.Option(paths.FEATURENET_DIR, help="Output folder (weights.pt + record.json, the cross-fitted "
                             "copies in folds/ and their out-of-fold predictions); replaced."),
    report: Path = typer.Option(paths.FEATURENET_REPORT_DIR, help="Folder for metrics.json and history.csv."),
) -> None:
    """Train the domain feature net that `qa` measures synthetic images with, and its cross-fitted copies
    (qa.featurenet recipe)."""
    from histosynth.classifier.featurenet import train_featurenet
    from histosynth.parallel import usable_cores

    run_guarded(lambda: train_featurenet(load_params(params_file, "featurenet").qa.featurenet, real, out,
                                         report, workers=usable_cores()))



@app.command(rich_help_panel=STAGES)
def curate(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    candidates: Path = typer.Option(paths.CANDIDATES_DIR, help="Candidates written by `generate` (a folder with a "
                                    "manifest)."),
    real: Path = typer.Option(paths.REAL_DIR, help="Folder written by `ingest` (train and val splits are read)."),
    augmented: Path = typer.Option(paths.AUGMENTED_DIR, help="Folder written by `augment` (near-copy reference)."),
    featurenet_dir: Path = typer.Option(paths.FEATURENET_DIR, "--featurenet", help="Folder written by `featurenet` "
                                        "(its cross-fitted classifiers score the candidates)."),
    out: Path = typer.Option(paths.SYNTHETIC_DIR, help="Output folder for the kept images; replaced."),
    report: Path = typer.Option(paths.CURATE_REPORT_DIR, help="Folder for scores.csv and metrics.json; replaced."),
    n_per_class: int | None = typer.Option(None, min=1, help="Images to keep per class (default: generate.n_per_class)."),
) -> None:
    """Score every candidate (class confidence, realism, near-copy ratio) and keep the first n per class that pass."""
    from histosynth.curate import curate as run

    def job() -> None:
        params = load_params(params_file, "curate")
        run(params.curate, n_per_class or params.generate.n_per_class, candidates, real, augmented, featurenet_dir,
            out, report)

    run_guarded(job)



@app.command(rich_help_panel=STAGES)
def qa(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    real: Path = typer.Option(paths.REAL_DIR, help="Real images with a manifest (as `ingest` writes them)."),
    synthetic: Path = typer.Option(paths.SYNTHETIC_DIR, help="Synthetic images: a folder with a manifest, or plain "
                                   "class folders named like the real ones."),
    featurenet_dir: Path = typer.Option(paths.FEATURENET_DIR, "--featurenet", help="Folder written by `featurenet`."),
    out: Path = typer.Option(paths.QA_REPORT_DIR, help="Report folder (metrics.json, histograms, memorisation); replaced."),
    enforce: bool | None = typer.Option(None, "--enforce/--report-only",
                                        help="Exit non-zero when a gate fails (default: qa.enforce)."),
) -> None:
    """Check synthetic images against real ones per class and apply the QA gates (qa.* thresholds)."""
    from histosynth.qa.run import run_qa

    def job() -> None:
        params = with_options(load_params(params_file, "qa").qa, "qa", enforce=enforce)
        run_qa(params, real, synthetic, featurenet_dir, out)

    run_guarded(job)



@app.command(rich_help_panel=STAGES)
def package(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    real: Path = typer.Option(paths.REAL_DIR, help="Real images with a manifest (as `ingest` writes them)."),
    synthetic: Path = typer.Option(paths.SYNTHETIC_DIR, help="Synthetic images with a manifest (as `generate` writes them)."),
    gan: Path = typer.Option(paths.GAN_DIR, help="Model folder with the training record.json."),
    qa_metrics: Path = typer.Option(paths.QA_REPORT_DIR / "metrics.json", help="QA verdict written by `qa`."),
    out: Path = typer.Option(paths.PACKAGE_DIR, help="Package folder; replaced when complete."),
) -> None:
    """Merge real and QA-checked synthetic images into the publishable package (package.* params)."""
    from histosynth.package.stage import build_package

    run_guarded(lambda: build_package(load_params(params_file, "package"), real, synthetic, gan, qa_metrics, out))



@app.command(rich_help_panel=STAGES)
def benchmark(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    package_dir: Path = typer.Option(paths.PACKAGE_DIR, "--package", help="Package folder (real splits + synthetic)."),
    augmented: Path = typer.Option(paths.AUGMENTED_DIR, help="Folder written by `augment` (the affine arm)."),
    out: Path = typer.Option(paths.BENCHMARK_REPORT_DIR, help="Report folder (metrics.json, roc/, confusion/, "
                             "history/, sweep.csv); replaced."),
    threads: int | None = typer.Option(None, min=0, help="Trainings at once, 0 = one per core; changes no result "
                                       "(default: benchmark.threads)."),
) -> None:
    """Train the same classifier for the same steps on real only, real + affine, real + synthetic, real + affine +
    synthetic and synthetic only; test on real."""
    from histosynth.benchmark import run_benchmark

    def job() -> None:
        all_params = load_params(params_file, "benchmark")
        params = with_options(all_params.benchmark, "benchmark", threads=threads)
        run_benchmark(params, all_params.augment, package_dir, augmented, out)

    run_guarded(job)


@app.command(rich_help_panel=STAGES)
def report(
    verbose: bool = VerboseOption,
    root: Path = typer.Option(Path("."), help="Project folder whose data/ and reports/ the report shows."),
    out: Path | None = typer.Option(None, help="HTML file to write (default: <root>/reports/index.html)."),
) -> None:
    """Rebuild the self-contained HTML report: sample grids, QA verdicts, training and benchmark charts."""
    from histosynth.report import build_report

    run_guarded(lambda: build_report(root, out))



@app.command(rich_help_panel=STAGES)
def summary(
    verbose: bool = VerboseOption,
    root: Path = typer.Option(Path("."), help="Project folder whose reports/ and params.yaml the summary reads."),
) -> None:
    """Print the last run's answer: QA per class, whether the synthetic images helped, the report and the
    package, the next commands (what `make repro` ends with, even when DVC skipped every stage)."""
    from histosynth.summary import print_summary

    run_guarded(lambda: print_summary(root))


@app.command(rich_help_panel=PACKAGES)
def verify(
    package_dir: Path = typer.Argument(..., help="Package folder, e.g. data/package."),
    deep: bool = typer.Option(False, "--deep", help="Also load sql/sqlite.sql and re-render every SQL dump from the "
                              "metadata (35 s per 100k images; by default the dumps are checked through MD5SUMS)."),
    verbose: bool = VerboseOption,
) -> None:
    """Re-hash every file of a package; exit 0 when intact, 1 listing every missing, extra or modified file."""
    from histosynth.package.verify import verify_package

    def job() -> bool:
        report = verify_package(package_dir, deep=deep)
        for line in report.lines():
            typer.echo(line)
        return report.ok

    raise typer.Exit(0 if run_guarded(job) else 1)



@app.command("export-sql", rich_help_panel=PACKAGES)
def export_sql(
    verbose: bool = VerboseOption,
    package_dir: Path = typer.Argument(..., help="A package folder (data/package, or one fetched with `dvc get`)."),
    dialect: Literal["mysql", "postgresql", "sqlite"] = typer.Option(..., help="SQL dialect of the dump."),
    out: Path | None = typer.Option(None, help="File to write (replaced when complete; default: standard output)."),
) -> None:
    """Dump a package's database for one SQL dialect (images from metadata.parquet, GAN and QA records
    from sql/sqlite.sql); the same bytes as the package's sql/<dialect>.sql."""
    from histosynth.sql import export_sql as run

    run_guarded(lambda: run(package_dir, dialect, out))



@app.command(rich_help_panel=PACKAGES)
def publish(
    verbose: bool = VerboseOption,
    version: str | None = typer.Option(None, help="Version to publish, e.g. 1.1.0 (default: package.version)."),
    root: Path = typer.Option(Path("."), help="Project root (git + DVC repository)."),
    repro: bool = typer.Option(True, help="Run `dvc repro` after stamping the version (--no-repro: trust the workspace)."),
) -> None:
    """Stamp package.version, check QA and verify, commit dvc.lock, push the data, tag dataset-v<version>."""
    from histosynth.publish import publish as run

    def job() -> None:
        result = run(root, version, repro)
        typer.echo(f"published {result.n_images} images as {result.tag} (commit {result.commit[:10]}, "
                   f"data pushed to {result.remote})")
        typer.echo("consumers: dvc get <repo-url> data/package --rev " + result.tag)
        typer.echo(f"share the tag: git push <git-remote> HEAD {result.tag}")

    run_guarded(job)



if __name__ == "__main__":
    app()
