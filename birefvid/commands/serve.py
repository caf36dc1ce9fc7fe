"""``birefvid serve``: a local HTTP server for background removal (as ``rembg s``): the model loaded once, each
picture POSTed to ``/v1/remove`` cut out as ``birefvid image`` cuts it out."""

from __future__ import annotations

import argparse
import logging
import sys

from .options import add_model_options

HELP = "an HTTP server that cuts out pictures POSTed to /v1/remove, the model loaded once (as rembg s)"
STOP_WAIT_S = 30  # on Ctrl-C or SIGTERM, how long the pictures already being cut out get to finish


def register(parser: argparse.ArgumentParser) -> None:
    from ..serving.api_keys import API_KEY_ENV
    from ..serving.limits import KEEP_ALIVE_S, MAX_BYTES, MAX_CONNECTIONS, MAX_PIXELS, MIN_UPLOAD_RATE, QUEUE, READ_TIMEOUT_S, UPLOADS

    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only; "
                        "to expose it, put a reverse proxy in front for HTTPS, and give it an API key)")  # fmt: skip
    parser.add_argument("--api-key-file", metavar="PATH", help="a file whose first line is the key every request but /health "
                        f"must show (Authorization: Bearer KEY or X-API-Key: KEY), else 401; or set ${API_KEY_ENV}. "
                        "Never the key itself here, where ps shows it (default: no key)")  # fmt: skip
    parser.add_argument("--port", type=int, default=7000, help="port (default 7000, as rembg's; 0: any free port, printed)")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="N", help=f"largest request body, refused with 413 "
                        f"before it is read, or as soon as a chunked one passes it (default {MAX_BYTES:,}: 25 MiB)")  # fmt: skip
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N", help="largest picture in pixels, refused with 413 "
                        f"from its header, before it is decoded (default {MAX_PIXELS:,})")  # fmt: skip
    parser.add_argument("--queue", type=int, default=QUEUE, metavar="N", help=f"pictures, received whole, that wait while one is "
                        f"cut out; more get 503 with Retry-After (default {QUEUE})")  # fmt: skip
    parser.add_argument("--uploads", type=int, default=UPLOADS, metavar="N", help="request bodies received at once (slow "
                        f"uploads wait here, not in the queue); more get 503 with Retry-After (default {UPLOADS})")  # fmt: skip
    parser.add_argument("--read-timeout", type=float, default=READ_TIMEOUT_S, metavar="S", help="seconds a client may send "
                        "nothing mid-request, or take over its request line and headers (it then gets 408 and is dropped), or "
                        f"read nothing of a reply (which is then cut off) (default {READ_TIMEOUT_S:g})")  # fmt: skip
    parser.add_argument("--max-connections", type=int, default=None, metavar="N", help="connections open at once, a thread "
                        "each; past it a connection gets 503 with Retry-After (GET /health is still answered) "
                        f"(default {MAX_CONNECTIONS}; ulimit -n is raised to fit where it can)")  # fmt: skip
    parser.add_argument("--keep-alive", type=float, default=KEEP_ALIVE_S, metavar="S", help="seconds a connection may sit idle "
                        f"between requests before it is closed, so idle ones do not fill --max-connections (default {KEEP_ALIVE_S:g})")  # fmt: skip
    parser.add_argument("--min-upload-rate", type=float, default=MIN_UPLOAD_RATE, metavar="BYTES_PER_S", help="slowest a body may "
                        "come, after a grace of --read-timeout: one that falls behind gets 408 and is dropped, so a client "
                        f"sending a byte now and then cannot hold an upload place (default {MIN_UPLOAD_RATE:,}: 50 KiB/s; 0: no minimum)")  # fmt: skip
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import threading
    import time

    from ..errors import ConfigError
    from ..serving.api_keys import API_KEY_ENV, api_key
    from ..serving.connections import connection_cap
    from ..serving.server import CutoutServer
    from ..serving.service import CutoutService
    from .options import inference_spec, model_spec

    for name, low in (("port", 0), ("max_bytes", 1), ("max_pixels", 64), ("queue", 0), ("uploads", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be {low} or more, got {getattr(args, name)}")
    if not 0 < args.read_timeout < float("inf"):  # nan fails this too
        raise ConfigError(f"--read-timeout must be a number of seconds above 0, got {args.read_timeout:g}")
    if not 0 <= args.min_upload_rate < float("inf"):
        raise ConfigError(f"--min-upload-rate must be a number of bytes per second, 0 or more, got {args.min_upload_rate:g}")
    if not 0 < args.keep_alive < float("inf"):
        raise ConfigError(f"--keep-alive must be a number of seconds above 0, got {args.keep_alive:g}")
    if args.max_connections is not None and args.max_connections < 1:
        raise ConfigError(f"--max-connections must be 1 or more, got {args.max_connections}")
    max_connections = connection_cap(args.max_connections)
    if args.port > 65535:
        raise ConfigError(f"--port must be 0 to 65535, got {args.port}")
    key = api_key(args.api_key_file)
    if key is None and not _loopback(args.host):
        logging.getLogger(__name__).warning("serving %s with no API key (--api-key-file or $%s): anyone who reaches it can "
                                            "use this machine's GPU or CPU", args.host, API_KEY_ENV)  # fmt: skip
    spec, inference = model_spec(args), inference_spec(args)
    spec.validate()
    inference.validate()
    server = CutoutServer(args.host, args.port, None, max_bytes=args.max_bytes, uploads=args.uploads,
                          read_timeout=args.read_timeout, min_upload_rate=args.min_upload_rate, api_key=key,
                          max_connections=max_connections, keep_alive=args.keep_alive)  # a port in use fails before the model loads
    try:
        import torch

        from ..runtime.file_job import segmenter_for
        from ..runtime.load_failure import loading_model

        with loading_model():  # torch's own error as it loads is one line, exit 2, as in process
            segmenter = segmenter_for(spec, inference)
        segmenter.predict(torch.zeros((1, 3, 64, 64), dtype=torch.uint8), frame_size=False)  # a first export now, not in a request
    except BaseException:
        server.server_close()
        raise
    server.service = CutoutService(args, segmenter, queue=args.queue, max_pixels=args.max_pixels)
    service = server.service
    worker = threading.Thread(target=server.serve_forever, name="birefvid-serve", daemon=True)
    worker.start()
    with_key = " with the API key" if key is not None else ""
    try:  # a start line that cannot be written (a full disk, `>&-`) is one error line: the server stops unannounced
        print(f"birefvid: serving {segmenter.name} at {server.url()} (POST a picture{with_key}; GET /health); Ctrl-C stops", flush=True)
    except BaseException:
        server.shutdown()
        server.server_close()
        raise
    try:
        while worker.is_alive():
            worker.join(0.5)  # wakes for Ctrl-C and SIGTERM, which raise here
    except KeyboardInterrupt:  # SIGTERM too (Terminated): a server stopped on purpose exits 0
        pass
    server.shutdown()
    server.server_close()
    deadline = time.monotonic() + STOP_WAIT_S
    while service.admitted and time.monotonic() < deadline:  # the pictures already in get their answers
        time.sleep(0.1)
    if not getattr(args, "quiet", False):  # the start line is the server's address (stdout, read by scripts); this one is only news
        print("birefvid: stopped", file=sys.stderr, flush=True)
    return 0


def _loopback(host: str) -> bool:
    """True for a --host only this machine reaches (127.0.0.1, ::1, localhost), where no key is asked for by default."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
