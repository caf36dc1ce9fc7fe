"""peer_user: who holds the client end of a loopback connection to the preview, read from Linux's /proc/net/tcp."""

from __future__ import annotations

import os
import socket
import time

import pytest

from birefvid.io.peer_user import CLOSED_PEER, is_this_user, peer_uid
from system_tools import has_ipv6_loopback

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp") or not hasattr(os, "getuid"),
                                reason="telling users apart reads Linux's /proc/net/tcp")  # fmt: skip


@pytest.mark.parametrize("listen, connect", [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")])
def test_a_client_that_half_closes_or_closes_is_not_taken_for_this_user(listen: str, connect: str) -> None:
    """Only a connection in state ESTABLISHED was looked up: another user who sent a request and then shut their
    end (shutdown(SHUT_WR): FIN_WAIT2) or closed it was not found, and an unknown client counted as this user,
    so they switched another's effect off (a closed end also shows uid 0, root's)."""
    if ":" in listen and not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    with socket.socket(family) as server:
        if family == socket.AF_INET6:
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # "::" takes IPv4 clients as ::ffff:a.b.c.d
        server.bind((listen, 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection((connect, port), timeout=5)
        accepted, seen_as = server.accept()  # seen_as: the client's address as the preview's handler gets it
        with accepted:
            assert peer_uid(seen_as, port) == os.getuid() and is_this_user(seen_as, port)
            client.shutdown(socket.SHUT_WR)  # the request sent, the reply still read: the owner still shows
            time.sleep(0.05)
            assert peer_uid(seen_as, port) == os.getuid() and is_this_user(seen_as, port)
            client.close()  # hung up: a time-wait or orphaned socket, listed without an owner
            time.sleep(0.05)
            assert peer_uid(seen_as, port) == CLOSED_PEER and not is_this_user(seen_as, port)


def test_a_connection_the_tables_do_not_list_cannot_be_told() -> None:
    """A client on no connection of this machine (tables that list nothing of it: WSL 1, another network's
    namespace) is not called closed: the previous rule, every loopback client is this machine, holds there."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert peer_uid(("127.0.0.1", port), port + 1 if port < 65535 else port - 1) is None
    assert is_this_user(("127.0.0.1", port), 1)
