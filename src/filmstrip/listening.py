"""Serving HTTP on a configured address: one that cannot be bound is a StartupError that
names the setting to change, not a traceback."""

from __future__ import annotations

import errno
import socket

from aiohttp import web

from filmstrip.errors import StartupError


async def listen(runner: web.AppRunner, host: str, port: int, *, settings: str) -> None:
    """Serve ``runner`` on ``host:port``, set by ``FILMSTRIP_<settings>_HOST`` and ``_PORT``."""
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        raise cannot_listen(exc, host, port, settings=settings) from exc


def cannot_listen(exc: OSError, host: str, port: int, *, settings: str) -> StartupError:
    """Why ``host:port`` (``FILMSTRIP_<settings>_HOST`` and ``_PORT``) cannot be listened
    on, and the setting to change."""
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
    return StartupError(cause, fix=fix)


def check_free(host: str, port: int, *, settings: str) -> None:
    """Raise the :class:`StartupError` that :func:`listen` would for ``host:port`` if it
    cannot be bound right now: each address ``host`` names is bound (as aiohttp binds it,
    SO_REUSEADDR) and let go at once. Port 0 (none, or any) is always free."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        missing = OSError(errno.EADDRNOTAVAIL, str(exc))
        raise cannot_listen(missing, host, port, settings=settings) from exc
    for family, kind, proto, _name, address in dict.fromkeys(infos):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise cannot_listen(exc, host, port, settings=settings) from exc
