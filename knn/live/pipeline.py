"""One session's camera frames in, captioned results out.

streamlit-webrtc's SENDRECV mode takes a sink for the camera's track and a source for the video it
sends back (`sink_video_track=`, `source_video_track=`). `CameraSink` is the sink: for each
decoded camera frame it calls `FramePipeline.on_frame` on aiortc's event loop, which counts the
frame and asks the session's `SteadyGate` (knn.live.steady) whether it looks like the last frame
the model answered. A still frame is answered with it right there (no model, no worker thread;
its caption is drawn only if the encoder takes it before a newer frame replaces it); any other
goes to the shared model worker (knn.live.worker), where a newer frame of the session replaces
one still waiting. On a worker thread the frame is scaled for the model, embedded, classified by
the session and captioned; the result goes to `ResultTrack`, the source, which gives aiortc's
encoder each new result once and nothing in between. So the callback never waits, old frames
never queue, and no frame is encoded twice.

A frame's capture-to-overlay latency is taken when the encoder takes its result (see
`stats.CaptureClock`).
"""

from __future__ import annotations

import asyncio
import enum
import fractions
import functools
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .answer_size import AnswerSize
from .overlay import FAILED_COLOUR, LOADING, SWITCHING, Caption, model_input, overlay
from .stats import AnsweredFrame, CaptureClock, Stats, StatsSummary
from .steady import ModelAnswer, SteadyGate, thumbnail
from .worker import MODEL_WORKER, ModelWorker

_LOG = logging.getLogger(__name__)
_IDS = itertools.count(1)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
MAX_FRAME_AGE = 3.0
"""Seconds after its last frame that a camera still counts as streaming; Add refuses an older
frame (the camera has stopped, and the user would not expect it)."""

LOADING_FPS = 5.0
"""While the process's model is being built, the captioned video goes back at most this often:
its encode would take the cores the model's conversion needs (docs/performance.md)."""

_PIPELINES: weakref.WeakSet[FramePipeline] = weakref.WeakSet()


def streaming_cameras() -> int:
    """How many pipelines in this process received a camera frame in the last `MAX_FRAME_AGE` s."""
    now = time.monotonic()
    times = (p.last_arrival for p in list(_PIPELINES))
    return sum(1 for t in times if t is not None and now - t <= MAX_FRAME_AGE)


ANSWER_SIZE = AnswerSize(streaming_cameras)
"""The process's answer size (knn.live.answer_size): half while many cameras stream here."""


class EmbedderLike(Protocol):
    """What the live path needs of an embedder (knn.model.embedder.Embedder). Read-only members:
    the Embedder's are properties, and the live path never sets them. One still being built
    (knn.serving.model_job) also has `loading`, True until it answers: see `model_loading`."""

    @property
    def backbone(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_one(self, image: np.ndarray) -> np.ndarray: ...


def model_loading(embedder: EmbedderLike) -> bool:
    """Whether `embedder` is still being built; one without `loading` never is."""
    return bool(getattr(embedder, "loading", False))


class FrameConsumer(Protocol):
    """What the pipeline asks of its session (knn.live.session.LiveSession)."""

    def frame_embedder(self) -> EmbedderLike | None:
        """The embedder for camera frames now; None while the backbone is being switched."""

    def accept(
        self,
        embedding: np.ndarray,
        crop: np.ndarray,
        arrived: float,
        embedder: EmbedderLike,
        frame: av.VideoFrame | None = None,
    ) -> tuple[Caption, float, str | None] | None:
        """Classify a frame's embedding (`crop`: the model's input, `frame`: the camera's frame,
        for the larger square a project stores); (caption, KNN seconds, class or None), or None
        if the embedder changed."""

    def notify(self, text: str) -> None:
        """Something the user should read."""


@dataclass(frozen=True)
class _Result:
    """What the encoder is told of a result as it takes it."""

    capture: float | None  # the camera frame's capture time (frame.time), for latency
    fresh: bool | None  # from the model, reused (a still scene), or None: no answer (an error)
    label: str | None
    source: float | None  # the capture time of the frame the model saw for this answer


class FramePipeline:
    """Frames in, captioned frames out, for one session; counts and times every step.

    Args:
        consumer: the session that classifies embeddings and owns the examples.
        worker: the model worker shared by the process's sessions.
        clock: seconds, monotonic: when frames arrive (tests drive it).
        steady: reuse the last answer for still frames (False: every frame to the model).
    """

    def __init__(
        self,
        consumer: FrameConsumer,
        worker: ModelWorker = MODEL_WORKER,
        clock: Callable[[], float] = time.monotonic,
        steady: bool = True,
        answer_size: AnswerSize = ANSWER_SIZE,
    ) -> None:
        self.id = next(_IDS)
        self._answer_size = answer_size
        # Back-references are weak: with no reference cycle, a closed session is freed as soon as
        # Streamlit lets it go, even if a frozen garbage collection never looks at it again.
        self._consumer = weakref.ref(consumer)
        self._worker = worker
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = Stats()
        self._capture_clock = CaptureClock()
        self._steady = steady
        self._gate = SteadyGate()
        self._last_arrival: float | None = None
        self._last_processed = -float("inf")  # time.monotonic() of the last frame through the model
        self._newest_out = -float("inf")  # arrival of the newest frame published: the video never steps back
        self._waiting_answers: float | None = None  # arrival of the frame waiting in the worker to be answered
        self._loading_sent = -float("inf")  # arrival of the last frame sent back captioned "model loading…"
        self._failing = False
        self.mirror = False
        self.sink = CameraSink(self)
        self.output = ResultTrack(weakref.WeakMethod(self._sent))
        _PIPELINES.add(self)

    # ---- the camera's side: aiortc's event loop ----------------------------------------------

    def on_frame(self, frame: av.VideoFrame) -> None:
        """A camera frame arrived: caption a still one with the last answer, hand any other to
        the model worker (and, twice a second, a still one too, to refresh the answer). Never waits."""
        now = self._clock()
        thumb = thumbnail(frame) if self._steady else None  # tens of µs: the luma plane summed in 16×16 blocks
        with self._lock:
            self._stats.record_received(1, now)
            self._last_arrival = now
            if frame.time is not None:
                self._capture_clock.arrived(frame.time, now)
            answer, ask = self._gate.on_arrival(thumb, now)
            if ask:  # under the lock: what waits in the worker is known when a newer job replaces it
                job = functools.partial(self._process, frame, now, thumb, publish=answer is None)
                if self._worker.submit(self.id, self._last_processed, job) and self._waiting_answers is not None:
                    self._stats.record_dropped(1)  # the waiting frame never reached the model
                self._waiting_answers = now if answer is None else None
        if answer is not None:  # a still scene: captioned right here, no model, no worker thread
            self._answer_again(frame, answer, now)

    def camera_ended(self) -> None:
        """The camera's stream ended (STOP, a closed tab): end the stream of results too."""
        self.output.end_stream()

    def forget_answer(self) -> None:
        """The last answer no longer holds (the examples or settings changed): the next frame
        goes to the model."""
        with self._lock:
            self._gate.forget()

    # ---- a model worker thread ---------------------------------------------------------------

    def _process(self, frame: av.VideoFrame, arrived: float, thumb: np.ndarray | None, publish: bool = True) -> None:
        """Embed, classify and caption one frame; publish the result, unless the frame was already
        answered (a still frame sent to refresh the answer: only the answer is renewed)."""
        consumer = self._consumer()
        if consumer is None:  # the session is gone
            return
        with self._lock:  # while this frame waited, the model may have answered one just like it
            if self._waiting_answers == arrived:
                self._waiting_answers = None
            answer = self._gate.before_model(thumb, arrived)
            generation = self._gate.generation
        if answer is not None:
            if publish:
                self._answer_again(frame, answer, arrived)
            return
        try:
            result = self._classify(consumer, frame, arrived, thumb, generation)
            if result is None or not publish:
                return
            caption, label, answered = result
            if caption is LOADING and not self._loading_due(arrived):
                return
            out = overlay(frame, *caption, self.mirror, half=self._answer_size.halved())
            done = _Result(frame.time, True, label, frame.time) if answered else _Result(None, None, None, None)
        except Exception as exc:
            out, done = self._failed(consumer, frame, exc), _Result(frame.time, None, None, None)
            if not publish:
                return
        self._publish((out, done), arrived)

    def _classify(
        self, consumer: FrameConsumer, frame: av.VideoFrame, arrived: float, thumb: np.ndarray | None, generation: int
    ) -> tuple[Caption, str | None, bool] | None:
        """(caption, class, True): the model's answer for the frame, learnt as the session's; None
        if the backbone changed meanwhile; while it is being switched or still loads, (its caption,
        None, False)."""
        embedder = consumer.frame_embedder()
        if embedder is None:  # the stored examples are being re-embedded for another backbone
            return SWITCHING, None, False
        if model_loading(embedder):  # the process's model is still being built: say so on the video
            return LOADING, None, False
        crop = model_input(frame, embedder.input_size)
        t0 = time.perf_counter()
        embedding = embedder.embed_one(crop)
        embed_seconds = time.perf_counter() - t0
        result = consumer.accept(embedding, crop, arrived, embedder, frame)
        if result is None:  # the backbone changed meanwhile: this embedding means nothing now
            return None
        caption, knn_seconds, label = result
        with self._lock:
            self._last_processed = time.monotonic()
            self._failing = False
            self._stats.record_processed(embed_seconds, knn_seconds, arrived)
            self._gate.learn(ModelAnswer(thumb, caption, label, arrived, frame.time), generation)
        return caption, label, True

    def _loading_due(self, arrived: float) -> bool:
        """Whether a frame captioned "model loading…" goes back now (at most LOADING_FPS a second)."""
        with self._lock:
            if arrived - self._loading_sent < 1 / LOADING_FPS:
                return False
            self._loading_sent = arrived
            return True

    def _answer_again(self, frame: av.VideoFrame, answer: ModelAnswer, arrived: float) -> None:
        """Answer a still frame with the answer the model gave a frame just like it. The caption is
        drawn only if the encoder takes the frame: on a busy server a newer one replaces most first."""
        with self._lock:
            self._stats.record_reused(arrived)
        self._publish(functools.partial(self._captioned, frame, answer), arrived)

    def _captioned(self, frame: av.VideoFrame, answer: ModelAnswer) -> tuple[av.VideoFrame, _Result]:
        """A still frame with its reused answer drawn on it (on the encoder's side, when taken)."""
        try:
            out = overlay(frame, *answer.caption, self.mirror, half=self._answer_size.halved())
        except Exception as exc:
            consumer = self._consumer()
            return (frame if consumer is None else self._failed(consumer, frame, exc)), _Result(
                frame.time, None, None, None
            )
        return out, _Result(frame.time, False, answer.label, answer.capture)

    def _publish(
        self, out: tuple[av.VideoFrame, _Result] | Callable[[], tuple[av.VideoFrame, _Result]], arrived: float
    ) -> None:
        """Offer a result to the encoder unless a newer frame's already went (a model pass can
        finish after the still frames behind it were answered: its picture is older). `out` is the
        picture and its result, or what draws them when the encoder takes it."""
        with self._lock:  # held while publishing: two threads publish, in arrival order
            if arrived < self._newest_out:
                return
            self._newest_out = arrived
            if callable(out):
                self.output.publish_later(out)
            else:
                self.output.publish(*out)

    def _failed(self, consumer: FrameConsumer, frame: av.VideoFrame, exc: Exception) -> av.VideoFrame:
        """Log a frame's failure once per run of failures, tell the user, caption the frame."""
        with self._lock:
            first, self._failing = not self._failing, True
        if first:
            _LOG.exception("processing a camera frame failed")
            consumer.notify(f"Processing a camera frame failed: {exc}")
        try:
            return overlay(frame, f"error: {type(exc).__name__}", None, FAILED_COLOUR, False)
        except Exception:  # the frame itself is unusable: send it as it came
            return frame

    # ---- the encoder's side ------------------------------------------------------------------

    def _sent(self, result: object) -> None:
        """The encoder took a result: it is answered, and its capture-to-overlay latency is known."""
        if not isinstance(result, _Result) or result.fresh is None:
            return
        done = self._clock()
        with self._lock:
            capture, source = (
                None if t is None else self._capture_clock.aligned(t) for t in (result.capture, result.source)
            )
            self._stats.record_answered(done, capture, result.fresh, result.label, source)

    # ---- reading -----------------------------------------------------------------------------

    @property
    def last_arrival(self) -> float | None:
        """The clock's time when the latest camera frame arrived; None before the first."""
        return self._last_arrival

    def summary(self, now: float) -> StatsSummary:
        with self._lock:
            return self._stats.summary(now)

    def latencies(self, since: int) -> tuple[list[float], int, int]:
        """(latencies in ms recorded after the first `since`, how many of them were lost, total so far)."""
        with self._lock:
            values, lost = self._stats.latencies_since(since)
            return [round(float(v), 2) for v in values], lost, self._stats.latencies_recorded

    def answers(self, since: int) -> tuple[list[AnsweredFrame], int, int]:
        """(answered frames logged after the first `since`: capture and sent times on the clock,
        fresh, class; how many of them were lost; total so far)."""
        with self._lock:
            answers, lost = self._stats.answers_since(since)
            return answers, lost, self._stats.answers_logged

    def reset_timings(self) -> None:
        """Forget embedding and KNN timings (another backbone takes another time)."""
        with self._lock:
            self._stats.reset_timings()


class CameraSink:
    """streamlit-webrtc's `MediaSink` for the camera: every decoded frame goes to `on_frame`.

    One sink per session, reused across START/STOP: streamlit-webrtc attaches the new stream's
    track (`addTrack`), starts it, and stops it when the WebRTC session ends.
    """

    def __init__(self, pipeline: FramePipeline) -> None:
        self._pipeline = weakref.ref(pipeline)
        self._track: MediaStreamTrack | None = None
        self._task: asyncio.Task[None] | None = None

    def addTrack(self, track: MediaStreamTrack) -> None:  # camelCase: streamlit-webrtc's MediaSink protocol
        self._track = track

    def hasTrack(self) -> bool:
        return self._track is not None

    def start(self) -> None:
        if self._track is None:
            raise RuntimeError("the camera sink has no track to read")
        if self._task is not None and not self._task.done():
            return
        pipeline = self._pipeline()
        if pipeline is not None:
            pipeline.output.new_stream()
        self._task = asyncio.get_running_loop().create_task(self._read(self._track))

    def stop(self) -> None:
        """End reading (any thread: streamlit-webrtc stops sinks from its own threads too)."""
        task, self._task, self._track = self._task, None, None
        if task is not None:
            task.get_loop().call_soon_threadsafe(task.cancel)
        self._ended()

    def _ended(self) -> None:
        pipeline = self._pipeline()
        if pipeline is not None:
            pipeline.camera_ended()

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.VideoFrame):  # a camera track sends video only
                    continue
                pipeline = self._pipeline()
                if pipeline is None:  # the session is gone
                    return
                try:
                    pipeline.on_frame(frame)
                except Exception:  # one bad frame must not end the stream
                    _LOG.exception("a camera frame could not be handed to the model")
                del pipeline
        finally:
            self._ended()


class _End(enum.Enum):
    """What `ResultTrack.end_stream` leaves for `recv`: the stream of results is over."""

    END = "end"


_END: Final = _End.END
_Draw = Callable[[], tuple[av.VideoFrame, object]]
"""What `ResultTrack.publish_later` leaves: drawn, if taken, into the frame and its `info`."""


class ResultTrack(MediaStreamTrack):
    """The video sent back: each new result once, nothing in between.

    `publish` (any thread) leaves the newest result for `recv` (aiortc's event loop), replacing
    one not yet taken; `on_sent` returns the callable told each result's `info` as it goes (a weak
    method) or None. Timestamps come from the wall clock, so the encoder sees the real pace.
    When the camera's stream ends, `recv` raises `MediaStreamError` once, which ends aiortc's
    relay of this track; the track stays live for the next stream.

    streamlit-webrtc hands this track to aiortc's sender through buffered `MediaRelay`s, which
    read every result as it comes and queue it for the encoder: on a busy server the encoder
    would work through a queue of old results. So each frame handed out carries in `opaque` a
    callable the encoder calls as it takes the frame (knn.serving.rtc), and once such a call has
    been seen, `recv` hands out the next result only after the encoder took the last one, or
    after `ACK_WAIT` seconds without word.
    """

    kind = "video"
    ACK_WAIT = 0.5
    """Seconds a result waits for the encoder's word on the last one (a sender that drops frames
    unencoded sends none), after which it goes anyway."""

    def __init__(self, on_sent: Callable[[], Callable[[object], None] | None] | None = None) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: tuple[av.VideoFrame, object] | _Draw | _End | None = None
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._on_sent = on_sent
        self._origin = time.monotonic()
        self._last_pts = -1
        self._acknowledged = False  # the encoder has said it took a frame: its word is awaited
        self._unconfirmed: tuple[int, float] | None = None  # (pts, when handed out) of a frame not yet taken

    def publish(self, frame: av.VideoFrame, info: object = None) -> None:
        """Offer a result; `info` (what the pipeline knows of it) goes to `on_sent` when it is taken."""
        self._put((frame, info))

    def publish_later(self, draw: _Draw) -> None:
        """Offer a result drawn only if it is taken: `draw()` gives the frame and its `info`."""
        self._put(draw)

    def end_stream(self) -> None:
        self._put(_END)

    def new_stream(self) -> None:
        """A camera stream starts: forget an end left over from the previous one."""
        with self._lock:
            self._unconfirmed = None  # the last stream's encoder will not say more
            if self._pending is _END:
                self._pending = None

    def _put(self, item: tuple[av.VideoFrame, object] | _Draw | _End) -> None:
        with self._lock:
            self._pending = item
            waiter, self._waiter = self._waiter, None
        _wake(waiter)

    def _encoded(self, pts: int) -> None:
        """The encoder took the frame with this `pts` (called from its thread)."""
        with self._lock:
            self._acknowledged = True
            if self._unconfirmed is None or self._unconfirmed[0] != pts:
                return
            self._unconfirmed = None
            waiter, self._waiter = self._waiter, None
        _wake(waiter)

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            with self._lock:
                wait = None
                if self._acknowledged and self._unconfirmed is not None and self._pending is not _END:
                    wait = self._unconfirmed[1] + self.ACK_WAIT - time.monotonic()
                    if wait <= 0:  # no word from the encoder: go on without it
                        wait, self._unconfirmed = None, None
                item = None
                if wait is None:
                    item, self._pending = self._pending, None
                if item is None:
                    loop = asyncio.get_running_loop()
                    future = loop.create_future()
                    self._waiter = (loop, future)
            if item is _END:
                raise MediaStreamError
            if item is not None:
                break
            if wait is None:
                await future
            else:
                await asyncio.wait([future], timeout=wait)
        frame, info = item() if callable(item) else item
        now = time.monotonic()
        pts = max(round((now - self._origin) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        frame.pts, frame.time_base, self._last_pts = pts, VIDEO_TIME_BASE, pts
        frame.opaque = functools.partial(self._encoded, pts)
        with self._lock:
            self._unconfirmed = (pts, now)
        on_sent = self._on_sent() if self._on_sent is not None else None
        if on_sent is not None:
            on_sent(info)
        return frame

    def stop(self) -> None:
        super().stop()
        self._put(_END)


def _wake(waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None) -> None:
    if waiter is not None:
        loop, future = waiter
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
