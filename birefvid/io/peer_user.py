"""Which user of this machine holds the other end of a loopback TCP connection (Linux: ``/proc/net/tcp``).

The live preview lets "this machine" (a loopback client) watch without the token and switch the
effect. On a machine shared by several users, that let any of them turn another's background blur
off from a shell (``curl -X POST http://127.0.0.1:8080/effect``) and watch the room. Linux lists the
owner of each TCP socket, so the preview can tell its own user (and root) from the others, who neither
switch nor, on a preview bound to loopback (which has no token), watch; where that cannot be read (macOS, Windows, a hidden ``/proc``), every loopback client is this machine, as before.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Optional

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _address(field: str) -> tuple[str, int]:
    """(ip, port) of a ``/proc/net/tcp`` address field: the ip in hex, in 32-bit words of host order, then ``:PORT``."""
    ip_hex, _, port_hex = field.partition(":")
    raw = bytes.fromhex(ip_hex)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if socket.htonl(1) != 1 else raw
    ip = ipaddress.ip_address(words)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip), int(port_hex, 16)


def _plain(ip: str) -> str:
    parsed = ipaddress.ip_address(ip.split("%", 1)[0])
    return str(getattr(parsed, "ipv4_mapped", None) or parsed)


# a loopback connection whose client end is closed (a time-wait or orphaned socket, listed as uid 0 without an inode)
# or gone while the preview's own end is still listed: its owner cannot be read, and is not taken for this user
CLOSED_PEER = -1


def _rows(port: int) -> Optional[list[list[str]]]:
    """The ``/proc/net/tcp`` and ``tcp6`` rows naming ``port`` in an address, or None where neither can be read."""
    needle = f":{port:04X} "  # a port ends each address: most lines are passed by unparsed
    rows: Optional[list[list[str]]] = None
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)  # the heading
                found = [line.split() for line in f if needle in line]
        except OSError:
            continue
        rows = (rows or []) + [fields for fields in found if len(fields) >= 10]
    return rows


def _owner(rows: list[list[str]], client: tuple[str, int], server_port: int) -> Optional[int]:
    """The uid of the client end among ``rows``, ``CLOSED_PEER`` when that end is closed or missing while the
    server's end is listed, None when the tables do not list this connection at all."""
    closed = server_end = False
    for fields in rows:
        try:
            local, remote = _address(fields[1]), _address(fields[2])
        except ValueError:
            continue
        live = fields[9] != "0"  # a closed socket keeps no inode, and a time-wait one shows uid 0 (root's)
        if local == client and remote[1] == server_port:
            if live:
                return int(fields[7])
            closed = True
        elif remote == client and local[1] == server_port and live:
            server_end = True
    return CLOSED_PEER if closed or server_end else None


def peer_uid(client: tuple[str, int], server_port: int) -> Optional[int]:
    """The uid owning the client end (``client``: its address and port) of a connection to ``server_port`` on
    this machine, ``CLOSED_PEER`` when that end is closed (a client that sent its request and hung up, in any
    state), or None where it cannot be told (not Linux, tables hidden, or not listing this connection)."""
    try:
        want = (_plain(client[0]), int(client[1]))
    except (ValueError, IndexError):
        return None
    for _ in range(2):  # a table read while connections come and go can miss a line: look twice before giving up
        rows = _rows(want[1])
        if rows is None:
            return None
        owner = _owner(rows, want, server_port)
        if owner is not None and owner != CLOSED_PEER:
            return owner
    return owner


def is_this_user(client: tuple[str, int], server_port: int) -> bool:
    """True unless the client end of a loopback connection is found to be another user's, or closed (``CLOSED_PEER``:
    its owner no longer shows); root counts as this user."""
    uid = peer_uid(client, server_port)
    return uid is None or not hasattr(os, "getuid") or uid in (os.getuid(), 0)
