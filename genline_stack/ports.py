"""Ports and processes of the embedded stack and the fleet: servers listen on ports handed out
below the kernel's ephemeral range, once per process, and a child process is waited for until it
listens and stopped with a grace period."""

import contextlib
import functools
import random
import socket
import subprocess
import threading
import time
from collections.abc import Set as AbstractSet
from pathlib import Path

# `weed mini` serves each component's gRPC on its HTTP port + 10000, and its admin worker
# dials that port whatever it is told, so every HTTP port needs that neighbour free too.
SEAWEED_GRPC_OFFSET = 10000

# Servers listen on ports chosen below the kernel's ephemeral range. A port the kernel hands
# out (bind to port 0) lies inside it, and until its server binds it, it can become the
# local port of any outgoing connection: the services open dozens while they start (to
# PostgreSQL, the broker, S3), and the server whose port was taken then fails to start.
LISTEN_PORT_FLOOR = 10000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ports = random.Random()  # its own generator: a test that seeds `random` must not repeat ports
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()
# (this process's share, how many): processes that start servers side by side (the suite's
# workers) each hand out only ports of their own share, so no two pick the same free port
# between one's check and its server's bind. A port and its +10000 neighbour share a share.
_share = (0, 1)


def take_share_of_ports(index: int, count: int) -> None:
    """From now on hand out only the `index`th of `count` shares of the ports."""
    global _share
    _share = (index, count)


def in_share(port: int) -> bool:
    index, count = _share
    return (port % SEAWEED_GRPC_OFFSET) * count // SEAWEED_GRPC_OFFSET == index


@functools.cache
def ephemeral_floor() -> int:
    """The lowest port the kernel picks for outgoing connections (Linux's default when unknown)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    return 32768


def free_port(below: int | None = None) -> int:
    """A port free to listen on, below the ephemeral range (and below `below`), that this
    process has not handed out before; where no such range exists, one the kernel picks."""
    ceiling = min(ephemeral_floor(), below or 65536)
    with _handed_out_lock:
        for _ in range(2000 if ceiling - LISTEN_PORT_FLOOR >= 1000 else 0):
            port = _ports.randrange(LISTEN_PORT_FLOOR, ceiling)
            if port not in _handed_out and in_share(port) and port_is_free(port):
                _handed_out.add(port)
                return port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            bound: int = s.getsockname()[1]
            return bound


def port_is_free(port: int) -> bool:
    """Free to listen on, as a server would (SO_REUSEADDR: connections of a stopped server
    that linger in TIME_WAIT do not keep its port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports_with_grpc_neighbours(count: int, taken: AbstractSet[int] = frozenset()) -> list[int]:
    """`count` free ports whose +10000 neighbours are free too, no two of them sharing a port."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port(below=ephemeral_floor() - SEAWEED_GRPC_OFFSET)  # the neighbour below it too
        pair = {port, port + SEAWEED_GRPC_OFFSET}
        used = set(taken) | set(chosen) | {p + SEAWEED_GRPC_OFFSET for p in chosen}
        if port + SEAWEED_GRPC_OFFSET < 65536 and not pair & used and port_is_free(port + SEAWEED_GRPC_OFFSET):
            chosen.append(port)
    return chosen


def remembered_s3_port(record: Path) -> int:
    """The S3 port of the last start when it is still free, so that links signed before a
    restart keep working after it (a presigned URL names host and port)."""
    with contextlib.suppress(OSError, ValueError):
        port = int(record.read_text())
        if port_is_free(port) and port_is_free(port + SEAWEED_GRPC_OFFSET):
            return port
    [port] = free_ports_with_grpc_neighbours(1)
    record.write_text(str(port))
    return port


def wait_for_port(port: int, timeout_s: float, *, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{program_of(process)} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def program_of(process: subprocess.Popen[bytes]) -> str:
    """The program a process runs, as its command line names it."""
    args = process.args
    return str(args[0] if isinstance(args, list | tuple) else args)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
