"""Settings: defaults for the embedded mode, errors that name the variable."""

from __future__ import annotations

import pytest

from filmstrip.settings import SettingsError, load_settings


def test_defaults_need_no_environment() -> None:
    s = load_settings({})
    assert s.api_port == 8080 and s.bus_port == 8081
    assert s.effective_blob_url.startswith("file://") and s.effective_blob_url.endswith(
        "/var/blobs"
    )
    assert s.effective_db_path.endswith("filmstrip.db")
    assert s.max_upload_bytes == 200 * 1024 * 1024


def test_paas_port_wins_and_binds_all_interfaces() -> None:
    s = load_settings({"PORT": "5000", "FILMSTRIP_API_PORT": "9000"})
    assert s.api_port == 5000 and s.api_host == "0.0.0.0"


def test_values_are_typed() -> None:
    s = load_settings({"FILMSTRIP_WORKER_CONCURRENCY": "7", "FILMSTRIP_LOG_JSON": "no"})
    assert s.worker_concurrency == 7 and s.log_json is False
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
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env)
