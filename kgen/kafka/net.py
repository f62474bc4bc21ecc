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
