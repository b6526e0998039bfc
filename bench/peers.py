"""Camera users without a browser: WebRTC peers that load the server and nothing else.

`python bench/live.py --peers` uses them instead of Chromium's tabs. On a two-core machine eight
tabs took 1.3 of the two cores to encode their cameras, decode the answers and draw the page,
leaving the server a third of the machine; a class's laptops do that work on their own CPUs.

Each peer is one Streamlit session, opened over the websocket as the page's frontend opens it. It
starts the camera through streamlit-webrtc's component value as its frontend does (an offer with
every ICE candidate in it, then `playing` once connected), reruns the live panel's fragment when
the server asks (`auto_rerun`), sends a video encoded once to VP8 (aiortc packs an `av.Packet`
without encoding it) at the size and frame rate the page asks the camera for (its
`media_stream_constraints`, KNN_CAPTURE), and takes the answered video back (aiortc decodes it).
The server cannot tell it from a tab: the same websocket messages, the same RTP.

    python bench/peers.py --url http://127.0.0.1:8501 --video V.y4m --sessions 8 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import av

FPS = 30
BITRATE = 300_000
"""bit/s of the sent video: where Chromium starts a camera; it then goes where the server's bandwidth
estimate lets it (0.13-1.2 Mbit/s seen on loopback, the lower end on a busy server)."""
KEYFRAME_EVERY = 30
"""frames between keyframes: Chromium sends one when the server asks (a lost packet); a peer cannot
answer the request, so one comes every second instead (about a third more bits)."""
JOIN_TIMEOUT = 120.0
"""Seconds the peers wait for the last of them to connect before their `seconds` start anyway."""
VIDEO_CLOCK = fractions.Fraction(1, 90000)


def encode_video(
    path: Path, bitrate: int = BITRATE, size: tuple[int, int] | None = None, fps: int = FPS
) -> list[tuple[bytes, bool]]:
    """The .y4m at `path` as VP8 frames, (data, keyframe), encoded once with libvpx's realtime mode;
    scaled to `size` (width, height) and thinned to `fps` (from the video's 30) where given."""
    codec = None
    packets: list[tuple[bytes, bool]] = []
    every = max(1, round(FPS / fps))
    with av.open(str(path)) as video:
        for n, frame in enumerate(video.decode(video=0)):
            if n % every:
                continue
            if codec is None:
                width, height = size or (frame.width, frame.height)
                codec = av.CodecContext.create("libvpx", "w")
                codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
                codec.bit_rate, codec.gop_size = bitrate, max(1, KEYFRAME_EVERY * fps // FPS)  # one a second
                codec.time_base = fractions.Fraction(1, fps)
                codec.options = {
                    "deadline": "realtime",
                    "cpu-used": "-6",
                    "lag-in-frames": "0",
                    "minrate": str(bitrate),
                    "maxrate": str(bitrate),
                    "bufsize": str(bitrate),
                }
            frame = frame.reformat(width=codec.width, height=codec.height, format="yuv420p")
            frame.pts, frame.time_base = len(packets), fractions.Fraction(1, fps)
            frame.pict_type = av.video.frame.PictureType.NONE  # a raw video's frames say I: libvpx would obey
            packets += [(bytes(p), p.is_keyframe) for p in codec.encode(frame)]
        packets += [(bytes(p), p.is_keyframe) for p in codec.encode(None)]
    if not packets or not packets[0][1]:
        raise RuntimeError(f"{path}: the encoded video does not start with a keyframe")
    return packets


class Videos:
    """The video encoded once per capture size and rate a page asks for, shared by the peers."""

    def __init__(self, path: Path, bitrate: int) -> None:
        self.path, self.bitrate = path, bitrate
        self._encoded: dict[tuple[int, int, int], list[tuple[bytes, bool]]] = {}

    def packets(self, width: int, height: int, fps: int) -> list[tuple[bytes, bool]]:
        key = (width, height, fps)
        if key not in self._encoded:
            self._encoded[key] = packets = encode_video(self.path, self.bitrate, (width, height), fps)
            print(
                f"peers: {width}x{height} at {fps} fps, {len(packets)} VP8 frames, "
                f"{sum(len(d) for d, _ in packets) * 8 * fps / len(packets) / 1e6:.2f} Mbit/s",
                file=sys.stderr,
                flush=True,
            )
        return self._encoded[key]


def asked_capture(constraints: dict | None) -> tuple[int, int, int]:
    """(width, height, fps) a page's `media_stream_constraints` ask for (their ideal, else exact or
    bare values); the video's own 640×480 at 30 fps where they name none."""

    video = constraints.get("video") if isinstance(constraints, dict) else None
    video = video if isinstance(video, dict) else {}  # `True`: any camera

    def value(name: str, default: int) -> int:
        asked = video.get(name, default)
        if isinstance(asked, dict):
            asked = asked.get("ideal", asked.get("exact", default))
        return int(asked) if isinstance(asked, (int, float)) else default

    return value("width", 640), value("height", 480), value("frameRate", FPS)


def make_track(packets: list[tuple[bytes, bool]], fps: int = FPS):
    """A video track that plays `packets` in a loop at `fps`, paced by the wall clock."""
    from aiortc import MediaStreamTrack

    class PacketTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self._start: float | None = None

        async def recv(self) -> av.Packet:
            if self._start is None:
                self._start = time.monotonic()
            due = self._start + self.sent / fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            data, _ = packets[self.sent % len(packets)]
            packet = av.Packet(data)
            packet.pts, packet.time_base = self.sent * (90000 // fps), VIDEO_CLOCK
            self.sent += 1
            return packet

    return PacketTrack()


@dataclass
class PeerState:
    """What one peer saw; printed as JSON lines for bench/live.py."""

    peer: int
    connection: list[tuple[float, str]] = field(default_factory=list)
    frames_back: int = 0
    frames_sent: int = 0
    reruns: int = 0
    error: str = ""


class Peer:
    """One Streamlit session with its camera started, as the page's frontend would do it."""

    def __init__(self, index: int, url: str, videos: Videos) -> None:
        self.state = PeerState(index)
        self._url = url
        self._videos = videos
        self._capture: tuple[int, int, int] | None = None  # what the page asks the camera for
        self._ws = None
        self._camera_id: str | None = None
        self._camera_value: dict | None = None
        self._answer: dict | None = None
        self._answered = asyncio.Event()
        self._first_run = asyncio.Event()
        self._fragments: dict[str, float] = {}  # fragment id -> seconds between the server's auto reruns
        self._tasks: list[asyncio.Task] = []
        self._pc = None
        self._track = None

    async def run(self, stop: asyncio.Event) -> None:
        import websockets
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.rtcrtpsender import RTCRtpSender

        parts = urlparse(self._url)
        ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path.rstrip('/')}/_stcore/stream"
        try:
            async with websockets.connect(
                ws_url, subprotocols=["streamlit"], max_size=2**28, origin=f"{parts.scheme}://{parts.netloc}"
            ) as ws:
                self._ws = ws
                self._tasks.append(asyncio.create_task(self._read()))
                await self._rerun()
                await asyncio.wait_for(self._first_run.wait(), 60)
                if self._camera_id is None:
                    raise RuntimeError("the page drew no webrtc_streamer component")

                pc = self._pc = RTCPeerConnection()  # no ICE servers: loopback host candidates
                pc.on("connectionstatechange", self._on_state)
                pc.on("track", lambda track: self._tasks.append(asyncio.create_task(self._take(track))))
                width, height, fps = self._capture or asked_capture(None)
                self._track = make_track(self._videos.packets(width, height, fps), fps)
                transceiver = pc.addTransceiver(self._track, direction="sendrecv")
                transceiver.setCodecPreferences(
                    [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
                )
                await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate first
                offer = {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}
                self._camera_value = {"playing": False, "sdpOffer": offer, "iceCandidates": {}}
                await self._rerun()
                await asyncio.wait_for(self._answered.wait(), 60)
                await pc.setRemoteDescription(RTCSessionDescription(**self._answer))
                await stop.wait()
        except Exception as exc:  # a peer that fails is reported, the others go on
            self.state.error = f"{type(exc).__name__}: {exc}"
        finally:
            for task in self._tasks:
                task.cancel()
            if self._track is not None:
                self.state.frames_sent = self._track.sent
            if self._pc is not None:
                await self._pc.close()

    def joined(self) -> bool:
        """Connected once, or given up."""
        return bool(self.state.error) or any(state == "connected" for _, state in self.state.connection)

    def _on_state(self) -> None:
        state = self._pc.connectionState
        self.state.connection.append((round(time.time(), 2), state))
        if state == "connected" and self._camera_value and not self._camera_value["playing"]:
            # the frontend's START_PLAYING: the offer is cleared, the stream marked as playing
            self._camera_value = {"playing": True, "sdpOffer": None, "iceCandidates": {}}
            asyncio.ensure_future(self._rerun())

    async def _take(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
                self.state.frames_back += 1
        except MediaStreamError:
            pass

    async def _rerun(self, fragment_id: str = "") -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        client = msg.rerun_script
        client.SetInParent()  # an empty ClientState is still a rerun
        if fragment_id:
            client.fragment_id, client.is_auto_rerun = fragment_id, True
        if self._camera_id is not None and self._camera_value is not None:
            widget = client.widget_states.widgets.add()
            widget.id, widget.json_value = self._camera_id, json.dumps(self._camera_value)
        self.state.reruns += 1
        await self._ws.send(msg.SerializeToString())

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        async for data in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                if (
                    element.WhichOneof("type") == "component_instance"
                    and "webrtc_streamer" in element.component_instance.component_name
                ):
                    self._camera_id = element.component_instance.id
                    args = json.loads(element.component_instance.json_args)
                    self._capture = self._capture or asked_capture(args.get("media_stream_constraints"))
                    answer = args.get("sdp_answer_json")
                    if answer and self._answer is None:
                        self._answer = json.loads(answer)
                        self._answered.set()
            elif kind == "auto_rerun" and msg.auto_rerun.fragment_id not in self._fragments:
                self._fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                self._tasks.append(asyncio.create_task(self._auto_rerun(msg.auto_rerun.fragment_id)))
            elif kind == "script_finished":
                self._first_run.set()

    async def _auto_rerun(self, fragment_id: str) -> None:
        while True:
            await asyncio.sleep(self._fragments[fragment_id])
            await self._rerun(fragment_id)


async def run_peers(
    url: str, video: Path, sessions: int, seconds: float, join_every: float, bitrate: int = BITRATE
) -> list[PeerState]:
    videos = Videos(video, bitrate)
    videos.packets(*asked_capture(None))  # the usual size, before any peer waits for it
    stop = asyncio.Event()
    peers = [Peer(k + 1, url, videos) for k in range(sessions)]
    tasks = []
    for peer in peers:
        tasks.append(asyncio.create_task(peer.run(stop)))
        await asyncio.sleep(join_every)
    # `seconds` count from the last connection, not from the last start: a loaded server can take
    # many seconds to connect a peer, and the benchmark measures from the time all stream.
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not all(peer.joined() for peer in peers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return [peer.state for peer in peers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the app, e.g. http://127.0.0.1:8501")
    parser.add_argument("--video", type=Path, required=True, help="a .y4m to send (bench/live.py writes them)")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60, help="how long the peers stream once all have joined")
    parser.add_argument("--join-every", type=float, default=2.0, help="seconds between peers joining")
    parser.add_argument("--bitrate", type=int, default=BITRATE, help="bit/s of the sent video")
    args = parser.parse_args()
    for state in asyncio.run(
        run_peers(args.url, args.video, args.sessions, args.seconds, args.join_every, args.bitrate)
    ):
        print(json.dumps(state.__dict__), flush=True)


if __name__ == "__main__":
    main()
