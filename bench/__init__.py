"""Benchmarks, run from the repository root as ``PYTHONPATH=src:. python -m bench.<name>``.

A bench measures whichever ``filmstrip`` Python imports: without ``src`` on the path that
is the installed one, maybe older than this checkout, so a bench run as a program refuses
it. (Imported as a library, by the tests or moto's server, the package does not check.)"""

import os
import sys
from pathlib import Path

import filmstrip

_CHECKOUT = Path(__file__).resolve().parents[1] / "src" / "filmstrip"
_IMPORTED = Path(filmstrip.__file__).resolve().parent
_ARGV = sys.orig_argv
_RUN = "-m" in _ARGV[:-1] and _ARGV[_ARGV.index("-m") + 1].startswith("bench.")
if _RUN and _IMPORTED != _CHECKOUT and not os.environ.get("BENCH_ANY_FILMSTRIP"):
    sys.exit(
        f"bench: this would measure the filmstrip at {_IMPORTED}, not this checkout's "
        f"{_CHECKOUT}; run from the repository root as PYTHONPATH=src:. python -m bench.<name> "
        "(BENCH_ANY_FILMSTRIP=1 measures the imported one anyway)"
    )
