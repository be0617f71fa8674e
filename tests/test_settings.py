"""Settings: defaults for the embedded mode, errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from filmstrip.pipeline.plan import PIPELINES
from filmstrip.protocols.jobs import PIPELINE_NAMES
from filmstrip.settings import (
    SettingsError,
    database_backend,
    load_settings,
    redacted_url,
    sqlite_path,
)

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_need_no_environment() -> None:
    s = load_settings({})
    assert s.api.port == 8080 and s.bus.port == 8081
    assert s.effective_blob_url.startswith("file://") and s.effective_blob_url.endswith(
        "/var/blobs"
    )
    assert s.effective_database_url == "sqlite:///var/filmstrip.db"
    assert s.api.max_upload_bytes == 200 * 1024 * 1024


def test_paas_port_wins_and_binds_all_interfaces() -> None:
    s = load_settings({"PORT": "5000", "FILMSTRIP_API_PORT": "9000"})
    assert s.api.port == 5000 and s.api.host == "0.0.0.0"


def test_values_are_typed() -> None:
    s = load_settings({"FILMSTRIP_WORKER_CONCURRENCY": "7", "FILMSTRIP_LOG_JSON": "no"})
    assert s.queue.concurrency == 7 and s.logs.log_json is False
    assert load_settings({"FILMSTRIP_UMASK": "007"}).file_umask == 0o007


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FILMSTRIP_API_PORT": "eighty"}, "FILMSTRIP_API_PORT"),
        ({"FILMSTRIP_API_PORT": "70000"}, "FILMSTRIP_API_PORT"),
        ({"FILMSTRIP_WORKER_CONCURRENCY": "0"}, "FILMSTRIP_WORKER_CONCURRENCY"),
        ({"FILMSTRIP_BLOB_URL": "ftp://x"}, "FILMSTRIP_BLOB_URL"),
        ({"FILMSTRIP_REDIS_URL": "localhost:6379"}, "FILMSTRIP_REDIS_URL"),
        ({"FILMSTRIP_LOG_JSON": "maybe"}, "FILMSTRIP_LOG_JSON"),
        ({"FILMSTRIP_UMASK": "0o22"}, "FILMSTRIP_UMASK"),
        ({"FILMSTRIP_UMASK": "088"}, "FILMSTRIP_UMASK"),
        ({"PORT": "web"}, "PORT"),
        ({"FILMSTRIP_DATABASE_URL": "mysql://x/y"}, "FILMSTRIP_DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"FILMSTRIP_DATABASE_URL": "sqlite://x.db"}, "FILMSTRIP_DATABASE_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"FILMSTRIP_DATABASE_URL": "sqlite:///a.db", "FILMSTRIP_DB_PATH": "b.db"}, "both"),
        ({"FILMSTRIP_DEFAULT_PIPELINE": "fast"}, "FILMSTRIP_DEFAULT_PIPELINE='fast'"),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_the_catalog_is_chosen_by_url() -> None:
    assert load_settings({"FILMSTRIP_DATA_DIR": "/srv/f"}).effective_database_url == (
        "sqlite:////srv/f/filmstrip.db"
    )
    # FILMSTRIP_DB_PATH, the older setting, still names the SQLite file.
    old = load_settings({"FILMSTRIP_DB_PATH": "/data/cat.db"})
    assert old.effective_database_url == "sqlite:////data/cat.db"
    assert sqlite_path(old.effective_database_url) == "/data/cat.db"
    assert database_backend("sqlite:///var/filmstrip.db") == "sqlite"
    for url in ("postgresql://u@db/filmstrip", "postgres://u:p@db:5432/f?sslmode=require"):
        assert load_settings({"FILMSTRIP_DATABASE_URL": url}).effective_database_url == url
        assert database_backend(url) == "postgresql"


def test_paas_database_and_redis_urls_are_used_unless_ours_are_set() -> None:
    paas = {"DATABASE_URL": "postgres://u@db/app", "REDIS_URL": "rediss://h:6380"}
    s = load_settings(paas)
    assert (s.effective_database_url, s.redis.url) == (paas["DATABASE_URL"], paas["REDIS_URL"])
    ours = load_settings(
        {**paas, "FILMSTRIP_DATABASE_URL": "sqlite:///x.db", "FILMSTRIP_REDIS_URL": "redis://r"}
    )
    assert (ours.effective_database_url, ours.redis.url) == ("sqlite:///x.db", "redis://r")
    # An explicit SQLite file is a setting of ours too.
    assert load_settings({**paas, "FILMSTRIP_DB_PATH": "c.db"}).effective_database_url == (
        "sqlite:///c.db"
    )


def test_a_password_in_a_bad_database_url_is_not_shown() -> None:
    with pytest.raises(SettingsError) as failed:
        load_settings({"DATABASE_URL": "mysql://app:s3cret@db/app"})
    assert "s3cret" not in str(failed.value)


def test_the_pipelines_settings_may_name_are_those_the_plan_runs() -> None:
    assert tuple(PIPELINES) == PIPELINE_NAMES


def test_a_role_with_an_unknown_default_pipeline_does_not_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_")}
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_DATA_DIR=str(tmp_path),
        FILMSTRIP_DEFAULT_PIPELINE="fast_processing",
    )
    argv = [sys.executable, "-m", "filmstrip.services.cli.main", "api"]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "filmstrip: FILMSTRIP_DEFAULT_PIPELINE='fast_processing' is not a pipeline: "
        "use one of full_processing, quick_processing"
    )
    assert not (tmp_path / "filmstrip.db").exists()  # stopped before opening anything


def test_paas_variables_set_but_empty_are_as_if_unset() -> None:
    s = load_settings({"PORT": "", "DATABASE_URL": "", "REDIS_URL": ""})
    assert s == load_settings({})


def test_the_paas_port_keeps_a_host_set_on_purpose() -> None:
    assert load_settings({"PORT": "5000", "FILMSTRIP_API_HOST": "10.0.0.2"}).api.host == "10.0.0.2"


@pytest.mark.parametrize(
    ("env", "starts"),
    [
        ({"PORT": "web"}, "PORT='web' is not valid"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379' must be"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL='mysql://x/y' must be"),
        ({"FILMSTRIP_REDIS_URL": "localhost:6379"}, "FILMSTRIP_REDIS_URL="),
    ],
)
def test_the_message_names_the_variable_the_value_came_from(
    env: dict[str, str], starts: str
) -> None:
    # Not FILMSTRIP_… for a value the PaaS handed over: that is the one to fix.
    with pytest.raises(SettingsError) as failed:
        load_settings(env)
    assert str(failed.value).startswith(starts), failed.value


@pytest.mark.parametrize(
    ("raw", "value"),
    [("on", True), ("YES", True), ("1", True), ("off", False), ("", False), ("auto", None)],
)
def test_switches_read_the_usual_words(raw: str, value: bool | None) -> None:
    s = load_settings({"FILMSTRIP_LOG_JSON": raw, "FILMSTRIP_S3_SIGN_PAYLOAD": raw})
    assert s.logs.log_json is value and s.blobs.s3_sign_payload is value


def test_values_the_checks_accept() -> None:
    s = load_settings(
        {
            "FILMSTRIP_REDIS_URL": "unix:///run/redis.sock",
            "FILMSTRIP_UMASK": "0027",
            "FILMSTRIP_LOG_LEVEL": "debug",
            "FILMSTRIP_API_HOST": "0.0.0.0",
            "FILMSTRIP_API_PORT": "9000",
        }
    )
    assert s.file_umask == 0o027 and s.redis.url == "unix:///run/redis.sock"
    assert s.effective_api_url == "http://127.0.0.1:9000"  # where a client on this host goes
    given = load_settings({"FILMSTRIP_API_URL": "https://photos.example/"})
    assert given.effective_api_url == "https://photos.example"


@pytest.mark.parametrize(
    ("env", "starts"),
    [
        ({"FILMSTRIP_DATABASE_URL": "sqlite:///"}, "FILMSTRIP_DATABASE_URL='sqlite:///' must be"),
        ({"FILMSTRIP_THUMBNAIL_FORMAT": "gif"}, "FILMSTRIP_THUMBNAIL_FORMAT must be one of"),
        ({"FILMSTRIP_LOG_LEVEL": "loud"}, "FILMSTRIP_LOG_LEVEL must be DEBUG"),
    ],
)
def test_values_the_checks_refuse(env: dict[str, str], starts: str) -> None:
    with pytest.raises(SettingsError) as failed:
        load_settings(env)
    assert str(failed.value).startswith(starts), failed.value


def test_a_url_without_a_password_is_shown_as_it_is() -> None:
    assert redacted_url("postgresql://app@db/photos") == "postgresql://app@db/photos"
    assert redacted_url("redis://:pw@r:6379/0") == "redis://:***@r:6379/0"
