"""The rows of the package database, from the package metadata, the GAN record and the QA metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import String, Table

from histosynth.errors import DataError
from histosynth.manifest import class_names_of
from histosynth.package.schema import validate_metadata
from histosynth.qa.gates import GATES
from histosynth.sql import schema
from histosynth.sql.describe import describe_gan

Row = dict[str, Any]
GAN_ID = 1

# images column <- metadata column (gan comes from generator_run through gan_architectures.checkpoint_md5).
IMAGE_COLUMNS = {"id": "id", "file_path": "file_path", "class_name": "label", "source": "source", "split": "split",
                 "group_name": "group", "md5": "md5", "width": "width", "height": "height", "origin": "origin", "seed": "seed",
                 "latent_index": "latent_index", "edit_of": "edit_of", "confidence": "confidence", "realism": "realism",
                 "copy_ratio": "copy_ratio", "curation": "curation"}
# training_parameters columns filled from the record's params entry of the same name.
PARAM_COLUMNS = ("loss", "batch_size", "epochs", "g_lr", "d_lr", "n_critic", "weight_decay", "gp_weight", "ema",
                 "train_on", "seed")
REQUIRED_PARAMS = ("loss", "batch_size", "epochs", "g_lr")
# Required of GAN records only (a diffusion model has no discriminator).
GAN_REQUIRED_PARAMS = ("d_lr",)
# Record params already stored in gan_architectures.
ARCHITECTURE_PARAMS = ("arch", "latent_dim", "width")


@dataclass(frozen=True)
class PackageDatabase:
    """Every table's rows, ready to dump.

    ``records`` holds the small tables in insert order; the ``images`` rows are converted from
    ``metadata`` one chunk at a time, so a dump of many images needs little memory.
    """

    records: Mapping[str, list[Row]]
    metadata: pd.DataFrame

    def count(self, table: Table) -> int:
        return len(self.metadata) if table is schema.images else len(self.records[table.name])

    def chunks(self, table: Table, size: int) -> Iterator[list[Row]]:
        if table is not schema.images:
            rows = self.records[table.name]
            yield from (rows[start:start + size] for start in range(0, len(rows), size))
            return
        gan_ids = gan_ids_by_run(self.records[schema.gan_architectures.name])
        for start in range(0, len(self.metadata), size):
            yield image_rows(self.metadata.iloc[start:start + size], gan_ids)


def gan_ids_by_run(gan_rows: list[Row]) -> dict[str, int]:
    return {row["checkpoint_md5"]: row["id"] for row in gan_rows if row["checkpoint_md5"] is not None}


def image_rows(metadata: pd.DataFrame, gan_ids: Mapping[str, int]) -> list[Row]:
    frame = metadata[list(IMAGE_COLUMNS.values())].set_axis(list(IMAGE_COLUMNS), axis=1)
    frame["gan"] = metadata["generator_run"].map(gan_ids).astype("Int64")
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def build_database(metadata: pd.DataFrame, gan_record: dict[str, Any], qa_metrics: dict[str, Any] | None,
                   *, name: str | None = None, version: str | None = None) -> PackageDatabase:
    """The package database for ``metadata`` (the package's metadata rows), the GAN training record
    (``models/gan/record.json``) and the QA metrics (``reports/qa/metrics.json``, None = no QA run).

    ``name`` and ``version`` (package.name, package.version) fill the one-row ``dataset`` table.
    Raises DataError when the three disagree or a value does not fit its column.
    """
    metadata = validate_metadata(metadata.reset_index(drop=True), where="package metadata")
    _check_image_lengths(metadata)
    gan = _gan_row(gan_record, _generator_run(metadata, gan_record))
    classes = _class_rows(metadata, gan_record, qa_metrics)
    records = {
        schema.dataset.name: [{"id": 1, "name": name, "version": version}],
        schema.gan_architectures.name: [gan],
        schema.class_names.name: classes,
        schema.training_parameters.name: [_training_row(gan_record)],
        schema.qa_metrics.name: _qa_rows(qa_metrics, {row["name"]: row["id"] for row in classes}),
    }
    return PackageDatabase({table: [fit_row(schema.database.tables[table], row) for row in rows]
                            for table, rows in records.items()}, metadata)


def fit_row(table: Table, row: Row) -> Row:
    """``row`` with each value as its column's Python type (so a dump read back renders the same):
    non-finite floats become NULL; a string longer than its column is a DataError."""
    fitted = {}
    for column in table.columns:
        value = row.get(column.name)
        if value is not None and not isinstance(column.type, schema.JsonDocument):
            value = column.type.python_type(value)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            length = getattr(column.type, "length", None)
            if isinstance(value, str) and isinstance(column.type, String) and length and len(value) > length:
                raise _too_long(f"{table.name}.{column.name}", value, length)
        fitted[column.name] = value
    return fitted


def _check_image_lengths(metadata: pd.DataFrame) -> None:
    limits = {"id": schema.images.c.id, "file_path": schema.images.c.file_path,
              "class_name": schema.class_names.c.name, "class_folder": schema.class_names.c.folder,
              "group": schema.images.c.group_name}
    for column, target in limits.items():
        lengths = metadata[column].dropna().str.len()
        if lengths.max() > target.type.length:
            raise _too_long(f"metadata column {column}", metadata[column][lengths.idxmax()], target.type.length)


def _too_long(where: str, value: str, limit: int) -> DataError:
    return DataError(f"{where}: {value[:60]!r}... is {len(value)} characters long; the SQL dumps store at most {limit}")


def _generator_run(metadata: pd.DataFrame, record: dict[str, Any]) -> str | None:
    """The one GAN checkpoint (MD5 of generator.pt) that made the synthetic images, if any."""
    synthetic = metadata[metadata["source"] == "synthetic"]
    runs = sorted(synthetic["generator_run"].unique())
    if len(runs) > 1:
        raise DataError(f"package metadata: synthetic images from {len(runs)} generator runs ({', '.join(runs)}); "
                        "the database describes one GAN, so package the images of one run")
    archs = set(synthetic["arch"]) - {record.get("arch")}
    if archs:
        raise DataError(f"package metadata: synthetic images made by arch {', '.join(sorted(archs))}, but the GAN "
                        f"record is for arch {record.get('arch')!r}; package the images of the recorded GAN")
    return runs[0] if runs else None


def _gan_row(record: dict[str, Any], checkpoint_md5: str | None) -> Row:
    generator, discriminator = describe_gan(record)
    return {"id": GAN_ID, "generator": generator, "discriminator": discriminator,
            "latent_dim": generator["latent_dim"], "checkpoint_md5": checkpoint_md5,
            **{key: generator[key] for key in ("arch", "image_size", "n_classes", "width")}}


def _class_rows(metadata: pd.DataFrame, record: dict[str, Any], qa_metrics: dict[str, Any] | None) -> list[Row]:
    names = class_names_of(metadata)
    folders = metadata.groupby("label")["class_folder"].first()
    trained = record.get("class_names")
    figures = (qa_metrics or {}).get("classes", {})
    synthetic_labels = set(metadata.loc[metadata["source"] == "synthetic", "label"])
    rows = []
    for label, name in enumerate(names):
        from_gan = trained is None or (label < len(trained) and trained[label] == name)
        if label in synthetic_labels and not from_gan:
            raise DataError(f"class {name!r} (label {label}) has synthetic images, but the GAN record names label "
                            f"{label} {trained[label] if label < len(trained) else 'nothing'!r}; "
                            "the package and the GAN disagree on the classes")
        rows.append({"id": label, "name": name, "folder": folders[label], "gan": GAN_ID if from_gan else None,
                     "qa_passed": figures.get(name, {}).get("passed")})
    return rows


def _training_row(record: dict[str, Any]) -> Row:
    params = dict(record.get("params") or {})
    required = REQUIRED_PARAMS + (GAN_REQUIRED_PARAMS if record.get("family", "gan") == "gan" else ())
    missing = [key for key in required if params.get(key) is None]
    if missing:
        raise DataError(f"GAN training record: params {', '.join(missing)} missing; "
                        "retrain the GAN (`dvc repro train`)")
    optimizer = record.get("optimizer", "adam")
    betas = params.pop("betas", None) or (None, None)
    lr_step = params.pop("lr_step", None) or (None, None)
    diffaugment = params.pop("diffaugment", None)
    train_data = record.get("train_data") or {}
    row = {key: params.pop(key, None) for key in PARAM_COLUMNS}
    for key in ARCHITECTURE_PARAMS:
        params.pop(key, None)
    return {
        **row, "id": 1, "gan": GAN_ID, "g_optimizer": optimizer,
        "d_optimizer": optimizer if record.get("family", "gan") == "gan" else None,
        "beta1": betas[0], "beta2": betas[1], "lr_step_epochs": lr_step[0], "lr_step_gamma": lr_step[1],
        "diffaugment": None if diffaugment is None else ",".join(diffaugment),
        "epochs_trained": record.get("epoch"), "generator_weights": record.get("generator_weights"),
        "train_images": train_data.get("n_images"), "train_manifest_md5": train_data.get("manifest_md5"),
        "other_params": params, "software_versions": record.get("versions"),
    }


def _qa_rows(qa_metrics: dict[str, Any] | None, label_of: Mapping[str, int]) -> list[Row]:
    """One row per numeric per-class figure; the figures a gate reads carry its threshold and verdict."""
    gate_of = {gate.metric: gate.name for gate in GATES}
    rows = []
    for class_name, figures in (qa_metrics or {}).get("classes", {}).items():
        if class_name not in label_of:
            raise DataError(f"QA metrics: class {class_name!r} is not in the package; rerun QA on the packaged data")
        verdicts = figures.get("gates", {})
        for metric, value in figures.items():
            if isinstance(value, bool) or not (value is None or isinstance(value, (int, float))):
                continue  # the class verdict (class_names.qa_passed) and the gates themselves
            gate = gate_of.get(metric) if gate_of.get(metric) in verdicts else None
            verdict = verdicts.get(gate, {})
            rows.append({"class_name": label_of[class_name], "metric": metric, "value": value, "gate": gate,
                         "threshold": verdict.get("threshold"), "passed": verdict.get("passed")})
    return sorted(rows, key=lambda row: (row["class_name"], row["metric"]))
