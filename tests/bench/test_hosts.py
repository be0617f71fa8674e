"""The multi-host harness's hosts: each its own address, name and disk; reachable only
from namespaces the harness made; cut, killed and removed as the soak needs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.hosts import (
    PREFIX,
    SUBNET,
    Host,
    Network,
    assert_in_test_network,
    cleanup_stale,
    in_netns,
    ip,
    namespaces,
)
from bench.hosts import unavailable as hosts_unavailable

ROOT = Path(__file__).resolve().parents[2]
why = hosts_unavailable()
pytestmark = pytest.mark.skipif(why is not None, reason=f"separate hosts: {why}")


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with Network() as net:
        net.host("a")
        net.host("b")
        net.host("clients", boot=False)
        yield net


def _serve(host: Host, port: int) -> subprocess.Popen[bytes]:
    """A TCP server on ``host`` that answers each connection with its hostname."""
    code = (
        "import socket\n"
        f"s = socket.create_server(({host.address!r}, {port}))\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()\n"
    )
    return host.popen([sys.executable, "-c", code])


def _ask(address: str, port: int, timeout: float = 2.0) -> str:
    """What the server at ``address`` says, from this thread's namespace."""
    assert_in_test_network()
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((address, port), timeout=timeout) as s:
                return s.recv(100).decode()
        except ConnectionRefusedError:  # not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_each_host_has_its_own_name_and_disk(network: Network) -> None:
    a, b = network.hosts["a"], network.hosts["b"]
    assert a.run(["hostname"]).strip() == "a"
    assert b.run(["hostname"]).strip() == "b"
    a.run(["sh", "-c", f"echo mine > {a.disk}/note"])
    assert a.run(["cat", f"{a.disk}/note"]).strip() == "mine"
    assert a.outside("note").read_text().strip() == "mine"
    # The same path on another host, and here, is another filesystem without the file.
    assert b.run(["ls", "-A", str(b.disk)]).strip() == ""
    assert not (a.disk / "note").exists()
    # /tmp is the host's own too (what servers leave in their temp dir stays there).
    a.run(["sh", "-c", "echo x > /tmp/filmstrip-hosts-test"])
    assert not Path("/tmp/filmstrip-hosts-test").exists()
    listing = b.run(["ls", "/tmp"]).split()
    assert network.disk.parent.name in listing and "filmstrip-hosts-test" not in listing


def test_hosts_see_the_code_even_where_their_tmp_hides_it(tmp_path: Path) -> None:
    # The code is the machine image: the host's private /tmp must not hide a checkout or
    # venv that lives there (CI may clone into /tmp), or it would run whatever else is
    # installed. This checkout, and a folder under /tmp standing for one.
    (tmp_path / "image.txt").write_text("the image")
    assert str(tmp_path).startswith("/tmp/")
    with Network(image=[tmp_path]) as net:
        host = net.host("e")
        assert host.run(["cat", str(tmp_path / "image.txt")]) == "the image"
        found = host.run(
            [sys.executable, "-c", "import filmstrip, bench.hosts; print(filmstrip.__file__)"],
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        )
        assert Path(found.strip()) == ROOT / "src" / "filmstrip" / "__init__.py"


def test_hosts_reach_each_other_and_nothing_else(network: Network) -> None:
    a, b, clients = network.hosts["a"], network.hosts["b"], network.hosts["clients"]
    server = _serve(b, 7000)
    try:
        assert in_netns(clients.netns, lambda: _ask(b.address, 7000)) == "b"
        # A host's only route is the harness's /24: any other address is unreachable.
        routes = a.run(["ip", "-4", "route"]).strip().splitlines()
        assert len(routes) == 1 and routes[0].startswith(f"{SUBNET}.0/24 dev eth0 "), routes
    finally:
        server.kill()
        server.wait()
    # The root namespace gets no interface and no address in the harness's network.
    assert SUBNET not in ip("-o", "addr")
    assert not any(f"v-{name}" in ip("-o", "link") for name in network.hosts)
    # And the harness refuses to probe from it (its default route leaves the machine).
    with pytest.raises(RuntimeError, match="outside the harness's namespaces"):
        assert_in_test_network()


def test_a_cut_link_hangs_until_it_is_restored(network: Network) -> None:
    b, clients = network.hosts["b"], network.hosts["clients"]
    server = _serve(b, 7001)
    try:
        assert in_netns(clients.netns, lambda: _ask(b.address, 7001)) == "b"
        b.link(False)
        try:
            with pytest.raises(TimeoutError):
                in_netns(clients.netns, lambda: _ask(b.address, 7001, timeout=1.0))
        finally:
            b.link(True)
        assert in_netns(clients.netns, lambda: _ask(b.address, 7001)) == "b"
    finally:
        server.kill()
        server.wait()


def test_a_killed_host_loses_every_process_and_its_disk(network: Network) -> None:
    a = network.hosts["a"]
    sleepers = [a.popen(["sleep", "300"]) for _ in range(2)]
    # And one that a process of the host started, which the harness never saw.
    a.popen(["sh", "-c", f"sleep 300 & echo $! > {a.disk}/child; wait"])
    while not a.outside("child").exists() or not a.outside("child").read_text().strip():
        time.sleep(0.01)
    child = int(a.outside("child").read_text())
    a.kill()
    assert [p.poll() for p in sleepers] == [-signal.SIGKILL] * 2
    assert _gone(child)
    assert a.init is None
    a.boot()
    assert a.run(["ls", "-A", str(a.disk)]).strip() == ""
    assert a.run(["hostname"]).strip() == "a"


def test_close_removes_every_namespace_process_and_folder() -> None:
    net = Network().create()
    host = net.host("c")
    sleeper = host.popen(["sleep", "300"])
    folder = net.dir
    net.close()
    assert sleeper.wait(5) == -signal.SIGKILL
    assert not [n for n in namespaces() if n.startswith(net.tag)]
    assert not folder.exists()


def test_what_a_killed_run_left_is_removed_by_the_next() -> None:
    # A run killed before its cleanup leaves namespaces, a process in one and a folder;
    # the next run (any other process) removes them at its start.
    code = (
        "import sys, time\n"
        "from bench.hosts import Network\n"
        "net = Network().create(); h = net.host('d'); h.popen(['sleep', '300'])\n"
        "print(net.tag, net.dir, h.init.pid, flush=True); time.sleep(300)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
    )  # fmt: skip
    assert child.stdout is not None
    tag, folder, init = child.stdout.readline().split()
    child.kill()
    child.wait()
    assert [n for n in namespaces() if n.startswith(tag)]
    assert Path(f"/proc/{init}").exists()  # the host lives on without its run

    removed = cleanup_stale()
    assert f"{tag}-hub" in removed and f"{tag}-d" in removed and folder in removed
    assert not [n for n in namespaces() if n.startswith(tag)]
    assert not Path(folder).exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{init}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # killed; the machine's init reaps it
    assert not Path(f"/proc/{init}").exists()
    # Nobody else's namespaces: only names that carry a dead run's pid are touched.
    assert all(n.startswith(PREFIX) for n in removed if "/" not in n)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for its new parent counts)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.01)
    return False
