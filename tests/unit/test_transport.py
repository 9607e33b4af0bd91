"""``lbstack.transport.no_delay``: Nagle off on a connected paramiko session's TCP socket, and
nothing else touched."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from lbstack.transport import no_delay


def host_with(sock):
    transport = SimpleNamespace(sock=sock)
    client = SimpleNamespace(get_transport=lambda: transport)
    return SimpleNamespace(connector=SimpleNamespace(client=client))


@pytest.fixture
def tcp_socket():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    yield client
    client.close()
    server.close()


def test_turns_nagle_off_on_a_tcp_connection(tcp_socket):
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    assert no_delay(host_with(tcp_socket)) is True
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_leaves_other_connections_alone():
    a, b = socket.socketpair()
    try:
        assert no_delay(host_with(a)) is False  # not TCP (a ProxyCommand's pipe, say)
    finally:
        a.close()
        b.close()
    assert no_delay(host_with(object())) is False  # a paramiko Channel (jump host)
    assert no_delay(SimpleNamespace(connector=SimpleNamespace())) is False  # @local: no ssh client
    assert no_delay(SimpleNamespace(connector=SimpleNamespace(client=None))) is False  # not connected
    assert no_delay(SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: None)))) is False
