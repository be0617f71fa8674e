"""Separate hosts on one machine, for the multi-host soak: each host is a network namespace
with its own address on a private bridge (in a hub namespace), its own hostname and a
private tmpfs as its disk. The root namespace gets no interface and no route into the
network, so nothing started here can reach any address but the hosts'.

Linux and root only (``ip netns``, ``unshare``, ``nsenter``). Every name starts with
``fsmh<pid>.<n>-`` (the pid of the process that made it), so a run killed before it could
clean up is cleaned by the next one (:func:`cleanup_stale`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "fsmh"
SUBNET = "10.231.0"  # private /24 inside the hub; the root namespace has no route to it
BRIDGE = "br0"
CLONE_NEWNET = 0x40000000
STAGE = "/srv"  # an empty folder outside /tmp, covered for a moment while a host boots

T = TypeVar("T")
_networks = itertools.count(1)  # this process's networks, each named apart


def unavailable() -> str | None:
    """Why separate hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip netns is unavailable ({exc})"
    return None


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip`` with ``args``; its output. Raises with ip's own message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    """The names of every network namespace ``ip netns`` knows."""
    return [line.split()[0] for line in ip("netns", "list", check=False).splitlines() if line]


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def netns_pids(name: str) -> list[int]:
    """The processes whose network namespace is ``name`` (read from /proc here: ``ip netns
    pids`` run from inside it would list itself)."""
    target = _ns_id(f"/run/netns/{name}")
    if target is None:
        return []
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _ns_id(f"/proc/{entry.name}/ns/net") == target:
            pids.append(int(entry.name))
    return pids


def kill_netns(name: str, timeout: float = 10.0) -> None:
    """SIGKILL every process in namespace ``name`` until none is left (a process may fork
    while we kill; a killed one leaves the list only once reaped, so wait for that).
    This process is spared: a thread of it may be in there (:func:`enter_netns`)."""
    deadline = time.monotonic() + timeout
    while pids := [p for p in netns_pids(name) if p != os.getpid()]:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {name} outlived SIGKILL")
        time.sleep(0.05)


def _owner(name: str) -> int | None:
    """The pid in a name made here (``fsmh<pid>-...``), or None for anyone else's."""
    if not name.startswith(PREFIX):
        return None
    head = name[len(PREFIX) :].split("-", 1)[0].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Remove what runs that are gone left: their namespaces (and every process in them,
    which takes their private mounts along) and their folders. What it removed."""
    removed = []
    for name in namespaces():
        owner = _owner(name)
        if owner is None or owner == os.getpid() or _alive(owner):
            continue
        kill_netns(name)
        ip("netns", "del", name, check=False)
        removed.append(name)
    for folder in Path(tempfile.gettempdir()).glob(f"filmstrip-{PREFIX}*-*"):
        owner = _owner(folder.name.removeprefix("filmstrip-"))
        if owner is not None and owner != os.getpid() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name``: sockets it (and threads it
    starts later) opens are there. Other threads stay where they are."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def assert_in_test_network() -> None:
    """Raise unless the calling thread is in a namespace the harness made: the root
    namespace routes everywhere (its default route leaves the machine), so every probe and
    client of the harness runs in one of its own, where only the hosts' /24 is reachable."""
    here = _ns_id("/proc/thread-self/ns/net")
    with os.scandir("/run/netns") as made:
        ours = {_ns_id(e.path) for e in made if e.name.startswith(PREFIX)}
    if here is None or here not in ours:
        raise RuntimeError("refusing to connect from outside the harness's namespaces")


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in a new thread inside namespace ``name``; its result or its error."""
    out: list[Any] = []

    def run() -> None:
        try:
            enter_netns(name)
            out.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            out.append((False, exc))

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    ok, value = out[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Network:
    """A hub namespace with a bridge, and the hosts plugged into it; ``close`` removes it
    all (also after a failure). Each host's disk is :attr:`disk`, the same path on every
    host and on a different filesystem on each (the host's private ``/tmp``)."""

    def __init__(self, *, image: list[Path] | None = None) -> None:
        # Folders every host sees as they are here (besides the code and Python).
        self.image = image or []
        self.tag = f"{PREFIX}{os.getpid()}.{next(_networks)}"
        self.hub = f"{self.tag}-hub"
        self.dir = Path(tempfile.mkdtemp(prefix=f"filmstrip-{self.tag}-"))
        self.disk = self.dir / "disk"  # on each host's own /tmp, not in this folder
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.hosts: dict[str, Host] = {}
        self._made = False

    def create(self) -> Network:
        ip("netns", "add", self.hub)
        self._made = True
        ip("-n", self.hub, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.hub, "link", "set", BRIDGE, "up")
        return self

    def host(self, name: str, *, boot: bool = True) -> Host:
        """A new host on the bridge (booted, with its disk, unless ``boot`` is False)."""
        if name in self.hosts:
            raise ValueError(f"host {name} exists")
        if len(self.hosts) >= 250:
            raise ValueError("the /24 is full")
        host = Host(self, name, f"{SUBNET}.{len(self.hosts) + 2}")
        self.hosts[name] = host
        host.plug()
        if boot:
            host.boot()
        return host

    def close(self, *, keep_logs: bool = False) -> Path | None:
        """Kill every host's processes and remove every namespace and the folder; with
        ``keep_logs``, the logs are moved out first (out of :func:`cleanup_stale`'s
        reach) and their new folder is returned."""
        errors = []
        for host in reversed(list(self.hosts.values())):
            try:
                host.destroy()
            except Exception as exc:  # go on removing the others
                errors.append(exc)
        if self._made:
            kill_netns(self.hub)
            ip("netns", "del", self.hub, check=False)
            self._made = False
        kept = None
        if keep_logs and self.logs.exists():
            kept = Path(tempfile.mkdtemp(prefix="filmstrip-multihost-logs-"))
            shutil.move(self.logs, kept / "logs")
            kept = kept / "logs"
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]
        return kept

    def __enter__(self) -> Network:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Host:
    """One host: a network namespace with ``address``, and (once booted) an init process
    holding its hostname and its private tmpfs, into which :meth:`popen` starts others."""

    def __init__(self, network: Network, name: str, address: str) -> None:
        if len(f"v-{name}") > 15:
            raise ValueError(f"host name {name!r} is too long for an interface name")
        self.network = network
        self.name = name
        self.address = address
        self.netns = f"{network.tag}-{name}"
        self.veth = f"v-{name}"  # its end on the hub's bridge
        self.init: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.boots = 0

    @property
    def disk(self) -> Path:
        """The path of this host's disk as its own processes see it."""
        return self.network.disk

    def outside(self, path: str | Path = "") -> Path:
        """``path`` on this host's disk, as this process can reach it (through the init
        process's view of the filesystem)."""
        if self.init is None:
            raise RuntimeError(f"host {self.name} is not booted")
        inside = self.disk / path
        return Path(f"/proc/{self.init.pid}/root") / inside.relative_to("/")

    def plug(self) -> None:
        """Make the namespace and its link to the bridge."""
        ip("netns", "add", self.netns)
        hub = self.network.hub
        ip("link", "add", self.veth, "netns", hub, "type", "veth", "peer", "name", "eth0",
           "netns", self.netns)  # fmt: skip
        ip("-n", hub, "link", "set", self.veth, "master", BRIDGE)
        ip("-n", hub, "link", "set", self.veth, "up")
        ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("-n", self.netns, "link", "set", "lo", "up")

    def boot(self, timeout: float = 10.0) -> None:
        """Start the init process: a new mount and UTS namespace with a fresh tmpfs on
        ``/tmp`` (holding :attr:`disk`) and the host's name. It runs until :meth:`kill`."""
        # A tmpfs on /tmp, its disk a folder there: whatever a server leaves in its
        # temp dir (SeaweedFS's sockets, which take no path) is the host's too, and goes
        # with it. The code and the interpreter are the machine image: if they live under
        # /tmp, they are bound aside first (on a tmpfs over /srv, in this namespace only)
        # and moved back in on top of the new /tmp.
        image = image_paths_in("/tmp", self.network.image)
        steps = []
        if image:
            steps.append(f"mount -t tmpfs stage {STAGE}")
            for i, path in enumerate(image):
                steps.append(f"mkdir {STAGE}/{i} && mount --bind {path} {STAGE}/{i}")
        steps.append(f"mount -t tmpfs -o mode=1777 filmstrip-{self.name} /tmp")
        for i, path in enumerate(image):
            steps.append(f"mkdir -p {path} && mount --move {STAGE}/{i} {path}")
        if image:
            steps.append(f"umount {STAGE}")
        steps += [f"mkdir -m 0755 -p {self.disk}", f"hostname {self.name}", "exec sleep infinity"]
        script = " && ".join(steps)
        log = self.log_file("init")
        self.init = subprocess.Popen(
            ["ip", "netns", "exec", self.netns,
             "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        # ip, unshare and sh each exec the next: once the pid runs sleep, all is in place.
        while _comm(self.init.pid) != "sleep":
            if self.init.poll() is not None or time.monotonic() > deadline:
                self.init.kill()
                self.init.wait()
                self.init = None
                raise RuntimeError(f"host {self.name} did not boot: {self.read_log('init')}")
            time.sleep(0.01)
        self.boots += 1

    def popen(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        log: str | None = None,
        cpus: Collection[int] | None = None,
        cwd: Path = ROOT,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host (its network, disk and name), stdout and stderr into
        the run's log ``log`` (else discarded), pinned to ``cpus`` if given."""
        if self.init is None or self.init.poll() is not None:
            raise RuntimeError(f"host {self.name} is not up")
        out: IO[bytes] | int = self.log_file(log) if log else subprocess.DEVNULL
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(
            ["nsenter", f"--target={self.init.pid}", "--mount", "--uts", "--net",
             f"--wd={cwd}", "--", *argv],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, preexec_fn=pin,
        )  # fmt: skip
        if not isinstance(out, int):
            out.close()
        self.procs = [p for p in self.procs if p.poll() is None] + [proc]
        # Back once it is on the host: a kill right after must find it in the namespace.
        target, deadline = _ns_id(f"/run/netns/{self.netns}"), time.monotonic() + 10
        while _ns_id(f"/proc/{proc.pid}/ns/net") != target and proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not reach host {self.name}")
            time.sleep(0.001)
        return proc

    def run(self, argv: list[str], *, timeout: float = 60, **kw: Any) -> str:
        """Run ``argv`` on this host to its end; its stdout. Raises on a non-zero exit."""
        if self.init is None:
            raise RuntimeError(f"host {self.name} is not up")
        done = subprocess.run(
            ["nsenter", f"--target={self.init.pid}", "--mount", "--uts", "--net",
             f"--wd={ROOT}", "--", *argv],
            capture_output=True, text=True, timeout=timeout, **kw,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} on {self.name} exited {done.returncode}: "
                               f"{done.stderr.strip()[-2000:]}")  # fmt: skip
        return done.stdout

    def kill(self) -> None:
        """SIGKILL every process of the host, its init too: the host is down and its disk
        is gone (the tmpfs lived in its mount namespace)."""
        kill_netns(self.netns)
        for proc in [*self.procs, *([self.init] if self.init else [])]:
            proc.kill()  # one of ours that was not in the namespace (yet) goes too
            proc.wait()
        self.procs = []
        self.init = None

    def restart(self) -> None:
        """:meth:`kill`, then :meth:`boot` with an empty disk, as a replaced machine."""
        self.kill()
        self.boot()

    def link(self, up: bool) -> None:
        """Cut (or restore) the host's cable at the bridge: packets are dropped both ways,
        so its connections hang until they time out or the link returns."""
        ip("-n", self.network.hub, "link", "set", self.veth, "up" if up else "down")

    def destroy(self) -> None:
        """Kill the host and remove its namespace (its veth goes with it)."""
        if self.netns in namespaces():
            self.kill()
            ip("netns", "del", self.netns, check=False)

    def log_file(self, name: str) -> IO[bytes]:
        return (self.network.logs / f"{self.name}.{name}.log").open("ab")

    def read_log(self, name: str) -> str:
        path = self.network.logs / f"{self.name}.{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def image_paths_in(folder: str, extra: list[Path]) -> list[str]:
    """The folders under ``folder`` that every host needs as they are here: the code and
    the Python installation (a checkout or a venv may live in /tmp), and ``extra``."""
    wanted = {ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent}
    wanted.update(extra)
    inside = sorted(str(p.resolve()) for p in wanted if p.resolve().is_relative_to(folder))
    # A folder inside another one bound already comes along with it.
    return [p for p in inside if not any(p != q and p.startswith(q + "/") for q in inside)]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
