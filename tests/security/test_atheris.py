"""Coverage-guided fuzzing (atheris, libFuzzer) of the tus header parsers, the request
head's parsers and the upload handler's multipart reading: a bounded run per target, which
must find no crash."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from filmstrip.auth import signing
from filmstrip.services.api.tus import protocol
from tests.security.fuzz_targets import SEEDS, multipart_body, request_head, tus_headers

pytest.importorskip("atheris", reason="atheris has wheels for x86_64 Linux only")

ROOT = Path(__file__).resolve().parents[2]
# A few seconds each here; 300,000 multipart runs (84 s) found nothing more.
RUNS = {"tus_headers": 100_000, "request_head": 100_000, "multipart_body": 20_000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(SEEDS[target]):
        (corpus / f"seed{index}").write_bytes(seed)
    # libFuzzer's limit is on the peak RSS, which Linux carries from this process over the
    # fork and exec: after a few hundred tests this process alone is past 1 GB.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    args = [f"-runs={RUNS[target]}", "-max_total_time=60",
            f"-rss_limit_mb={inherited_mb + 1024}", "-seed=1",
            f"-artifact_prefix={tmp_path}/"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.atheris_run", target, *args, str(corpus)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    # aiohttp warns once per odd part header: the run's own lines and the input say why.
    said = [line for line in done.stderr.splitlines() if "warn" not in line.lower()]
    crashes = [f"{p.name}: {p.read_bytes()[:400]!r}" for p in tmp_path.glob("crash-*")]
    assert done.returncode == 0, "\n".join(said[-40:] + crashes)
    assert "Done" in done.stderr, done.stderr[-2000:]


def test_a_parser_bug_escapes_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fuzzer counts as a crash: any error but a 4xx ApiError leaves the target."""
    tus_headers(SEEDS["tus_headers"][0])
    request_head(SEEDS["request_head"][0])
    multipart_body(SEEDS["multipart_body"][0])

    def buggy(value: str | None, header: str) -> int:
        raise ValueError("a parser bug")

    monkeypatch.setattr(protocol, "parse_length", buggy)
    with pytest.raises(ValueError, match="a parser bug"):
        tus_headers(SEEDS["tus_headers"][0])


def test_the_request_head_seed_reaches_the_signature_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first seed is a valid signed URL: the fuzzer starts at the HMAC comparison."""
    compared: list[bool] = []
    real = signing.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(real(a, b))
        return compared[-1]

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    request_head(SEEDS["request_head"][0])
    assert compared == [True]
