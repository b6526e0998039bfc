"""Two adjustments of the WebRTC stack for a server whose cores the model shares.

A floor under the bandwidth aiortc asks browsers to send video at (`floor_receive_bitrate`).
aiortc estimates each incoming video stream's bandwidth from packet arrival times taken on its
event loop (Google's delay-based REMB estimator) and tells the browser the result. On one busy
server those arrival times carry the server's own scheduling delays: a garbage collection or a
burst of model work delays a few packets, the estimator reads congestion, and the figure it
sends can fall to a few tens of kbit/s. Chromium then drops frames, not just pixels:
bench/live.py saw tabs of four sending 9-18 frames a second instead of 30. Below ~150 kbit/s
a 30 fps camera cannot keep its frame rate even at 320×240, so the estimate is floored there.
A real network's congestion still shows as packet loss, on which the browser's own (loss-based)
estimate cuts the rate regardless.

Only new results go back to the browser (`send_new_frames_only`). The track follows
streamlit-webrtc's own `AsyncMediaProcessTrack.recv` (0.79, pinned in requirements.txt) and
uses its attributes; tests/test_rtc.py runs it on the installed version.
"""
from __future__ import annotations

import functools

MIN_VIDEO_BITRATE = 150_000
"""bit/s: the least the server asks a browser to send its camera at."""


def floor_receive_bitrate(bps: int = MIN_VIDEO_BITRATE) -> None:
    """Make aiortc never report an estimate below `bps` (once per process; idempotent)."""
    from aiortc import rate

    add = rate.RemoteBitrateEstimator.add
    original = getattr(add, "__wrapped__", add)

    @functools.wraps(original)
    def add_floored(self, *args, **kwargs):
        estimate = original(self, *args, **kwargs)
        if estimate is None:
            return None
        bitrate, ssrcs = estimate
        return max(int(bitrate), bps), ssrcs

    rate.RemoteBitrateEstimator.add = add_floored


def send_new_frames_only() -> None:
    """Make streamlit-webrtc send the browser a frame only when the model drew a new one
    (once per process; idempotent).

    Its async track answers every camera frame with the newest processed frame, so while four
    sessions share the model at ~10 results a second each, two of every three frames it sends
    are repeats: the server VP8-encodes each and the browser decodes and composites each, on
    the same two cores the model needs. Until the first result the camera's own frame goes back,
    so the picture appears at once.
    """
    from streamlit_webrtc import webrtc

    webrtc.AsyncVideoProcessTrack = new_frames_track()


@functools.cache
def new_frames_track() -> type:
    """streamlit-webrtc's async video track whose recv() skips camera frames that brought no
    new result. Built on first use: streamlit-webrtc imports Streamlit, which the engine never
    imports on its own."""
    from aiortc.mediastreams import MediaStreamError
    from streamlit_webrtc.process import AsyncVideoProcessTrack

    class NewFramesTrack(AsyncVideoProcessTrack):
        async def recv(self):
            while True:
                if self.readyState != "live":
                    raise MediaStreamError
                with self._worker_exception_lock:
                    if self._worker_exception:
                        raise self._worker_exception
                self._start()
                frame = await self.track.recv()
                self._in_queue.put(frame)
                with self._out_lock:
                    new_frame = self._out_deque.popleft() if self._out_deque else None
                if new_frame is None:
                    if self._last_out_frame is None:
                        return frame  # nothing processed yet: the camera's own picture
                    continue  # the browser shows the newest result already
                self._last_out_frame = new_frame
                new_frame.pts, new_frame.time_base = frame.pts, frame.time_base
                return new_frame

    return NewFramesTrack
