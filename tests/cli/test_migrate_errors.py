"""What ``filmstrip migrate catalog`` and ``filmstrip migrate blobs`` tell a user who gave
them something they cannot work with (a source that is not there, a target that does not
answer, the same place twice), and a run that must be made again (its source changed while
it copied). The commands' ``run`` is called in-process, on real SQLite files, stores and
endpoints, to keep these fast; tests/cli/test_migrate runs them as processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from filmstrip.blobs.fs import FileBlobStore
from filmstrip.catalog import catalog_for_url
from filmstrip.embedded.redis_server import free_port
from filmstrip.services.cli import migrate_blobs, migrate_catalog
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import Settings, load_settings, sqlite_url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {
            "FILMSTRIP_DATA_DIR": str(tmp_path / "data"),
            # Nothing listens here: an S3 target that does not answer.
            "FILMSTRIP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "FILMSTRIP_S3_ACCESS_KEY_ID": "test",
            "FILMSTRIP_S3_SECRET_ACCESS_KEY": "test",
        }
    )


def _one_error_line(err: str, command: str) -> str:
    [line] = err.splitlines()
    assert line.startswith(f"filmstrip migrate {command}: "), line
    return line


# --- blobs ------------------------------------------------------------------------------


async def test_a_blob_source_that_is_not_there_is_refused_not_copied_as_empty(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --from (or FILMSTRIP_DATA_DIR) named a directory that does not exist: the
    command copied its 0 blobs, said "Every blob verified" and told the user to point every
    role at the new, empty, store. It must refuse, as the catalog command does."""
    target = tmp_path / "new"
    code = await migrate_blobs.run(
        settings,
        migrate_blobs.Options(source=f"file://{tmp_path}/typo", target=f"file://{target}"),
    )
    out, err = capsys.readouterr()
    assert code == 1, out
    assert f"there is no store at {tmp_path}/typo" in _one_error_line(err, "blobs")
    assert "point every role" not in out
    assert not target.exists()


async def test_a_blob_target_that_does_not_answer_fails_the_command_in_one_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = FileBlobStore(tmp_path / "blobs")
    await source.put_bytes("originals/a", b"a", content_type="image/jpeg")
    code = await migrate_blobs.run(
        settings,
        migrate_blobs.Options(source=f"file://{tmp_path}/blobs", target="s3://bucket/moved"),
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "S3 is unreachable" in _one_error_line(err, "blobs")
    assert out == ""


async def test_the_same_blob_store_twice_is_refused(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blobs").mkdir()
    url = f"file://{tmp_path}/blobs"
    code = await migrate_blobs.run(settings, migrate_blobs.Options(source=url, target=url + "/"))
    _out, err = capsys.readouterr()
    assert code == 1
    assert "the same store" in _one_error_line(err, "blobs")


# --- catalog ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "says"),
    [
        ("sqlite:///{tmp}/typo.db", "sqlite:///{tmp}/new.db", "there is no catalog at"),
        ("sqlite:///{tmp}/old.db", "mysql://db/filmstrip", "is not a sqlite:/// or postgresql://"),
        ("sqlite:///{tmp}/old.db", "sqlite:///{tmp}/old.db", "the same catalog"),
    ],
    ids=["source-missing", "target-not-a-catalog-url", "same-catalog"],
)
async def test_a_catalog_command_that_cannot_start_says_why_and_creates_nothing(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    target: str,
    says: str,
) -> None:
    await _catalog_with_a_client(tmp_path / "old.db")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = await migrate_catalog.run(
        settings,
        migrate_catalog.Options(
            source=source.format(tmp=tmp_path), target=target.format(tmp=tmp_path)
        ),
    )
    out, err = capsys.readouterr()
    assert code == 1, out
    assert says in _one_error_line(err, "catalog")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no new.db, no typo.db


async def test_a_catalog_copy_whose_source_changed_meanwhile_fails_and_a_second_run_completes(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The roles were not stopped: a client is added to the source once its table was
    copied. The run must not say "verified" (exit 1, SOURCE CHANGED); run again, it brings
    the rest over and verifies."""
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    await _catalog_with_a_client(old)
    say = migrate_catalog._say
    added: list[str] = []

    def say_then_write(line: str = "") -> None:
        say(line)
        if line.startswith("  clients: ") and not added:  # the table is copied
            _add_client(old, "late")
            added.append(line)

    monkeypatch.setattr(migrate_catalog, "_say", say_then_write)
    options = migrate_catalog.Options(source=sqlite_url(str(old)), target=sqlite_url(str(new)))
    first = await migrate_catalog.run(settings, options)
    out = capsys.readouterr().out
    assert added, out
    assert first == 1, out
    assert "SOURCE CHANGED during the copy: clients" in out
    assert "Every table verified" not in out

    second = await migrate_catalog.run(settings, options)
    out = capsys.readouterr().out
    assert second == 0, out
    assert "Every table verified" in out
    assert _client_names(new) == ["early", "late"]


async def _catalog_with_a_client(path: Path) -> None:
    catalog = catalog_for_url(sqlite_url(str(path)))
    await catalog.connect()
    try:
        await issue_token(catalog, "early", admin=False)
    finally:
        await catalog.close()


def _add_client(path: Path, name: str) -> None:
    _on(path, lambda c: c.execute(
        "INSERT INTO clients (id, name, is_admin, created_at) VALUES (?, ?, 0, ?)",
        (name, name, "2026-01-01T00:00:00Z"),
    ))  # fmt: skip


def _client_names(path: Path) -> list[str]:
    return sorted(r[0] for r in _on(path, lambda c: c.execute("SELECT name FROM clients")))


def _on(path: Path, work: Callable[[sqlite3.Connection], sqlite3.Cursor]) -> list[tuple[str]]:
    conn = sqlite3.connect(path)
    try:
        with conn:
            return work(conn).fetchall()
    finally:
        conn.close()
