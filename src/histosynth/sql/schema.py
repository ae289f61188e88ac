"""The package database: the thesis' BCADCID tables, extended, as SQLAlchemy Core tables.

The source documents' tables keep their names and columns (``gan_architectures``,
``class_names``, ``training_parameters``, ``images``); the extensions are the columns the
package metadata carries (source, split, md5, size, seed...), the rest of the training record,
a ``qa_metrics`` table with every per-class QA figure and a one-row ``dataset`` table.

- ``class_names.id`` is the class label the GAN and ``metadata.csv`` use (0-based), so it is
  never auto-generated; ``images.id`` is the image id of ``metadata.csv`` and of its file name.
- Strings compare byte for byte in MySQL/MariaDB too (``utf8mb4_bin``): ids, paths and class
  names that differ only in case or accents stay different.
- Class names are not a unique key: MySQL's PAD SPACE collations would take ``'a'`` and
  ``'a '`` for the same key; labels and (ASCII) class folders are unique instead.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    CHAR, BigInteger, Boolean, CheckConstraint, Column, Dialect, Double, ForeignKey, Index, Integer, MetaData,
    String, Table, Text,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator

from histosynth.manifest import SPLITS
from histosynth.package.schema import SOURCES


class JsonDocument(TypeDecorator[Any]):
    """A JSON value: ``jsonb`` in PostgreSQL, ``JSON`` in MySQL/MariaDB, ``TEXT`` in SQLite.

    SQLAlchemy's JSON types render no literals, so the value travels as text (a string literal
    quoted by the dialect's own string rendering) that every server parses on insert; only the
    column type in the DDL differs per dialect (see the ``compiles`` hooks below). The text is
    canonical (sorted keys, no spaces) so that the same value always dumps the same.
    """

    impl = Text
    cache_ok = True

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        return canonical_json(value)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return json.loads(value) if isinstance(value, str) else value


@compiles(JsonDocument, "postgresql")
def _jsonb(type_: JsonDocument, compiler: Any, **kw: Any) -> str:
    return compiler.process(postgresql.JSONB(), **kw)


@compiles(JsonDocument, "mysql")
@compiles(JsonDocument, "mariadb")
def _json(type_: JsonDocument, compiler: Any, **kw: Any) -> str:
    return compiler.process(mysql.JSON(), **kw)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# Longest values the VARCHAR columns take (records.py refuses longer ones with a clear error).
NAME_LENGTH = 255
PATH_LENGTH = 512
SHORT_LENGTH = 64

# Constraint names that do not depend on the order SQLAlchemy meets them.
NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
}
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

database = MetaData(naming_convention=NAMING_CONVENTION)


def _key(name: str = "id") -> Column[int]:
    return Column(name, Integer, primary_key=True, autoincrement=False)


def _gan_reference(nullable: bool) -> Column[int]:
    return Column("gan", Integer, ForeignKey("gan_architectures.id"), nullable=nullable)


dataset = Table(
    "dataset", database,
    _key(),
    Column("name", String(NAME_LENGTH)),
    Column("version", String(SHORT_LENGTH)),
    **MYSQL_TABLE_OPTIONS,
)

gan_architectures = Table(
    "gan_architectures", database,
    _key(),
    Column("arch", String(SHORT_LENGTH), nullable=False),
    # The networks as built from the training record: module tree, hyper-parameters, parameter counts.
    Column("generator", JsonDocument(), nullable=False),
    Column("discriminator", JsonDocument(), nullable=False),
    Column("image_size", Integer, nullable=False),
    Column("latent_dim", Integer, nullable=False),
    Column("n_classes", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    # MD5 of generator.pt: the generator_run of the synthetic images in metadata.csv.
    Column("checkpoint_md5", CHAR(32), unique=True),
    **MYSQL_TABLE_OPTIONS,
)

class_names = Table(
    "class_names", database,
    _key(),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("folder", String(NAME_LENGTH), nullable=False, unique=True),
    # The GAN that can generate the class (null: a class the GAN was not trained on).
    _gan_reference(nullable=True),
    Column("qa_passed", Boolean),
    **MYSQL_TABLE_OPTIONS,
)

training_parameters = Table(
    "training_parameters", database,
    _key(),
    _gan_reference(nullable=False),
    Column("g_optimizer", String(SHORT_LENGTH), nullable=False),
    Column("d_optimizer", String(SHORT_LENGTH)),  # null: a diffusion model (no discriminator)
    Column("loss", String(SHORT_LENGTH), nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("epochs", Integer, nullable=False),
    Column("g_lr", Double, nullable=False),
    Column("d_lr", Double),  # null: a diffusion model, which has no discriminator
    Column("beta1", Double),
    Column("beta2", Double),
    Column("n_critic", Integer),
    Column("weight_decay", Double),
    Column("gp_weight", Double),
    Column("ema", Double),
    Column("lr_step_epochs", Integer),
    Column("lr_step_gamma", Double),
    Column("diffaugment", String(NAME_LENGTH)),
    Column("train_on", String(SHORT_LENGTH)),
    Column("seed", BigInteger),
    Column("epochs_trained", Integer),
    Column("generator_weights", String(SHORT_LENGTH)),
    Column("train_images", Integer),
    Column("train_manifest_md5", CHAR(32)),
    # The training parameters without a column of their own, and the library versions used.
    Column("other_params", JsonDocument()),
    Column("software_versions", JsonDocument()),
    **MYSQL_TABLE_OPTIONS,
)

qa_metrics = Table(
    "qa_metrics", database,
    Column("class_name", Integer, ForeignKey("class_names.id"), primary_key=True, autoincrement=False),
    Column("metric", String(SHORT_LENGTH), primary_key=True),
    Column("value", Double),  # null: not computable (too few images) or not finite
    # The QA gate that reads the metric, its effective threshold and verdict (null: no gate / not evaluated).
    Column("gate", String(SHORT_LENGTH)),
    Column("threshold", Double),
    Column("passed", Boolean),
    **MYSQL_TABLE_OPTIONS,
)

images = Table(
    "images", database,
    Column("id", String(NAME_LENGTH), primary_key=True),
    Column("file_path", String(PATH_LENGTH), nullable=False, unique=True),
    Column("class_name", Integer, ForeignKey("class_names.id"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("split", String(16), nullable=False),
    # metadata's `group` (a reserved word in SQL): patient, slide or original image; null for synthetic images.
    Column("group_name", String(NAME_LENGTH)),
    Column("md5", CHAR(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    # The GAN that made a synthetic image (null for real ones), and the latent it was drawn with.
    _gan_reference(nullable=True),
    Column("seed", BigInteger),
    Column("latent_index", Integer),
    # An edit's source: the id of the real train image it was made from (null: a sample or a real
    # image). Not a foreign key: the train split need not be in the package.
    Column("edit_of", String(NAME_LENGTH)),
    # Curation's scores of a synthetic image (null for real ones): histosynth.curate.
    Column("confidence", Double),
    Column("realism", Double),
    Column("copy_ratio", Double),
    Column("curation", String(16)),
    Index(None, "class_name"),
    **MYSQL_TABLE_OPTIONS,
)
images.append_constraint(CheckConstraint(images.c.source.in_(SOURCES), name="source"))
images.append_constraint(CheckConstraint(images.c.split.in_(SPLITS), name="split"))

# Creation and insert order (parents before children).
TABLES: tuple[Table, ...] = tuple(database.sorted_tables)
