"""Coverage-guided fuzzing (atheris, libFuzzer) of the tus header parsers and the upload
handler's multipart reading: a bounded run per target, which must find no crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.api.tus import protocol
from tests.security.fuzz_targets import SEEDS, multipart_body, tus_headers

pytest.importorskip("atheris", reason="atheris has wheels for x86_64 Linux only")

ROOT = Path(__file__).resolve().parents[2]
# A few seconds each here; 300,000 multipart runs (84 s) found nothing more.
RUNS = {"tus_headers": 100_000, "multipart_body": 20_000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(SEEDS[target]):
        (corpus / f"seed{index}").write_bytes(seed)
    args = [f"-runs={RUNS[target]}", "-max_total_time=60", "-rss_limit_mb=1024", "-seed=1"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.atheris_run", target, *args, str(corpus)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr, done.stderr[-2000:]


def test_a_parser_bug_escapes_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fuzzer counts as a crash: any error but a 4xx ApiError leaves the target."""
    tus_headers(SEEDS["tus_headers"][0])
    multipart_body(SEEDS["multipart_body"][0])

    def buggy(value: str | None, header: str) -> int:
        raise ValueError("a parser bug")

    monkeypatch.setattr(protocol, "parse_length", buggy)
    with pytest.raises(ValueError, match="a parser bug"):
        tus_headers(SEEDS["tus_headers"][0])
