"""The SQL dumps load into real servers: SQLite, MariaDB and PostgreSQL (see sql_servers.py).

Each test loads a dump with the server's own client into a fresh database and reads it back:
row counts, class names built to break hand-made SQL, JSON documents, column types from
information_schema, foreign keys. Strings come back hex-encoded so that no client output
escaping stands between the dump and the assertion.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sql_samples import gan_record, qa_metrics, tricky_metadata
from sql_servers import Server, mariadb, postgresql  # noqa: F401  (session fixtures)
from sqlalchemy import insert

from histosynth.manifest import class_names_of
from histosynth.package.database import package_database
from histosynth.package.sql import DIALECTS, PackageDatabase, schema, write_dumps
from histosynth.package.sql.dump import dialect_of

HEX = {"mysql": "HEX({})", "postgresql": "encode(convert_to({}, 'UTF8'), 'hex')", "sqlite": "hex({})"}
JSON_TEXT = {"mysql": "JSON_VALUE({}, '$.{}')", "postgresql": "{} #>> '{{{}}}'", "sqlite": "json_extract({}, '$.{}')"}
PERCEPTUAL_WEIGHTS = "C:\\weights\\vgg19 'bn' \"v2\" – ✓.pth"


@dataclass(frozen=True)
class Dumps:
    db: PackageDatabase
    files: dict[str, Path]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> Dumps:
    record = gan_record()
    record["params"]["perceptual_weights"] = PERCEPTUAL_WEIGHTS
    db = package_database(tricky_metadata(), record, qa_metrics(), name="demo 'BCADCID' \\ 😀", version="1.0.0-rc.1")
    return Dumps(db, write_dumps(db, tmp_path_factory.mktemp("sql")))


@dataclass
class Loaded:
    """A dump loaded into a fresh database of its dialect."""

    dialect: str
    query: Callable[[str], list[tuple[str, ...]]]
    execute: Callable[[str], None]  # raises AssertionError or sqlite3.Error when the server refuses

    def strings(self, expression: str, table: str, order: str) -> list[str]:
        rows = self.query(f"SELECT {HEX[self.dialect].format(expression)} FROM {table} ORDER BY {order}")
        return [bytes.fromhex(row[0]).decode("utf-8") for row in rows]

    def json_text(self, column: str, path: str, table: str = "gan_architectures") -> str:
        expression = JSON_TEXT[self.dialect].format(column, path if self.dialect != "postgresql" else
                                                    path.replace(".", ","))
        return self.strings(expression, table, "id")[0]


def _load_sqlite(dump: Path) -> Loaded:
    connection = sqlite3.connect(":memory:")
    connection.executescript(dump.read_bytes().decode("utf-8"))

    def query(sql: str) -> list[tuple[str, ...]]:
        return [tuple(str(value) for value in row) for row in connection.execute(sql)]

    def execute(sql: str) -> None:
        connection.execute(sql)

    return Loaded("sqlite", query, execute)


def _load_server(server: Server, dialect: str, dump: Path) -> Loaded:
    database = server.create_database()
    server.load(dump, database)

    def execute(sql: str) -> None:
        server.execute(sql, database)

    return Loaded(dialect, lambda sql: server.query(sql, database), execute)


@pytest.fixture(params=DIALECTS)
def loaded(request: pytest.FixtureRequest, dumps: Dumps) -> Iterator[Loaded]:
    dialect = request.param
    if dialect == "sqlite":
        yield _load_sqlite(dumps.files["sqlite"])
    else:
        server = request.getfixturevalue("mariadb" if dialect == "mysql" else "postgresql")
        yield _load_server(server, dialect, dumps.files[dialect])


def test_row_counts_match_the_metadata(loaded: Loaded, dumps: Dumps) -> None:
    for table in schema.TABLES:
        assert loaded.query(f"SELECT COUNT(*) FROM {table.name}") == [(str(dumps.db.count(table)),)], table.name
    per_class = loaded.query("SELECT class_name, COUNT(*) FROM images GROUP BY class_name ORDER BY class_name")
    expected = dumps.db.metadata.groupby("label").size()
    assert [(int(label), int(n)) for label, n in per_class] == list(expected.items())


def test_tricky_strings_round_trip(loaded: Loaded, dumps: Dumps) -> None:
    metadata = dumps.db.metadata
    assert loaded.strings("name", "class_names", "id") == class_names_of(metadata)
    assert sorted(loaded.strings("id", "images", "id")) == sorted(metadata["id"])
    assert loaded.strings("name", "dataset", "id") == ["demo 'BCADCID' \\ 😀"]
    assert loaded.json_text("other_params", "perceptual_weights", "training_parameters") == PERCEPTUAL_WEIGHTS


def test_json_documents_describe_the_networks(loaded: Loaded, dumps: Dumps) -> None:
    gan = dumps.db.records["gan_architectures"][0]
    for column in ("generator", "discriminator"):
        assert loaded.json_text(column, "network.parameters") == str(gan[column]["network"]["parameters"])
        assert loaded.json_text(column, "network.type") == gan[column]["network"]["type"]


def test_column_types(loaded: Loaded) -> None:
    def types(table: str) -> dict[str, str]:
        if loaded.dialect == "sqlite":
            return {name: kind for _, name, kind, *_ in loaded.query(f"PRAGMA table_info({table})")}
        schema_filter = "table_schema = DATABASE()" if loaded.dialect == "mysql" else "table_schema = 'public'"
        return dict(loaded.query("SELECT column_name, data_type FROM information_schema.columns "
                                 f"WHERE {schema_filter} AND table_name = '{table}'"))

    gan, images, qa = types("gan_architectures"), types("images"), types("qa_metrics")
    if loaded.dialect == "postgresql":
        assert (gan["generator"], gan["discriminator"]) == ("jsonb", "jsonb")
        assert (images["seed"], qa["value"], qa["passed"]) == ("bigint", "double precision", "boolean")
    elif loaded.dialect == "sqlite":
        assert (gan["generator"], gan["discriminator"]) == ("TEXT", "TEXT")
        assert (images["seed"], qa["value"]) == ("BIGINT", "DOUBLE")
    else:
        # MySQL reports json; MariaDB's JSON is longtext with a json_valid() check.
        checks = " ".join(row[0] for row in loaded.query(
            "SELECT check_clause FROM information_schema.check_constraints "
            "WHERE constraint_schema = DATABASE() AND table_name = 'gan_architectures'"))
        for column in ("generator", "discriminator"):
            assert gan[column] == "json" or (gan[column] == "longtext" and f"json_valid(`{column}`)" in checks)
        assert (images["seed"], qa["value"]) == ("bigint", "double")
        collations = loaded.query("SELECT DISTINCT table_collation FROM information_schema.tables "
                                  "WHERE table_schema = DATABASE()")
        assert collations == [("utf8mb4_bin",)]


def test_foreign_keys_are_enforced(loaded: Loaded, dumps: Dumps) -> None:
    row = {**next(dumps.db.chunks(schema.images, 1))[0], "id": "added", "file_path": "images/added.png"}

    def statement(class_id: int) -> str:
        values = {**row, "class_name": class_id}
        return str(insert(schema.images).values(values).compile(dialect=dialect_of(loaded.dialect),
                                                                 compile_kwargs={"literal_binds": True}))

    with pytest.raises((AssertionError, sqlite3.IntegrityError), match="(?i)foreign key"):
        loaded.execute(statement(len(class_names_of(dumps.db.metadata))))
    loaded.execute(statement(0))  # the same row with a class that exists goes in
    assert loaded.query("SELECT COUNT(*) FROM images") == [(str(len(dumps.db.metadata) + 1),)]


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_dump_reloads_and_ignores_the_client_session_settings(dialect: str, dumps: Dumps,
                                                              request: pytest.FixtureRequest) -> None:
    """Loaded twice into one database, the second time from a session that reads string literals
    differently (MySQL without backslash escapes, PostgreSQL with non-standard strings): the dump
    sets the session up itself, so nothing changes."""
    server: Server = request.getfixturevalue("mariadb" if dialect == "mysql" else "postgresql")
    database = server.create_database()
    server.load(dumps.files[dialect], database)
    if dialect == "mysql":
        server.load(dumps.files[dialect], database,
                    options=["--init-command=SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'"])
    else:
        server.load(dumps.files[dialect], database, env={"PGOPTIONS": "-c standard_conforming_strings=off"})
    loaded = Loaded(dialect, lambda sql: server.query(sql, database), lambda sql: None)
    assert loaded.strings("name", "class_names", "id") == class_names_of(dumps.db.metadata)
    assert loaded.query("SELECT COUNT(*) FROM images") == [(str(len(dumps.db.metadata)),)]


def test_servers_start_quickly(mariadb: Server, postgresql: Server) -> None:  # noqa: F811
    assert mariadb.startup_s < 20 and postgresql.startup_s < 20, (mariadb.startup_s, postgresql.startup_s)
