"""The migration runner: ordered, recorded, idempotent, and strict about history."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from services.common.migrations import MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql, encoding="utf-8")


async def test_migrations_apply_in_order_once_and_are_recorded(
    tmp_path: Path, database_url: str
) -> None:
    # Written out of order on purpose: version order, not file-system order, decides.
    write(tmp_path, "0002_add_note.sql", "ALTER TABLE wijk ADD COLUMN note text;")
    write(tmp_path, "0001_create.sql", "CREATE TABLE wijk (code text PRIMARY KEY);")
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, "demo", load_migrations(tmp_path)) == [1, 2]
        assert await migrate(conn, "demo", load_migrations(tmp_path)) == []
        rows = await conn.fetch("SELECT version, name FROM demo.schema_migrations ORDER BY 1")
        assert [(r["version"], r["name"]) for r in rows] == [(1, "create"), (2, "add_note")]
        await conn.execute("INSERT INTO demo.wijk VALUES ('WK039201', 'Oude Stad')")

        write(tmp_path, "0003_index.sql", "CREATE INDEX wijk_note ON wijk (note);")
        assert await migrate(conn, "demo", load_migrations(tmp_path)) == [3]
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "0001_create.sql", "CREATE TABLE buurt (code text PRIMARY KEY);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, "demo", load_migrations(tmp_path))
        assert await conn.fetchval("SELECT max(version) FROM demo.schema_migrations") == 1
        assert await conn.fetchval("SELECT to_regclass('demo.half')") is None
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "0001_create.sql", "CREATE TABLE buurt (code text PRIMARY KEY);")
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, "demo", load_migrations(tmp_path))
        write(tmp_path, "0001_create.sql", "CREATE TABLE buurt (code text PRIMARY KEY, x int);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, "demo", load_migrations(tmp_path))
        (tmp_path / "0001_create.sql").unlink()
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn, "demo", load_migrations(tmp_path))
    finally:
        await conn.close()


def test_badly_named_or_duplicate_versions_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "1_create.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_snake_case"):
        load_migrations(tmp_path)
    (tmp_path / "1_create.sql").unlink()
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    write(tmp_path, "0001_b.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="share a version"):
        load_migrations(tmp_path)
