"""axe-core, the accessibility rules engine, in the browser tests: installed from npm once
into the user's cache (``.ci/install-browser`` does it first on CI) and run in the page."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

AXE_VERSION = "4.14.1"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "filmstrip"
    / f"axe-core-{AXE_VERSION}"
)
SCRIPT = CACHE / "node_modules" / "axe-core" / "axe.min.js"
# What a person meets: serious and critical findings fail a test; the rest are advice.
FAILING = ("serious", "critical")


def axe_source() -> str | None:
    """axe.min.js, installed with npm into the cache when it is not there yet (None, said
    on stdout, without npm)."""
    if not SCRIPT.exists():
        npm = shutil.which("npm")
        if npm is None:
            print("axe-core: npm is not installed, accessibility checks are not run")
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent",
             f"axe-core@{AXE_VERSION}"],
            check=True,
            timeout=300,
        )  # fmt: skip
    return SCRIPT.read_text()


def axe_violations(page: Any, source: str) -> list[str]:
    """The serious and critical violations axe finds in the page as it is now, one line
    each (rule, impact, the first nodes' selectors)."""
    # Evaluated over the DevTools protocol, which the page's CSP does not govern (a
    # <script> tag would be refused, as it should be).
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    result = page.evaluate(
        "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
        ".map(v => ({ id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in result
        if v["impact"] in FAILING
    ]
