"""Loopback port helpers."""

import socket
from contextlib import ExitStack

from kgen.kafka.config import HOST


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free on 127.0.0.1 right now.

    All sockets stay bound until every port is picked so the kernel cannot hand out one twice.
    Another process may still take a port before the broker binds it; callers retry then.
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = HOST) -> bool:
    """True when a broker could bind host:port now (as Java does, with SO_REUSEADDR, so the
    TIME_WAIT leftovers of a stopped broker's connections do not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
