"""The test harness's free_port: a port it hands out is free and not handed out again."""

import socket

from backbone.testing import free_port


def test_ports_asked_for_before_their_servers_start_are_all_different() -> None:
    # The shop fixture asks for a port per process, then starts them all: a probe alone
    # would say "free" for the same port twice, and the second server could not bind.
    ports = [free_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)


def test_a_port_handed_out_is_one_nothing_listens_on() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
