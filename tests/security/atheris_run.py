"""``python -m tests.security.atheris_run TARGET [libFuzzer args...]``: fuzz one target of
:mod:`tests.security.fuzz_targets` with coverage from our code (the api, the signed-URL
check) and aiohttp's parser."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["filmstrip.services", "aiohttp", "filmstrip.auth"]):
    from tests.security.fuzz_targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
