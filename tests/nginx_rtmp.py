"""A real RTMP server for the tests: nginx with Debian's RTMP module, recording what is published.

``NginxRtmp`` runs nginx in the foreground as one process on 127.0.0.1:PORT with an ``live``
application that records every stream it is sent to ``<folder>/<stream key>.flv`` (with
``unique=True``: one file per publishing, ``<key>-<time>.flv``), so a test reads back exactly what
the server received. It waits, bounded, until the port accepts connections; ``timeout`` ends it
after ``max_seconds`` even if a test forgets it. Startable again on the same port.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Optional

from live_media import _accepts, free_port, stop_server
from system_tools import need_binary, need_file

PACKAGES = "nginx-core libnginx-mod-rtmp"
MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
_CONFIG = """load_module {module};
daemon off;
master_process off;
error_log {folder}/error.log info;
pid {folder}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record all;
            record_path {folder};
            record_unique {unique};
        }}
    }}
}}
"""


class NginxRtmp:
    """nginx serving rtmp://127.0.0.1:PORT/live/KEY and recording each stream into ``folder``."""

    def __init__(self, folder: Path, port: Optional[int] = None, max_seconds: float = 60.0, unique: bool = False) -> None:
        self.nginx = need_binary("nginx", PACKAGES)
        need_file(MODULE, PACKAGES)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.max_seconds = max_seconds
        self.url = f"rtmp://127.0.0.1:{self.port}/live"
        self.config = folder / "nginx.conf"
        self.config.write_text(_CONFIG.format(module=MODULE, folder=folder, port=self.port, unique="on" if unique else "off"))
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 15.0) -> "NginxRtmp":
        if self._proc is not None:
            raise RuntimeError("nginx is running already")
        cmd = ["timeout", str(self.max_seconds), self.nginx, "-p", str(self.folder), "-e", str(self.folder / "error.log"), "-c", str(self.config)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self.stop()
                raise RuntimeError(f"nginx did not come up on port {self.port} within {timeout:g} s: {err.strip()}")
            time.sleep(0.05)
        return self

    def stop(self) -> str:
        """End nginx (idempotent; ``timeout`` passes the TERM on) and return what it wrote on stderr."""
        proc, self._proc = self._proc, None
        return stop_server(proc, terminate=True)

    def recorded(self, key: str) -> list[Path]:
        """The files the server recorded for stream ``key``, oldest first."""
        return sorted(self.folder.glob(f"{key}*.flv"), key=lambda p: p.stat().st_mtime)

    def __enter__(self) -> "NginxRtmp":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
