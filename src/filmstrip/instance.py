"""Names for running processes that are unique across hosts.

Host name and pid alone are not: containers commonly run every process as pid 1, and
replicas of one image may share a host name. Two workers under one consumer name would
share a pending list (one leaving the group drops the other's entries), and two bus
processes under one id would share a presence record. A random part keeps them apart.
"""

from __future__ import annotations

import os
import secrets
import socket


def instance_name(role: str) -> str:
    """``<role>-<host>-<pid>-<8 hex>``: readable (host and pid) and unique (the random part)."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
