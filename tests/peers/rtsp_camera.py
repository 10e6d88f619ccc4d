#!/usr/bin/python3
"""An IP camera for tests: Debian's GStreamer RTSP server on 127.0.0.1.

Run with Debian's /usr/bin/python3 (the GObject bindings exist only there). Prints
``READY rtsp://127.0.0.1:PORT/cam`` once it listens, then serves until killed. One shared
encoder feeds every client, so many viewers cost one encode.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
            "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
            "! rtph265pay name=pay0 pt=96 config-interval=1",
}
AUDIO = {
    "none": "",
    "aac": "audiotestsrc is-live=true wave=sine freq=1000 ! audio/x-raw,rate=48000,channels=1 "
           "! voaacenc bitrate=64000 ! rtpmp4gpay name=pay1 pt=97",
    "pcmu": "audiotestsrc is-live=true wave=sine freq=1000 ! audio/x-raw,rate=8000,channels=1 "
            "! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": "audiotestsrc is-live=true wave=sine freq=1000 ! audio/x-raw,rate=8000,channels=1 "
            "! alawenc ! rtppcmapay name=pay1 pt=8",
    "opus": "audiotestsrc is-live=true wave=sine freq=1000 ! audio/x-raw,rate=48000,channels=1 "
            "! opusenc ! rtpopuspay name=pay1 pt=98",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--video", choices=sorted(VIDEO), default="h264")
    p.add_argument("--audio", choices=sorted(AUDIO), default="none")
    p.add_argument("--size", default="640x360")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--gop", type=int, default=50, help="frames between keyframes")
    p.add_argument("--kbps", type=int, default=800)
    p.add_argument("--mount", default="/cam")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    args = p.parse_args()

    Gst.init(None)
    width, height = args.size.split("x")
    video = (f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
             f"framerate={args.fps}/1 ! " + VIDEO[args.video].format(gop=args.gop, kbps=args.kbps))
    launch = f"( {video} {AUDIO[args.audio]} )"

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print("ERROR cannot listen", flush=True)
        return 1
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.mount}", flush=True)
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
