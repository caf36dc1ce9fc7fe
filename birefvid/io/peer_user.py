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
_ESTABLISHED = "01"


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


def peer_uid(client: tuple[str, int], server_port: int) -> Optional[int]:
    """The uid owning the client end (``client``: its address and port) of a connection to ``server_port`` on
    this machine, or None where it cannot be told (not Linux, not found)."""
    try:
        want = (_plain(client[0]), int(client[1]))
    except (ValueError, IndexError):
        return None
    needle = f":{want[1]:04X} "  # the client's port ends its local address: most lines are passed by unparsed
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)  # the heading
                for line in f:
                    if needle not in line:
                        continue
                    fields = line.split()
                    if len(fields) < 8 or fields[3] != _ESTABLISHED:
                        continue
                    try:
                        if _address(fields[1]) == want and _address(fields[2])[1] == server_port:
                            return int(fields[7])
                    except ValueError:
                        continue
        except OSError:
            continue
    return None


def is_this_user(client: tuple[str, int], server_port: int) -> bool:
    """True unless the client end of a loopback connection is found to be another user's (root counts as this user)."""
    uid = peer_uid(client, server_port)
    return uid is None or not hasattr(os, "getuid") or uid in (os.getuid(), 0)
