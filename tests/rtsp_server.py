"""A throwaway RTSP server for the live-source tests: serves one H.264 .mp4 on 127.0.0.1 and quits by itself.

Run with the distribution's Python (it has ``gi``; the project venv does not)::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --file clip.mp4 [--path /cam] [--max-seconds 60] [--audio] [--auth USER:PASSWORD]
    /usr/bin/python3 tests/rtsp_server.py --port 8554 --file camera.mkv --g711 pcmu --auth USER:PASSWORD --digest

Every client gets its own pipeline (``filesrc ! qtdemux ! h264parse ! rtph264pay``, and with
``--audio`` ``aacparse ! rtpmp4gpay`` for the file's AAC track) that plays the
file once from its start at its own pace, so a client that reconnects starts the clip again. A
Matroska file (``.mkv``) of H.265 video and PCM sound is served as an IP camera's main stream is:
H.265 (``h265parse ! rtph265pay``) and, with ``--g711 pcmu`` or ``pcma``, its sound as 8 kHz G.711
(``mulawenc ! rtppcmupay``, ``alawenc ! rtppcmapay``). With ``--auth`` it asks for that user and
password (HTTP Basic, or with ``--digest`` HTTP Digest, as Hikvision and Dahua cameras ask) and answers
anyone else 401 Unauthorized. The
script prints ``ready rtsp://127.0.0.1:PORT/PATH`` once the port accepts connections and exits after
``--max-seconds`` (or on SIGTERM/SIGINT), so a test that forgets it cannot leave it running.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


# G.711's two laws: the encoder and RTP payloader of each (static payload types 0 and 8, 8 kHz mono)
_G711 = {"pcmu": "mulawenc ! rtppcmupay", "pcma": "alawenc ! rtppcmapay"}


def _pipeline(file: Path, audio: bool = False, g711: str | None = None) -> str:
    """The gst-launch description of one client's media: the file's video track, RTP-packetised,
    and with ``audio`` its AAC track too (as an IP camera with a microphone sends). A Matroska file
    holds H.265 and PCM sound, sent as G.711 with ``g711`` (``pcmu`` or ``pcma``)."""
    location = str(file).replace("\\", "\\\\").replace('"', '\\"')
    if file.suffix.lower() == ".mkv":
        video = "d.video_0 ! queue ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96"
        sound = (f" d.audio_0 ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! {_G711[g711]} name=pay1"
                 if g711 else "")  # fmt: skip
        return f'( filesrc location="{location}" ! matroskademux name=d {video}{sound} )'
    video = "d.video_0 ! queue ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96"
    sound = " d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97" if audio else ""
    return f'( filesrc location="{location}" ! qtdemux name=d {video}{sound} )'


def _require_login(server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, password: str,
                   digest: bool = False) -> None:  # fmt: skip
    """Let only ``user`` with ``password`` (HTTP Basic, or Digest alone with ``digest``) see and play the factory's media."""
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth = GstRtspServer.RTSPAuth()
    if digest:
        gi.require_version("GstRtsp", "1.0")
        from gi.repository import GstRtsp

        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)  # no Basic offered: a client must answer the digest
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("user")
    for permission in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        permissions.add_permission_for_role("user", permission, True)
    factory.set_permissions(permissions)


def main(argv: list[str] | None = None) -> int:
    """Serve ``--file`` at rtsp://127.0.0.1:PORT/PATH until ``--max-seconds`` have passed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--audio", action="store_true", help="serve the file's AAC track too")
    ap.add_argument("--udp-only", action="store_true", help="refuse RTP over the RTSP connection (TCP), as some cameras do")
    ap.add_argument("--auth", help="USER:PASSWORD a client must give (401 Unauthorized otherwise)")
    ap.add_argument("--digest", action="store_true", help="ask for --auth by HTTP Digest, not Basic")
    ap.add_argument("--g711", choices=sorted(_G711), help="serve a .mkv's sound as 8 kHz G.711 (mu-law or A-law)")
    args = ap.parse_args(argv)
    if not args.file.is_file():
        print(f"rtsp_server: {args.file} is not a file", file=sys.stderr)
        return 2
    if not args.path.startswith("/"):
        args.path = "/" + args.path

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_pipeline(args.file.resolve(), args.audio, args.g711))
    factory.set_shared(False)
    if args.udp_only:
        gi.require_version("GstRtsp", "1.0")
        from gi.repository import GstRtsp

        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    if args.auth:
        _require_login(server, factory, *args.auth.split(":", 1), digest=args.digest)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False  # remove the timeout / signal source

    GLib.timeout_add(int(args.max_seconds * 1000), quit_loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, quit_loop)
    print(f"ready rtsp://127.0.0.1:{server.get_bound_port()}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
