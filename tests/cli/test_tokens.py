"""``filmstrip --version``, help without markup, and the token commands naming their
catalog: ``create`` refuses to start a new one unless asked, ``list`` shows each token's
client, role and times but never the token."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from filmstrip.catalog import open_catalog
from filmstrip.embedded.redis_server import free_port
from filmstrip.settings import Settings
from tests.cli.test_cli import ROOT, _env
from tests.support.settings import replace_settings


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "filmstrip.services.cli.main", *args], env=env, capture_output=True,
        text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_version_is_the_package_version(tmp_path: Path) -> None:
    out = _cli(_env(tmp_path), "--version")
    assert out.returncode == 0, out.stderr
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert out.stdout.strip() == f"filmstrip {version}"


def test_help_has_no_markup(tmp_path: Path) -> None:
    env = _env(tmp_path)
    pages = [("--help",), ("token", "--help"), ("token", "create", "--help")]
    pages += [("token", "list", "--help"), ("migrate", "--help")]
    for page in pages:
        out = _cli(env, *page)
        assert out.returncode == 0, out.stderr
        # RST literals, roles and emphasis that a docstring would carry.
        assert not re.search(r"``|:\w+:`|\*\*", out.stdout), (page, out.stdout)
    assert "run a role" in _cli(env, "--help").stdout


def test_token_create_refuses_to_start_a_catalog_and_names_the_one_it_used(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    db = (tmp_path / "var" / "filmstrip.db").resolve()
    refused = _cli(env, "token", "create", "carol")
    assert refused.returncode == 1
    assert refused.stdout == ""  # no token for a catalog no server reads
    assert f"no catalog at sqlite:///{db}" in refused.stderr
    assert "--create-catalog" in refused.stderr
    assert not db.exists() and not db.parent.exists()
    for command in (("token", "list"), ("token", "revoke", "--client", "carol")):
        out = _cli(env, *command)
        assert out.returncode == 1 and f"no catalog at sqlite:///{db}" in out.stderr
        assert not db.exists()

    made = _cli(env, "token", "create", "carol", "--create-catalog")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("fst_") and db.exists()
    assert f"catalog: sqlite:///{db}" in made.stderr
    again = _cli(env, "token", "create", "carol")  # it exists now: no flag needed
    assert again.returncode == 0 and f"catalog: sqlite:///{db}" in again.stderr


def test_the_catalog_named_hides_a_password(tmp_path: Path) -> None:
    env = _env(tmp_path, FILMSTRIP_DATABASE_URL="postgresql://filmstrip:s3cret@127.0.0.1:1/none")
    out = _cli(env, "token", "list")
    assert out.returncode == 1
    assert "the catalog at postgresql://filmstrip:***@127.0.0.1:1/none did not answer" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_a_catalog_that_refuses_connections_fails_a_token_command_at_once(
    tmp_path: Path,
) -> None:
    # A role waits up to 10 s for a server still starting; a command run by hand says why
    # it cannot connect and leaves.
    url = f"postgresql://filmstrip@127.0.0.1:{free_port()}/none"
    started = time.monotonic()
    out = _cli(_env(tmp_path, FILMSTRIP_DATABASE_URL=url), "token", "list")
    took = time.monotonic() - started
    assert out.returncode == 1 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith(f"filmstrip token list: the catalog at {url} did not answer: "), line
    assert "Connection refused" in line
    # Loose (a shared machine; the interpreter's start is most of it): the hang was 10 s.
    assert took < 5, f"took {took:.1f} s"


async def test_token_list_shows_clients_roles_and_use_never_the_token(tmp_path: Path) -> None:
    env = _env(tmp_path)
    alice = _cli(env, "token", "create", "alice", "--create-catalog").stdout.strip()
    ops = _cli(env, "token", "create", "ops", "--admin").stdout.strip()
    _cli(env, "token", "create", "gone")
    _cli(env, "token", "revoke", "--client", "gone")
    catalog = await open_catalog(replace_settings(Settings(), data_dir=str(tmp_path / "var")))
    try:
        [(alice_hash,)] = await catalog._fetchall(
            "SELECT t.token_hash FROM tokens t JOIN clients c ON c.id = t.client_id "
            "WHERE c.name = 'alice'"
        )
        await catalog.record_token_use(alice_hash)
    finally:
        await catalog.close()

    out = _cli(env, "token", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["CLIENT", "ADMIN", "CREATED", "LAST", "USED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"alice", "ops"}  # revoked tokens only with --revoked
    assert rows["alice"][1] == "no" and rows["ops"][1] == "yes"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rows["alice"][2])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rows["alice"][4])  # used: a date
    assert rows["ops"][4] == "never"
    for secret in (alice, ops, alice_hash):
        assert secret not in out.stdout + out.stderr
    with_revoked = _cli(env, "token", "list", "--revoked")
    assert "gone" in with_revoked.stdout and "REVOKED" in with_revoked.stdout


def test_a_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    # A name typed in a Latin-1 terminal reaches Python as surrogate escapes, which no
    # catalog can store or look up: one line and exit 2, not a traceback (nor a new catalog).
    env = _env(tmp_path)
    db = tmp_path / "var" / "filmstrip.db"
    latin1 = b"caf\xe9"
    commands = [
        (("token", "create", latin1, "--create-catalog"), "create: the client name"),
        (("token", "revoke", "--client", latin1), "revoke: the client name"),
        (("token", "revoke", b"fst_\xff"), "revoke: the token"),
    ]
    for args, said in commands:
        out = subprocess.run(
            [sys.executable, "-m", "filmstrip.services.cli.main", *args], env=env,
            capture_output=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert out.returncode == 2 and out.stdout == b"", out.stderr
        assert out.stderr.decode().splitlines() == [
            f"filmstrip token {said} is not valid UTF-8 text"
        ]
        assert not db.exists()


def test_revoke_says_what_it_did_to_a_client_s_tokens(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for _ in range(2):
        assert _cli(env, "token", "create", "dora", "--create-catalog").returncode == 0
    neither = _cli(env, "token", "revoke")
    assert neither.returncode == 2 and "give a token or --client NAME" in neither.stderr
    unknown = _cli(env, "token", "revoke", "--client", "nobody")
    assert unknown.returncode == 1 and "no client 'nobody'" in unknown.stderr
    done = _cli(env, "token", "revoke", "--client", "dora")
    assert done.returncode == 0 and "revoked 2 token(s)" in done.stderr
