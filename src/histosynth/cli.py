"""``histosynth``: the pipeline's jobs from the command line, outside DVC.

Each stage command runs the stage's definition (histosynth.pipeline.stages), as the DVC stage
script does, with its folders and some params values moved by options, and reads params.yaml as
strictly as the stage does. Commands are listed in pipeline order; exit statuses are those of
:mod:`histosynth.entry`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer

from histosynth import __version__, paths
from histosynth.config import PARAMS_FILE, load_params, params_from_mapping
from histosynth.config.loader import with_values
from histosynth.entry import run_guarded, setup_logging
from histosynth.pipeline.run import command_io, run_stage
from histosynth.pipeline.stages import stage

app = typer.Typer(
    help="Versioned real + GAN-synthesised microscopy datasets (see README.md). Exit statuses: 0 done, "
         "1 verify found damage, 2 usage, 3 params, 4 input, 5 QA gate failed, 6 training diverged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

STAGES = "Pipeline stages, in order"
STUDIES = "Studies"
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


@dataclass(frozen=True)
class ParamOption:
    """An option that sets one params.yaml value for this run (``--epochs`` -> ``gan.epochs``)."""

    key: str  # dotted, as in params.yaml
    type: Any
    help: str
    flag: str | None = None  # default: --<last part of the key>, underscores as dashes
    min: float | None = None
    max: float | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def typer_option(self) -> Any:
        return typer.Option(None, self.flag or f"--{self.name.replace('_', '-')}", help=self.help, min=self.min,
                            max=self.max)


@dataclass(frozen=True)
class StageCommand:
    """A command that runs a stage definition (histosynth.pipeline.stages): ``--params``, an option per slot
    of the stage (``--out``, ``--real``...), and ``options`` that set params values. ``fixed``: params values
    of every run; ``places``: slot places other than the stage's; ``summary``: help other than the stage's."""

    stage: str
    options: tuple[ParamOption, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    places: Mapping[str, Path] = field(default_factory=dict)
    summary: str | None = None


DEVICE = Literal["auto", "cpu", "cuda"]
STAGE_COMMANDS = (
    StageCommand("ingest"),
    StageCommand("augment"),
    StageCommand("train", (
        ParamOption("gan.epochs", int, "Train up to this epoch (default: gan.epochs).", min=1),
        ParamOption("gan.device", DEVICE, "Where to train (default: gan.device)."),
    )),
    # N images per class, as the stage makes candidates: one candidate per image, into data/synthetic
    StageCommand("generate", (
        ParamOption("generate.n_per_class", int, "Images per class (default: generate.n_per_class).", min=1),
        ParamOption("generate.seed", int, "Latent seed (default: generate.seed).", min=0),
        ParamOption("generate.batch_size", int, "Images generated ahead of the writers; changes no image "
                    "(default: generate.batch_size).", min=1),
        ParamOption("generate.device", DEVICE, "Where the generator runs (default: generate.device)."),
        ParamOption("generate.precision", Literal["auto", "fp32", "bf16"],
                    "Generator arithmetic (default: generate.precision)."),
        ParamOption("generate.diffusion.sampler", Literal["ddim", "dpm"], "Diffusion checkpoints: DDIM or "
                    "DPM-Solver++ (default: generate.diffusion.sampler, else the model's)."),
        ParamOption("generate.diffusion.steps", int, "Diffusion checkpoints: sampling steps per image "
                    "(default: generate.diffusion.steps, else the model's).", min=1, max=1000),
        ParamOption("generate.diffusion.guidance", float, "Diffusion checkpoints: classifier-free guidance scale "
                    "(default: generate.diffusion.guidance, else the model's).", min=0.0, max=20.0),
        ParamOption("generate.mode", Literal["sample", "edit"], "sample: from noise; edit: diffusion checkpoints "
                    "edit the real train images (default: generate.mode)."),
        ParamOption("generate.edit.strength", float, "Edits: t0 as a fraction of the noise schedule, above 0 "
                    "(default: generate.edit.strength).", min=0.0, max=1.0),
        ParamOption("generate.edit.keep_colour", Literal["none", "moments", "histogram"], "Edits: the source's "
                    "colours, its channel moments or histograms, or none: the model's (default: "
                    "generate.edit.keep_colour)."),
        ParamOption("generate.colour_match", Literal["none", "moments"], "Samples: each one's channel moments "
                    "set to those of a real train image of its class, or none: the model's colours (default: "
                    "generate.colour_match)."),
    ), fixed={"generate.overgenerate": 1}, places={"out": paths.SYNTHETIC_DIR},
        summary="Sample N images per class from a trained generator, or edit the real train images with a diffusion "
                "one, with MD5SUMS per class and a manifest (the pipeline's `generate` stage writes n_per_class x "
                "overgenerate candidates to data/candidates for `curate`)."),
    StageCommand("featurenet"),
    StageCommand("curate", (
        ParamOption("generate.n_per_class", int, "Images to keep per class (default: generate.n_per_class).", min=1),
    )),
    StageCommand("qa", (
        ParamOption("qa.enforce", bool, "Exit non-zero when a gate fails (default: qa.enforce).",
                    flag="--enforce/--report-only"),
    )),
    StageCommand("package"),
    StageCommand("benchmark", (
        ParamOption("benchmark.threads", int, "Trainings at once, 0 = one per core; changes no result "
                    "(default: benchmark.threads).", min=0),
    )),
    StageCommand("report"),
)


def _stage_command(spec: StageCommand) -> Callable[..., None]:
    """The typer command for ``spec``: its options are built from the stage's definition (slots) and
    ``spec.options``, and it runs the definition as the DVC stage does, with the options applied."""
    definition = stage(spec.stage)
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("verbose", keyword, default=VerboseOption, annotation=bool)]
    if definition.sections:
        parameters.append(inspect.Parameter("params_file", keyword, default=ParamsOption, annotation=Path))
    if definition.reads_project:
        parameters.append(inspect.Parameter("root", keyword, annotation=Path, default=typer.Option(
            Path("."), help="Project folder whose data/ and reports/ the report shows.")))
    for slot in definition.slots:
        place = spec.places.get(slot.name, slot.path)
        default = place if slot.command_line and not definition.reads_project else None
        parameters.append(inspect.Parameter(slot.name, keyword, annotation=Path if default else Path | None,
                                            default=typer.Option(default, slot.option, help=slot.help)))
    parameters += [inspect.Parameter(option.name, keyword, annotation=option.type | None,
                                     default=option.typer_option()) for option in spec.options]

    def command(**given: Any) -> None:
        params_file, root = given.pop("params_file", PARAMS_FILE), given.pop("root", Path("."))
        values = {**spec.fixed, **{option.key: given.pop(option.name) for option in spec.options}}

        def job() -> None:
            params = with_values(definition.load_params(params_file), values) if definition.sections \
                else params_from_mapping({})
            run_stage(definition, params, command_io(definition, root, given))

        run_guarded(job)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    command.__doc__ = spec.summary or definition.summary
    command.__name__ = spec.stage
    return command


for _spec in STAGE_COMMANDS:
    app.command(_spec.stage, rich_help_panel=STAGES)(_stage_command(_spec))


@app.command(rich_help_panel=STAGES)
def summary(
    verbose: bool = VerboseOption,
    root: Path = typer.Option(Path("."), help="Project folder whose reports/ and params.yaml the summary reads."),
) -> None:
    """Print the last run's answer: QA per class, whether the synthetic images helped, the report and the
    package, the next commands (what `make repro` ends with, even when DVC skipped every stage)."""
    from histosynth.summary import print_summary

    run_guarded(lambda: print_summary(root))


@app.command(rich_help_panel=STUDIES)
def study(
    verbose: bool = VerboseOption,
    params_file: Path = ParamsOption,
    out: Path = typer.Option(Path("study"), "--out", help="Study folder: one project folder per regime and run, "
                             "and study.json, study.md, study.png."),
) -> None:
    """Does synthetic data help on my images? Run the pipeline (ingest ... package, then every arm of study.arms)
    over the grid of params.yaml's study: section: regimes (real train images per class, long tail) x generator
    recipes (gan.* values) x generator seeds, classifier seeds from benchmark.seeds; QA is reported, not
    enforced. Resumable: a step done with the same params is not repeated, so run the same command again after a
    kill. Writes study.json (per regime every arm's accuracy, balanced accuracy and macro AUC, the gains, the rare
    classes' recall, each with a 95 % interval over test images, classifier and generator seeds), study.md and
    study.png (gain against real images per class)."""
    from histosynth.pipeline import STAGES as PIPELINE
    from histosynth.study import run_study

    def job() -> None:
        sections = {*(section for definition in PIPELINE for section in definition.sections), "study"}
        run_study(load_params(params_file, reader="study", sections=sorted(sections)), out)

    run_guarded(job)


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
    from histosynth.package.sql import export_sql as run

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
