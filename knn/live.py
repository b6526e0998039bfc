"""One browser session's live state: its classifier, the latest camera frame and prediction.

The page creates one `LiveSession` per browser session and the WebRTC video callback closes over
it. Three threads use it: streamlit-webrtc's worker thread calls `on_frames` with the frames that
arrived since its last call, the model worker embeds and classifies them, and Streamlit's script
thread calls everything else. All shared state sits behind one lock, held only
for cheap steps (one KNN query, one add); embedding, JPEG encoding and drawing happen outside it.
The embedder is shared by all sessions (it is thread-safe); camera frames go through it on the
model worker's two threads (knn.model_worker), the newest frame of each session, fairly across
sessions; everything else here is private to the session. A module-level weak registry
(`live_sessions()`) lets knn.metrics report the sessions still alive. No Streamlit import: the
page wires widgets to these methods.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import json
import logging
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Protocol, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .classifier import ClassifierError, KNNClassifier, Prediction
from .images import ImageError, center_crop_resize, decode_jpeg, encode_jpeg, read_image
from .model_worker import MODEL_WORKER
from .stats import CaptureClock, Stats, StatsSummary

RECORD_SECONDS = 3.0
"""How long the Record button captures frames by default."""
MAX_FRAME_AGE = 3.0
"""Add refuses a frame older than this: the camera has stopped and the user would not expect it."""
MAX_IMAGE_BYTES = 20 * 1024**2
"""Largest uploaded image file accepted (the pixel limit of knn.images applies as well)."""
EMBED_BATCH = 16
"""Images embedded per call when re-embedding or adding uploads: bounds memory, allows progress."""
DEFAULT_ICE_SERVERS = [{"urls": ["stun:stun.l.google.com:19302"]}]
MODEL_WAIT = 0.04
"""Seconds the queued callback waits for its frame's result while the frame still waits for the
model; then it returns no frame, and a newer frame may take the waiting one's place (`on_frames`)."""
RUNNING_WAIT = 0.25
"""Seconds it waits longer when its frame is in the model by then: the result is due, and drawing
it at once rather than on the next camera frame saves up to a frame interval of latency."""
FRAME_WAIT = 10.0
"""Seconds the plain `on_frame` waits for its frame's result (it always waits for it)."""

_LOG = logging.getLogger(__name__)

_SESSIONS: weakref.WeakSet[LiveSession] = weakref.WeakSet()
"""Every LiveSession not yet freed (knn.metrics reports them; a freed one drops out by itself)."""
_SESSION_IDS = itertools.count(1)


def live_sessions() -> list[LiveSession]:
    """The LiveSession objects alive in this process, oldest first."""
    return sorted(list(_SESSIONS), key=lambda s: s.id)


def streaming_sessions() -> int:
    """How many sessions in this process received a camera frame in the last `MAX_FRAME_AGE` s."""
    now = time.monotonic()
    times = (s.last_frame_time for s in list(_SESSIONS))
    return sum(1 for t in times if t is not None and now - t <= MAX_FRAME_AGE)


Progress = Callable[[float, str], None]


class LiveError(ValueError):
    """A request the session cannot do right now; the message tells the user what to do."""


class EmbedderLike(Protocol):
    backbone: str
    dim: int
    input_size: int

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class NeighborView:
    """A stored example behind the current prediction, with its thumbnail (JPEG)."""

    example_id: int
    label: str
    similarity: float
    image: bytes | None


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of a session's state, for the page to draw."""

    classes: tuple[str, ...]
    counts: dict[str, int]
    n_examples: int
    prediction: Prediction | None  # None until a frame has been classified
    neighbors: tuple[NeighborView, ...]
    frame_age: float | None  # seconds since the latest frame; None before the first
    recording: tuple[str, float, float] | None  # (class, seconds left, duration) while recording
    stats: StatsSummary
    notice: str | None  # something the callback wants the user to know
    backbone: str
    dim: int
    k: int
    unknown_threshold: float | None
    mirror: bool

    @property
    def camera_live(self) -> bool:
        return self.frame_age is not None and self.frame_age <= MAX_FRAME_AGE


@dataclass(frozen=True)
class _Latest:
    embedding: np.ndarray  # [dim] float32
    crop: np.ndarray  # input_size² RGB uint8, what Add stores (as JPEG)
    time: float  # time.monotonic() when it arrived
    embedder: EmbedderLike  # the embedder that made `embedding`


@dataclass
class _Recording:
    label: str
    deadline: float
    seconds: float
    added: int = 0


class LiveSession:
    """A browser session's classifier plus what the camera callback last saw.

    Args:
        embedder: shared, thread-safe; `embed`, `backbone`, `dim`, `input_size` are used.
        classifier: starts empty (k=3, no unknown threshold) when omitted.
        classes: classes to create in a new, empty classifier.
    """

    def __init__(
        self,
        embedder: EmbedderLike,
        classifier: KNNClassifier | None = None,
        classes: Sequence[str] = (),
    ) -> None:
        self.id = next(_SESSION_IDS)
        self.created = time.time()
        self._lock = threading.Lock()
        self._embedder = embedder
        self._classifier = classifier if classifier is not None else KNNClassifier(k=3)
        for label in classes:
            self._classifier.add_class(label)
        self._latest: _Latest | None = None
        self._prediction: Prediction | None = None
        self._recording: _Recording | None = None
        self._stats = Stats()
        self._clock = CaptureClock()
        self._last_processed = -math.inf  # time.monotonic() of the last frame through the model
        self._done = threading.Condition(self._lock)  # signalled when the model finishes a frame
        self._submitted = 0  # frames handed to the model worker
        self._started = 0  # the newest of them it has started on
        self._finished = 0  # the newest of them it has finished (or dropped, or failed)
        self._undrawn: float | None = None  # capture time of a result not drawn on a frame yet
        self._fresh = False  # a result not drawn on a frame yet
        self._last_arrival: float | None = None  # time.monotonic() of the latest camera frame
        self._failure: str | None = None  # caption while the model fails on this session's frames
        self._mirror = False
        self._switching = False
        self._notice: str | None = None
        _SESSIONS.add(self)

    # ---- the video callback -------------------------------------------------------------------

    def on_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Embed and classify one camera frame; return it with the prediction drawn on it.

        The plain `video_frame_callback`: it waits for this frame's result (see `on_frames` for
        the queued one, which the page uses). A failure is logged and written on the frame: an
        exception escaping here would stop streamlit-webrtc's worker, and the video with it.
        """
        return self._serve(frame, FRAME_WAIT)

    async def on_frames(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """The `queued_video_frames_callback`: the newest frame goes to the model, the rest are counted.

        streamlit-webrtc (async_processing=True) queues the frames that arrive while the previous
        call runs and hands them over together; only the newest is worth a look, the others are
        counted as dropped, so latency stays flat and the page can show how many were skipped.

        The frame joins the model worker's queue (replacing this session's frame still waiting
        there, also counted as dropped) and this waits up to `MODEL_WAIT` for its result. When
        other sessions' frames keep the model busy longer, this returns no frame (the browser keeps
        showing the last one drawn) and the result is drawn on a later frame: the callback never
        waits behind other sessions for long, and its frame is not stale by its turn.
        """
        if len(frames) > 1:
            now = time.monotonic()
            with self._lock:
                self._stats.record_received(len(frames) - 1, now)
                self._stats.record_dropped(len(frames) - 1)
                for frame in frames[:-1]:  # they arrived too: the latency clock learns from them
                    if frame.time is not None:
                        self._clock.arrived(frame.time, now)
        out = self._serve(frames[-1], MODEL_WAIT, always=False)
        return [] if out is None else [out]

    def _serve(self, frame: av.VideoFrame, wait: float, always: bool = True) -> av.VideoFrame | None:
        """Submit the frame, wait up to `wait` s for its result, draw the newest result on it.

        Without a result newer than the last one drawn, and unless `always`, returns None: the
        picture would only change under the same caption. The browser keeps showing the last
        result (with knn.rtc.send_new_frames_only, nothing is sent until the next one), and the
        cores that encoding and decoding a frame would take are left to the model.
        """
        try:
            now = time.monotonic()
            with self._lock:
                self._stats.record_received(1, now)
                self._last_arrival = now
                if frame.time is not None:
                    self._clock.arrived(frame.time, now)
                switching = self._switching
            if not switching:
                self._submit(frame, now, wait, any_result=not always)
                with self._lock:
                    fresh = self._fresh
                if not (fresh or always):
                    return None
            return self._draw(frame)
        except Exception as exc:
            return overlay(frame, self._failed(exc), None, (255, 80, 80), False)

    def _submit(self, frame: av.VideoFrame, now: float, wait: float, any_result: bool) -> None:
        """Hand the frame to the model worker and wait up to `wait` s for its result (or, with
        `any_result`, for any result not drawn yet: an earlier frame's, finishing meanwhile, is
        then drawn at once rather than after the wait)."""
        with self._lock:
            self._submitted += 1
            ticket = self._submitted
            last_served = self._last_processed
        job = functools.partial(self._run_model, frame, now, ticket)
        if MODEL_WORKER.run_now(self.id, job):  # the model was idle: no hand-over
            return
        replaced = MODEL_WORKER.submit(self.id, last_served, job)
        with self._lock:
            if replaced:  # its frame never reached the model
                self._stats.record_dropped(1)
            if not self._done.wait_for(lambda: self._finished >= ticket or (any_result and self._fresh), timeout=wait):
                if self._started >= ticket:  # in the model already: its result is moments away
                    self._done.wait_for(lambda: self._finished >= ticket, timeout=RUNNING_WAIT)

    def _run_model(self, frame: av.VideoFrame, arrived: float, ticket: int) -> None:
        """Embed and classify a frame (on a model worker thread, or the callback's own when the
        model was idle); publish the result."""
        try:
            with self._lock:
                self._started = max(self._started, ticket)
                embedder, switching = self._embedder, self._switching
            if switching:  # the stored examples are being re-embedded for another backbone
                return
            crop = model_input(frame, embedder.input_size)
            t0 = time.perf_counter()
            embedding = np.asarray(embedder.embed(crop), dtype=np.float32)[0]
            embed_seconds = time.perf_counter() - t0
            recording = self._recording  # read unlocked to decide on the JPEG; rechecked below
            jpeg = encode_jpeg(crop, size=crop.shape[0]) if recording and arrived < recording.deadline else None
            with self._lock:
                if embedder is not self._embedder or self._switching:
                    return
                t1 = time.perf_counter()
                prediction = self._classifier.predict(embedding)
                knn_seconds = time.perf_counter() - t1
                self._latest = _Latest(embedding, crop, arrived, embedder)
                self._prediction = prediction
                self._failure = None
                self._last_processed = time.monotonic()
                self._undrawn = frame.time  # its latency is taken when the result is first drawn
                self._fresh = True
                self._record_frame(embedding, jpeg, arrived)
                self._stats.record_processed(embed_seconds, knn_seconds, arrived)
        except Exception as exc:
            failure = self._failed(exc)
            with self._lock:
                self._failure = failure
        finally:
            with self._lock:
                self._finished = max(self._finished, ticket)
                self._done.notify_all()

    def _failed(self, exc: Exception) -> str:
        """Log a frame's failure and tell the page; the caption for the video."""
        _LOG.exception("processing a camera frame failed")
        with self._lock:
            self._notice = f"Processing a camera frame failed: {exc}"
        return f"error: {type(exc).__name__}"

    def _draw(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The frame with the latest result as its caption; the first drawing of a result times it."""
        with self._lock:
            prediction, failure, mirror, switching = self._prediction, self._failure, self._mirror, self._switching
            capture, self._undrawn, self._fresh = self._undrawn, None, False
        if switching:
            out = overlay(frame, "switching backbone…", None, (255, 200, 0), mirror)
        elif failure is not None:
            out = overlay(frame, failure, None, (255, 80, 80), mirror)
        elif prediction is None:
            out = overlay(frame, "starting…", None, (255, 200, 0), mirror)
        else:
            out = overlay(frame, *_caption(prediction), mirror)
        if capture is not None:
            done = time.monotonic()
            with self._lock:
                latency = self._clock.latency(capture, done)
                if latency is not None:
                    self._stats.record_latency(latency)
        return out

    def _record_frame(self, embedding: np.ndarray, jpeg: bytes | None, now: float) -> None:
        """Add the frame to the recording class (lock held)."""
        rec = self._recording
        if rec is None:
            return
        if now >= rec.deadline:
            self._recording = None
            self._notice = f"Recorded {rec.added} examples into “{rec.label}”."
            return
        if jpeg is None:  # the recording started while this frame was being embedded
            return
        try:
            self._classifier.add(embedding, rec.label, jpeg)
            rec.added += 1
        except ClassifierError as exc:  # e.g. the per-class cap is reached
            self._recording = None
            self._notice = f"Recording into “{rec.label}” stopped after {rec.added} examples: {exc}"

    # ---- adding examples ----------------------------------------------------------------------

    def add_latest(self, label: str) -> int:
        """Add the latest camera frame to class `label`; returns the example id."""
        with self._lock:
            self._check_class(label)
            latest = self._fresh_latest("Add")
        jpeg = encode_jpeg(latest.crop, size=latest.crop.shape[0])
        with self._lock:
            if latest.embedder is not self._embedder:
                raise LiveError("The backbone changed while adding: press Add again.")
            self._check_class(label)
            example_id = self._classifier.add(latest.embedding, label, jpeg)
            self._repredict()
            return example_id

    def start_recording(self, label: str, seconds: float = RECORD_SECONDS) -> None:
        """Add every processed frame to `label` for the next `seconds` (in the callback)."""
        if not seconds > 0:
            raise LiveError(f"Recording needs a positive duration, got {seconds}")
        with self._lock:
            self._check_class(label)
            self._fresh_latest("Record")
            self._recording = _Recording(label, time.monotonic() + seconds, seconds)
            self._notice = None

    def stop_recording(self) -> None:
        with self._lock:
            self._recording = None

    def add_images(
        self, label: str, files: Iterable[tuple[str, bytes]], progress: Progress | None = None
    ) -> tuple[list[int], list[str]]:
        """Add uploaded image files to `label`.

        Returns the new example ids and one message per refused file (not an image, damaged,
        or too large); the other files are still added.
        """
        with self._lock:
            self._check_class(label)
            embedder = self._embedder
        size = embedder.input_size
        crops: list[np.ndarray] = []
        errors: list[str] = []
        for name, data in files:
            if len(data) > MAX_IMAGE_BYTES:
                errors.append(
                    f"{name} is {len(data) / 1024**2:.2g} MB; the limit is {MAX_IMAGE_BYTES / 1024**2:.2g} MB per image"
                )
                continue
            named = _NamedBytes(data)
            named.name = name  # read_image names the file in its messages
            try:
                crops.append(center_crop_resize(read_image(named), size))
            except ImageError as exc:
                errors.append(str(exc))
        if not crops:
            return [], errors
        embeddings = _embed_in_batches(embedder, crops, progress, "Embedding uploaded images")
        jpegs = [encode_jpeg(c, size=size) for c in crops]
        with self._lock:
            if embedder is not self._embedder:
                raise LiveError("The backbone changed while adding the images: upload them again.")
            self._check_class(label)
            ids = self._classifier.add_many(embeddings, [label] * len(crops), jpegs)
            self._repredict()
        return ids, errors

    # ---- classes and settings -----------------------------------------------------------------

    def add_class(self, label: str) -> None:
        with self._lock:
            self._classifier.add_class(label)
            self._repredict()

    def rename_class(self, old: str, new: str) -> None:
        with self._lock:
            self._classifier.rename_class(old, new)
            if self._recording is not None and self._recording.label == old:
                self._recording.label = new
            self._repredict()

    def remove_class(self, label: str) -> None:
        with self._lock:
            # Stop first: adding to a missing class would quietly create it again.
            if self._recording is not None and self._recording.label == label:
                self._recording = None
            self._classifier.remove_class(label)
            self._repredict()

    def clear_class(self, label: str) -> None:
        with self._lock:
            if self._recording is not None and self._recording.label == label:
                self._recording = None
            self._classifier.clear_class(label)
            self._repredict()

    def remove_example(self, example_id: int) -> None:
        with self._lock:
            self._classifier.remove(example_id)
            self._repredict()

    def set_k(self, k: int) -> None:
        with self._lock:
            self._classifier.k = k
            self._repredict()

    def set_unknown_threshold(self, threshold: float | None) -> None:
        with self._lock:
            self._classifier.unknown_threshold = threshold
            self._repredict()

    def set_mirror(self, mirror: bool) -> None:
        with self._lock:
            self._mirror = bool(mirror)

    def replace_classifier(self, classifier: KNNClassifier) -> None:
        """Use `classifier` (e.g. a restored project) instead of the current one."""
        with self._lock:
            if classifier.dim is not None and classifier.dim != self._embedder.dim:
                raise LiveError(
                    f"These examples have {classifier.dim}-dimensional embeddings; "
                    f"{self._embedder.backbone} makes {self._embedder.dim}-dimensional ones."
                )
            self._classifier = classifier
            self._recording = None
            self._repredict()

    def set_embedder(self, embedder: EmbedderLike, progress: Progress | None = None) -> int:
        """Switch backbone: re-embed every stored example from its stored image.

        Examples stored without an image cannot be re-embedded and are dropped; returns how many.
        While this runs the callback passes frames through unclassified. Call it from the page
        thread (the only thread that edits examples), so nothing is added meanwhile.
        """
        with self._lock:
            if embedder is self._embedder:
                return 0
            self._switching = True
            self._recording = None
            old = self._classifier
        try:
            examples = old.examples()
            usable = [e for e in examples if e.image is not None]
            images = [decode_jpeg(e.image) for e in usable]
            embeddings = (
                _embed_in_batches(embedder, images, progress, "Re-embedding examples")
                if images
                else np.zeros((0, embedder.dim), np.float32)
            )
            new = KNNClassifier(
                k=old.k,
                unknown_threshold=old.unknown_threshold,
                max_examples_per_class=getattr(old, "max_examples_per_class", 1000),
            )
            for label in old.classes:
                new.add_class(label)
            if usable:
                new.add_many(embeddings, [e.label for e in usable], [e.image for e in usable])
        except BaseException:
            with self._lock:
                self._switching = False
            raise
        with self._lock:
            self._classifier = new
            self._embedder = embedder
            self._latest = None
            self._prediction = None
            self._stats.reset_timings()
            self._switching = False
        return len(examples) - len(usable)

    # ---- reading ------------------------------------------------------------------------------

    @property
    def classifier(self) -> KNNClassifier:
        """The current classifier, for reads (it is thread-safe itself); edit through methods here."""
        return self._classifier

    @property
    def embedder(self) -> EmbedderLike:
        return self._embedder

    @property
    def last_frame_time(self) -> float | None:
        """time.monotonic() when the latest camera frame arrived; None before the first."""
        return self._last_arrival

    @property
    def mirror(self) -> bool:
        return self._mirror

    def snapshot(self) -> Snapshot:
        """A consistent copy of the state, taken under the lock, for the page to draw."""
        now = time.monotonic()
        with self._lock:
            clf = self._classifier
            rec = self._recording
            recording = (rec.label, rec.deadline - now, rec.seconds) if rec and now < rec.deadline else None
            counts = clf.counts()
            snap = Snapshot(
                classes=tuple(clf.classes),
                counts=counts,
                n_examples=sum(counts.values()),
                prediction=self._prediction,
                neighbors=(),
                frame_age=None if self._latest is None else now - self._latest.time,
                recording=recording,
                stats=self._stats.summary(now),
                notice=self._notice,
                backbone=self._embedder.backbone,
                dim=self._embedder.dim,
                k=clf.k,
                unknown_threshold=clf.unknown_threshold,
                mirror=self._mirror,
            )
        # Thumbnails are looked up outside the lock: the classifier has its own.
        neighbors = _neighbor_views(clf, snap.prediction)
        return dataclasses.replace(snap, neighbors=neighbors)

    def metrics(self, latencies_since: int = 0) -> dict:
        """Numbers for monitoring (knn.metrics): counters, rates, timings, latencies.

        `latencies` are the capture-to-overlay latencies (ms) recorded after the first
        `latencies_since`; pass back `latencies_recorded` next time to get only newer ones.
        """
        now = time.monotonic()
        with self._lock:
            s = self._stats.summary(now)
            latencies, lost = self._stats.latencies_since(latencies_since)
            recorded = self._stats.latencies_recorded
            age = None if self._latest is None else now - self._latest.time
            n_examples = len(self._classifier)
        return {
            "id": self.id,
            "created": self.created,
            "frame_age": age,
            "examples": n_examples,
            **dataclasses.asdict(s),
            "latencies": [round(float(v), 2) for v in latencies],
            "latencies_lost": lost,
            "latencies_recorded": recorded,
        }

    def take_notice(self) -> str | None:
        """The callback's latest notice, once."""
        with self._lock:
            notice, self._notice = self._notice, None
            return notice

    # ---- internals (lock held) ----------------------------------------------------------------

    def _check_class(self, label: str) -> None:
        if label not in self._classifier.classes:
            raise LiveError(f"There is no class “{label}” (it may have been renamed or deleted).")

    def _fresh_latest(self, action: str) -> _Latest:
        latest = self._latest
        if latest is None:
            raise LiveError(
                f"No camera frame yet: press START on the camera (and allow camera access), "
                f"then {action}."
            )
        if time.monotonic() - latest.time > MAX_FRAME_AGE:
            raise LiveError(f"The camera is not sending frames (is it stopped?): press START, then {action}.")
        if latest.embedder is not self._embedder:
            raise LiveError(f"The backbone just changed: wait for the next frame, then {action}.")
        return latest

    def _repredict(self) -> None:
        """Classify the latest frame again, so the page never shows a class that is gone."""
        if self._latest is not None and self._latest.embedder is self._embedder:
            self._prediction = self._classifier.predict(self._latest.embedding)
        else:
            self._prediction = None


def ice_servers(secret: object = None, env: str | None = None) -> list[dict]:
    """ICE servers for WebRTC: a secret's value first, then the JSON of env KNN_ICE_SERVERS.

    Both are lists of RTCIceServer dicts ({"urls": [...], "username": ..., "credential": ...}).
    An empty list is valid (loopback, tests). Falls back to Google's public STUN server.
    """
    if secret is not None:
        value = secret
        where = "the ice_servers secret"
    else:
        env = os.environ.get("KNN_ICE_SERVERS") if env is None else env
        if env is None or not env.strip():
            return [dict(s) for s in DEFAULT_ICE_SERVERS]
        where = "KNN_ICE_SERVERS"
        try:
            value = json.loads(env)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(value, (list, tuple)) or not all(
        hasattr(s, "get") and s.get("urls") for s in value
    ):
        raise ValueError(f'{where} must be a list of {{"urls": ...}} objects, got {value!r}')
    return [dict(s) for s in value]


# ---- helpers ------------------------------------------------------------------------------------


class _NamedBytes(io.BytesIO):
    """An uploaded file's bytes; PIL quotes repr(file) in its errors, so make that the file name."""

    name = ""

    def __repr__(self) -> str:
        return repr(self.name)



def _embed_in_batches(
    embedder: EmbedderLike, images: Sequence[np.ndarray], progress: Progress | None, what: str
) -> np.ndarray:
    parts = []
    for start in range(0, len(images), EMBED_BATCH):
        parts.append(np.asarray(embedder.embed(list(images[start : start + EMBED_BATCH])), np.float32))
        if progress is not None:
            done = min(start + EMBED_BATCH, len(images))
            progress(done / len(images), f"{what}: {done} of {len(images)}")
    return np.concatenate(parts)


def _neighbor_views(clf: KNNClassifier, prediction: Prediction | None) -> tuple[NeighborView, ...]:
    if prediction is None or not prediction.neighbors:
        return ()
    images: dict[int, bytes | None] = {}
    for label in {n.label for n in prediction.neighbors}:
        try:
            images.update((e.example_id, e.image) for e in clf.examples(label))
        except ClassifierError:  # the class went away since the prediction
            pass
    return tuple(
        NeighborView(n.example_id, n.label, n.similarity, images.get(n.example_id))
        for n in prediction.neighbors
        if n.example_id in images
    )


def model_input(frame: av.VideoFrame, size: int) -> np.ndarray:
    """The frame's centre square at size×size, RGB uint8: what the model sees and Add stores.

    Scaled by PyAV (libswscale, bilinear) straight from the camera's YUV to RGB at the model's
    size, then the centre columns (or rows) are cut: about 0.6 ms for 640×480, against 2 ms for
    converting the whole frame to RGB and resizing its centre square with PIL. The result is
    a fresh array (the frame's pixels are not shared).
    """
    width, height = frame.width, frame.height
    scale = size / min(width, height)
    out_w, out_h = max(size, round(width * scale)), max(size, round(height * scale))
    rgb = frame.reformat(width=out_w, height=out_h, format="rgb24").to_ndarray()
    left, top = (out_w - size) // 2, (out_h - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def _caption(prediction: Prediction) -> tuple[str, float | None, tuple[int, int, int]]:
    """What to write on the frame: text, confidence (for a bar) and colour."""
    if not any(prediction.confidences.values()) and math.isnan(prediction.similarity):
        return "no examples yet: add some", None, (255, 200, 0)
    if prediction.label is None:
        return f"unknown (similarity {prediction.similarity:.2f})", None, (255, 120, 80)
    confidence = prediction.confidences.get(prediction.label, 0.0)
    return f"{prediction.label}  {confidence:.0%}", confidence, (80, 220, 120)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def overlay(
    frame: av.VideoFrame,
    text: str,
    fraction: float | None,
    colour: tuple[int, int, int],
    mirror: bool,
) -> av.VideoFrame:
    """The frame with a caption banner across its top (and a confidence bar), as a new yuv420p frame.

    The camera's frames arrive as yuv420p and aiortc encodes yuv420p, so the banner is written
    into the Y, U and V planes directly: a copy of the planes, the banner's rows replaced by a
    cached, pre-converted image of it, and a new frame. About 0.1 ms for 640×480, against
    ~1.3 ms for drawing on an RGB copy that the encoder then converts back to yuv420p, a
    conversion it repeats for every camera frame until the next result replaces this one.
    """
    width, height = frame.width, frame.height
    if width % 2 or height % 2:  # 4:2:0 planes need even sizes; cameras give them, but be safe
        return _draw(frame.to_ndarray(format="rgb24"), text, fraction, colour, mirror)
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes = frame.to_ndarray()  # a new array: all of Y, then U, then V
    y, u, v = _yuv_views(planes, width, height)
    if mirror:  # the picture, not the banner
        for plane in (y, u, v):
            plane[:] = plane[:, ::-1]
    band_y, band_u, band_v = _banner(text, None if fraction is None else round(fraction * 100), colour, width, _band(height))
    y[: len(band_y)] = band_y
    u[: len(band_u)] = band_u
    v[: len(band_v)] = band_v
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def _yuv_views(planes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable views of the Y, U and V planes in a yuv420p `to_ndarray()` array (even sizes)."""
    flat = planes.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    )


def _band(height: int) -> int:
    """The caption banner's height in pixels (even, for 4:2:0 chroma)."""
    band = max(24, height // 12)
    return band + band % 2


@lru_cache(maxsize=64)
def _banner(
    text: str, percent: int | None, colour: tuple[int, int, int], width: int, band: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The banner's Y, U and V planes (read-only), drawn once per caption and frame width."""
    image = Image.new("RGB", (width, band), (24, 24, 24))
    ImageDraw.Draw(image).text((8, band // 8), text, font=_font(int(band * 0.6)), fill=colour)
    if percent:
        ImageDraw.Draw(image).rectangle((0, band - 4, round(width * max(0, min(100, percent)) / 100) - 1, band - 1), fill=colour)
    y, u, v = _yuv_views(av.VideoFrame.from_image(image).reformat(format="yuv420p").to_ndarray(), width, band)
    for plane in (y, u, v):
        plane.flags.writeable = False
    return y, u, v


def _draw(
    rgb: np.ndarray,
    text: str,
    fraction: float | None,
    colour: tuple[int, int, int],
    mirror: bool,
) -> av.VideoFrame:
    """Write `text` on a darkened band at the top of the frame, with a confidence bar under it."""
    # A copy: the pixels may be the incoming frame's own buffer. Mirror the picture, not the text.
    out = np.array(rgb[:, ::-1] if mirror else rgb)
    height, width = out.shape[:2]
    band = max(24, height // 12)
    top = out[:band]
    np.right_shift(top, 1, out=top)  # darken in place: readable text on any background
    image = Image.fromarray(top)
    ImageDraw.Draw(image).text((8, band // 8), text, font=_font(int(band * 0.6)), fill=colour)
    out[:band] = np.asarray(image)
    if fraction is not None:
        out[band - 4 : band, : int(width * max(0.0, min(1.0, fraction)))] = colour
    return av.VideoFrame.from_ndarray(out, format="rgb24")
