"""The dataset card (``README.md`` of the package), made from the package's inputs only.

No clock is read: the same inputs give the same card, byte for byte, so that the package is
reproducible and DVC sees no change when nothing changed. Everything that comes from input
(class names, params, the GAN record, the QA verdict, the git revision) goes through
:mod:`histosynth.package.markdown`, so it shows as text and never as markup or HTML. Source,
licence and citation of the real images come from the source used
(:mod:`histosynth.package.provenance`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from histosynth import __version__
from histosynth.config import Params
from histosynth.manifest import SPLITS
from histosynth.neutralise import csv_frame
from histosynth.package.markdown import Markup, code, code_block, paragraphs, text
from histosynth.package.provenance import Provenance, public_source
from histosynth.package.schema import (
    CROISSANT_NAME, EDIT_COLUMN, IMAGES_DIR, METADATA_CSV, METADATA_JSONL, METADATA_PARQUET,
)

# (metrics.json key, column title, its real-vs-real floor key or None)
QA_FIGURES = (
    ("kl", "colour KL", "kl_real_floor"),
    ("fid", "domain FID", "fid_real_floor"),
    ("label_agreement", "label agreement", "label_agreement_real_floor"),
    ("coverage", "coverage", "coverage_real_floor"),
    ("duplicate_share", "duplicates", None),
    ("memorised_share_pixel", "near-copies (pixels)", None),
    ("memorised_share_feature", "near-copies (features)", None),
)
# What `origin` holds where a reader may wonder whether it names a place on the maker's machine.
ORIGIN_NOTE = {"folder": " A real image's `origin` is its path inside the source folder; where that folder lay (its "
                         "absolute path) is recorded nowhere in the package."}
# Not in the card's parameter table: licence, citation and source have their own sections, and
# link changes no byte of the package (so a linked and a copied package are identical).
UNTABULATED_PARAMS = {"licence", "citation", "link", "source_description", "source_licence", "source_citation"}


def _shown(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (and anywhere else inline); Markup stays as written."""
    return value if isinstance(value, Markup) else text(_shown(value))


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _folder(name: str) -> str:
    """A class folder as code; the schema allows [a-z0-9_] only, anything else stays plain text."""
    return Markup(code(name)) if re.fullmatch(r"[a-z0-9_]+", name) else name


def counts_table(metadata: pd.DataFrame, class_names: list[str]) -> str:
    columns = pd.MultiIndex.from_tuples([("real", split) for split in SPLITS] + [("synthetic", "train")])
    counts = pd.crosstab(metadata["label"], [metadata["source"], metadata["split"]]).reindex(
        index=range(len(class_names)), columns=columns, fill_value=0)
    folders = metadata.groupby("label")["class_folder"].first()
    rows = [[label, name, _folder(folders[label]), *counts.loc[label].tolist(), int(counts.loc[label].sum())]
            for label, name in enumerate(class_names)]
    rows.append(["", Markup("**all**"), "", *counts.sum().tolist(), len(metadata)])
    header = ["label", "class", "folder", *(f"real {split}" for split in SPLITS), "synthetic", "total"]
    edits = metadata[EDIT_COLUMN].notna()
    if edits.any():  # a column for the edits of real images among the synthetic ones
        per_class = edits.groupby(metadata["label"]).sum().reindex(range(len(class_names)), fill_value=0)
        for row, n in zip(rows, [*per_class.tolist(), int(edits.sum())]):
            row.insert(-1, int(n))
        header.insert(-1, "of which edits")
    return table(header, rows)


def qa_section(qa_metrics: dict[str, Any], enforce: bool) -> str:
    verdict = f"passed every gate (`qa.enforce`: {str(enforce).lower()})" if qa_metrics.get("passed") is True else (
        f"failed {text(qa_metrics.get('failed_gates', 'some'))} gate(s) and was packaged because `qa.enforce` is false")
    rows = []
    for name, figures in qa_metrics.get("classes", {}).items():
        row: list[Any] = [name]
        for key, _, floor in QA_FIGURES:
            value = figures.get(key)
            row.append(f"{_shown(value)} ({_shown(figures.get(floor))})" if floor else value)
        failed = [gate for gate, result in figures.get("gates", {}).items() if not result.get("passed")]
        row.append("yes" if figures.get("passed") else "no: " + ", ".join(failed))
        rows.append(row)
    header = ["class", *(f"{title} (real floor)" if floor else title for _, title, floor in QA_FIGURES), "passed"]
    return "\n".join([
        f"The synthetic set {verdict}. Figures per class compare the "
        "synthetic images with real ones; in brackets the same figure between two sets of real images, i.e. "
        "what a perfect generator would score with these sample sizes. Details: `reports/qa/metrics.json` of "
        "the pipeline that made this package.",
        "",
        table(header, rows),
    ])


def _trained_on(gan_record: dict[str, Any]) -> str:
    """'cpu (AVX512)' from the record's trained_on, or 'an unrecorded device' for older records."""
    where = gan_record.get("trained_on")
    if not isinstance(where, dict):
        return "an unrecorded device"
    return f"{where.get('device', '?')} ({where.get('cpu_capability', '?')})"


def made_section(params: Params, gan_record: dict[str, Any], metadata: pd.DataFrame, revision: str) -> str:
    synthetic = metadata[metadata["source"] == "synthetic"]
    generator_runs = sorted(synthetic["generator_run"].dropna().unique())
    seeds = sorted(int(s) for s in synthetic["seed"].dropna().unique())
    training = gan_record.get("params") if isinstance(gan_record.get("params"), dict) else {}
    train_data = gan_record.get("train_data")
    n_trained = train_data.get("n_images", "?") if isinstance(train_data, dict) else "?"
    return "\n".join([
        f"- histosynth {__version__}, git revision {code(revision)}.",
        f"- Real images: `data.source` = {code(public_source(params))}, splits "
        f"{', '.join(params.package.real_splits)}.",
        f"- Generator: {code(gan_record.get('arch'))} ({text(gan_record.get('family', 'gan'))}), "
        f"{text(gan_record.get('epoch', '?'))} epochs, "
        f"{text(gan_record.get('image_size'))} px, latent {text(gan_record.get('latent_dim'))}, trained on "
        f"{text(n_trained)} images on {text(_trained_on(gan_record))}; generator weights MD5 "
        f"{', '.join(code(run) for run in generator_runs) or '–'} (`generator_run` in the metadata). The same "
        "params give byte-identical images on the same kind of device and CPU capability (torch picks its CPU "
        "kernels by instruction set; other capabilities round differently).",
        f"- Synthetic images: latent seed {', '.join(map(str, seeds)) or '–'}; image `latent_index` of class "
        "`label` is reproduced by `histosynth.generate.regenerate(model_dir, seed, label, latent_index)`.",
        *_edits_line(synthetic),
        "",
        "Generator training parameters:",
        "",
        table(["parameter", "value"], [[key, json.dumps(value)] for key, value in sorted(training.items())]),
        "",
        "Package parameters:",
        "",
        table(["parameter", "value"], [[f"package.{key}", json.dumps(value, ensure_ascii=False)] for key, value
                                        in params.package.model_dump(exclude=UNTABULATED_PARAMS).items()]),
    ])


def _edits_line(synthetic: pd.DataFrame) -> list[str]:
    n = int(synthetic[EDIT_COLUMN].notna().sum())
    if not n:
        return []
    return [f"- {n} synthetic images are edits of real train images (`edit_of` names the source): the diffusion "
            "model partly noised each and denoised it under its own label (SDEdit, `generate.mode: edit`); "
            "`regenerate(..., edit=..., real_dir=...)` reproduces one."]


def citation_text(params: Params) -> str:
    """``package.citation``, or a BibTeX entry made from the package's name and version."""
    if params.package.citation:
        return params.package.citation
    key = "".join(ch if ch.isalnum() else "_" for ch in params.package.name)
    return "\n".join([
        f"@misc{{{key}_{params.package.version.replace('.', '_')},",
        f"  title = {{{params.package.name}: real and GAN-synthesised microscopy images}},",
        f"  note = {{Version {params.package.version}, made with histosynth {__version__}}},",
        "}",
    ])


def citation(params: Params) -> str:
    return code_block(citation_text(params), info="" if params.package.citation else "bibtex")


def source_section(params: Params, provenance: Provenance) -> str:
    terms = ["", f"**This package.** {paragraphs(params.package.licence)}"] if params.package.licence.strip() else []
    return "\n".join([
        f"**Real images.** {paragraphs(provenance.description)}",
        "",
        f"**Licence of the real images.** {paragraphs(provenance.licence)}",
        "",
        "**Synthetic images.** Generated by histosynth from the real training images; no restrictions are "
        "claimed beyond those of the real images.",
        *terms,
    ])


def _neutralised_note(metadata: pd.DataFrame) -> list[str]:
    """A line for packages whose CSV has text that a spreadsheet would run, so got a leading ``'``."""
    if csv_frame(metadata).equals(metadata):
        return []
    return [f"  In `{METADATA_CSV}` text that starts with `=`, `+`, `-`, `@`, a tab or a carriage return has an "
            f"extra `'` in front, so that a spreadsheet does not run it as a formula; `{METADATA_PARQUET}` and the "
            "dumps hold the exact text."]


def dataset_card(metadata: pd.DataFrame, class_names: list[str], params: Params, gan_record: dict[str, Any],
                 qa_metrics: dict[str, Any], revision: str, sql_files: list[str], provenance: Provenance) -> str:
    p = params.package
    n_real, n_synthetic = (int((metadata["source"] == s).sum()) for s in ("real", "synthetic"))
    sql_lines = [f"- {code(name)}: the database dump (tables `gan_architectures`, `class_names`, "
                 "`training_parameters`, `images`)" for name in sql_files]
    return "\n".join([
        f"# {text(p.name)} {text(p.version)}",
        "",
        f"{len(metadata)} PNG images of {len(class_names)} classes: {n_real} real and {n_synthetic} synthesised by "
        "a label-conditioned GAN, with metadata, checksums and database dumps (BCADCID-style layout).",
        "",
        "## Files",
        "",
        f"- `{IMAGES_DIR}/<class folder>/<id>.png`: the images, real and synthetic side by side "
        "(the `source` column tells them apart).",
        f"- `{IMAGES_DIR}/<class folder>/MD5SUMS`: the MD5 of every image in that folder (`md5sum -c`).",
        f"- `{METADATA_CSV}`, `{METADATA_PARQUET}`: one row per image (the same rows): id, file_path, class_name, "
        "class_folder, label, source (real or synthetic), split, group, md5, width, height, origin, generator_run, arch, "
        "seed, latent_index, edit_of (an edit's source image), and curation's scores of each synthetic image: "
        "confidence (the real-trained classifiers' probability of its class), realism, copy_ratio (nearest / "
        "second-nearest training image) and "
        "curation (kept: passed every test; filled: kept to fill a class short of passers)." + ORIGIN_NOTE.get(
            params.data.source_kind, ""),
        *_neutralised_note(metadata),
        f"- `{METADATA_JSONL}`: the same rows as JSON Lines, each with `file_name` (its `file_path`) for Hugging "
        "Face `datasets`' imagefolder builder.",
        *sql_lines,
        f"- `{CROISSANT_NAME}`: Croissant 1.0 metadata (MLCommons, JSON-LD): the dataset, its files with MD5 and "
        "SHA-256, and the `images` record set (each PNG with its metadata row); `mlcroissant` reads it.",
        "- `MD5SUMS`: the MD5 of this card, the metadata files, the dumps and the Croissant file.",
        "",
        "## Source data and licence",
        "",
        source_section(params, provenance),
        "",
        "## Classes",
        "",
        "Class folders are the class names made filesystem-safe; the original names are in `class_name`. "
        "Synthetic images belong to the train split; evaluate on real images only.",
        "",
        counts_table(metadata, class_names),
        "",
        "## Quality checks",
        "",
        qa_section(qa_metrics, params.qa.enforce),
        "",
        "## How it was made",
        "",
        made_section(params, gan_record, metadata, revision),
        "",
        "## Verify",
        "",
        "```sh",
        "histosynth verify <this folder>                    # every file and the metadata (--deep: the dumps too)",
        f"(cd {IMAGES_DIR}/<class folder> && md5sum -c MD5SUMS)  # one class folder, without histosynth",
        "md5sum -c MD5SUMS                                  # card, metadata and dumps, without histosynth",
        "```",
        "",
        "## Use",
        "",
        "```python",
        "import histosynth, torch",
        "package = histosynth.load_package(\"<this folder>\")",
        "loader = torch.utils.data.DataLoader(package.torch_dataset(split=\"train\"), batch_size=64, shuffle=True)",
        "```",
        "",
        "`package.image_set(split=\"test\", source=\"real\")` gives the images as one uint8 array with labels; "
        "`package.metadata` is the metadata table.",
        "",
        "Without histosynth: `torchvision.datasets.ImageFolder(\"images\")` (filter a split with `is_valid_file` "
        f"and the metadata's `file_path`), `datasets.load_dataset(\"imagefolder\", data_files=\"{METADATA_JSONL}\", "
        f"split=\"train\", filters=[(\"split\", \"==\", \"train\")])`, `pandas.read_parquet(\"{METADATA_PARQUET}\")`, "
        f"`mlcroissant.Dataset(\"{CROISSANT_NAME}\").records(\"images\")`.",
        "",
        "## Cite",
        "",
        citation(params),
        "",
        "and the source of the real images:",
        "",
        code_block(provenance.citation),
        "",
    ])
