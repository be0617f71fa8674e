"""Serving HTTP on a configured address: one that cannot be bound is a StartupError that
names the setting to change, not a traceback."""

from __future__ import annotations

import errno

from aiohttp import web

from filmstrip.errors import StartupError


async def listen(runner: web.AppRunner, host: str, port: int, *, settings: str) -> None:
    """Serve ``runner`` on ``host:port``, set by ``FILMSTRIP_<settings>_HOST`` and ``_PORT``."""
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        host_var, port_var = f"FILMSTRIP_{settings}_HOST", f"FILMSTRIP_{settings}_PORT"
        fix = f"set {host_var} to an address of this machine (0.0.0.0: all of them)"
        if exc.errno == errno.EADDRINUSE:
            cause = f"port {port} on {host} is in use"
            fix = f"set {port_var} to a free port or stop what listens there"
        elif exc.errno == errno.EACCES:
            cause, fix = f"port {port} needs privileges", f"set {port_var} to 1024 or above"
        elif exc.errno == errno.EADDRNOTAVAIL:
            cause = f"{host} is not an address of this machine"
        else:
            cause = f"cannot listen on {host}:{port} ({exc})"
        raise StartupError(cause, fix=fix) from exc
