"""Steady scenes (knn.live.steady) through the real pipeline: a still scene is not embedded again,
a changed one is at once, and the model still sees every session at least every 0.5 s.

Frames are real photos (../shared) as av.VideoFrame objects, held the way a hand holds them
(harness/webcam.py `handheld`: sensor noise every frame, a few pixels of tremor), handed to the
session's CameraSink or `FramePipeline.on_frame` (what the page registers), embedded by the real
model. Time is the session's injectable clock, advanced 1/30 s per frame, so nothing here depends
on how fast this machine is: the assertions are on counts.
"""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from PIL import Image

from harness.webcam import fit, handheld, rgb_to_i420
from knn.live.session import LiveSession
from knn.live.steady import STILL_MAD, ModelAnswer, SteadyGate, mean_abs_diff, thumbnail
from knn.live.worker import ModelWorker
from tests.frames import SlowEmbedder, photo_frame, show, wait_until

FPS = 30
BOUND = 0.5
"""Seconds: the model must see a frame of every streaming session at least this often (issue 13)."""
GESTURES = ("rock", "paper", "scissors")


class Clock:
    """A monotonic clock the test moves one camera frame at a time (exact at every half second)."""

    def __init__(self) -> None:
        self.frames = 0

    def __call__(self) -> float:
        return 1000.0 + self.frames / FPS

    def tick(self) -> None:
        self.frames += 1


def i420(data: bytes, width: int = 640, height: int = 480, pts: int | None = None) -> av.VideoFrame:
    """Raw I420 bytes (harness/webcam.py's layout) as a decoded camera frame."""
    frame = av.VideoFrame(width, height, "yuv420p")
    luma = width * height
    for plane, part in zip(frame.planes, (data[:luma], data[luma : luma * 5 // 4], data[luma * 5 // 4 :]), strict=True):
        rows = np.frombuffer(part, np.uint8).reshape(plane.height, plane.width)
        padded = np.zeros((plane.height, plane.line_size), np.uint8)
        padded[:, : plane.width] = rows
        plane.update(padded.tobytes())
    if pts is not None:
        frame.pts, frame.time_base = pts, fractions.Fraction(1, 90_000)
    return frame


@pytest.fixture
def clock() -> Clock:
    return Clock()


def taught(embedder, images, clock: Clock, worker: ModelWorker) -> LiveSession:
    """A session taught each gesture from its photo, shown still and centred: the prediction names
    the photo the model last saw (what is tested here is when it looks, not how well it knows)."""
    session = LiveSession(embedder, classes=list(GESTURES), worker=worker, clock=clock)
    for label, image in zip(GESTURES, images, strict=True):
        clock.tick()
        show(session, i420(rgb_to_i420(fit(image, 640, 480))))
        session.add_latest(label)
    return session


class Frames(MediaStreamTrack):
    """A camera track that gives its next frame only when the test says so (`turn`), and moves the
    clock one frame on as it does: every frame is answered (and the model done with it) before the
    next one arrives."""

    kind = "video"

    def __init__(self, frames, clock: Clock) -> None:
        super().__init__()
        self._frames = iter(frames)
        self._clock = clock
        self.turn = asyncio.Event()

    async def recv(self) -> av.VideoFrame:
        await self.turn.wait()
        self.turn.clear()
        frame = next(self._frames, None)
        if frame is None:
            self.stop()
            raise MediaStreamError
        self._clock.tick()
        return frame


def settle(worker: ModelWorker) -> None:
    """Wait until the model is done with every frame handed to it (a still frame sent to refresh
    the answer is answered before the model sees it)."""
    wait_until(lambda: worker.busy() == 0, 20, "the model worker to finish")


def stream(
    session: LiveSession, frames: list[av.VideoFrame], clock: Clock, worker: ModelWorker
) -> list[tuple[bool, str | None]]:
    """Each frame through the session's CameraSink, as the page wires it; per frame whether the
    model saw it and the prediction after it."""

    async def run() -> list[tuple[bool, str | None]]:
        track = Frames(frames, clock)
        sink = session.pipeline.sink
        sink.addTrack(track)
        sink.start()
        seen = []
        try:
            for _ in frames:
                before = session.snapshot(neighbors=False).stats.frames_processed
                track.turn.set()
                await asyncio.wait_for(session.pipeline.output.recv(), 20)
                settle(worker)
                snap = session.snapshot(neighbors=False)
                seen.append((snap.stats.frames_processed > before, snap.prediction.label))
        finally:
            sink.stop()
        return seen

    return asyncio.run(run())


def test_the_thumbnail_sees_the_same_scene_at_any_camera_size_and_format(photos):
    big = photo_frame(photos["rock"][10])
    small = big.reformat(width=320, height=240)
    rgb = big.reformat(format="rgb24")
    other = photo_frame(photos["paper"][30])
    assert thumbnail(big).shape == (16, 16)
    assert mean_abs_diff(thumbnail(big), thumbnail(small)) < STILL_MAD / 2  # Chromium may scale its camera down
    assert mean_abs_diff(thumbnail(big), thumbnail(rgb)) < STILL_MAD / 2
    assert mean_abs_diff(thumbnail(big), thumbnail(other)) > 2 * STILL_MAD


@pytest.mark.parametrize("size", [(640, 480), (3840, 2160), (320, 240)])
def test_the_thumbnail_is_the_mean_grey_of_each_block_at_every_size(photos, size):
    """The block sums are 16-bit where a block's rows fit: no overflow, whatever the frame's size,
    down to one block of the whole square (32-bit sums) and a white frame (the largest sums)."""
    for frame in (
        photo_frame(photos["rock"][10]).reformat(width=size[0], height=size[1]),
        av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 255, np.uint8), format="rgb24").reformat(
            format="yuv420p"
        ),
    ):
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        for side in (16, 1):
            block = min(luma.shape) // side
            top, left = (luma.shape[0] - block * side) // 2, (luma.shape[1] - block * side) // 2
            square = luma[top : top + block * side, left : left + block * side].astype(np.float64)
            expected = square.reshape(side, block, side, block).mean(axis=(1, 3))
            np.testing.assert_allclose(thumbnail(frame, side), expected, rtol=1e-6)


def test_a_hand_held_scene_costs_the_model_twice_a_second_and_each_change_is_embedded_at_once(embedder, photos, clock):
    images = [Image.open(photos[label][i]) for label, i in zip(GESTURES, (10, 30, 50), strict=True)]
    worker = ModelWorker("test-steady-video")
    session = taught(embedder, images, clock, worker)
    raw, segments = handheld(images, list(GESTURES), hold_seconds=(1.0, 2.0), seed=3)
    frames = [i420(data, pts=3000 * n) for n, data in enumerate(raw)]
    before = session.snapshot(neighbors=False).stats
    logged = session.pipeline.answers(0)[2]
    seen = stream(session, frames, clock, worker)
    stats = session.snapshot(neighbors=False).stats

    assert len(seen) == len(frames) == stats.frames_answered - before.frames_answered  # every frame answered
    answers = session.pipeline.answers(logged)[0]
    answered_fresh = sum(1 for a in answers if a[2])  # answered by the model: the changes
    assert answered_fresh + stats.frames_reused - before.frames_reused == len(frames)
    assert stats.frames_dropped == 0
    fresh = [n for n, (was_fresh, _) in enumerate(seen) if was_fresh]  # the model saw these
    gaps = np.diff([-1, *fresh, len(frames)]) / FPS
    assert gaps.max() <= BOUND + 1.5 / FPS  # the model saw the session at least every 0.5 s
    for segment in segments:
        if segment.kind == "move":  # the scene changed: its first frame went to the model
            assert segment.start in fresh, segment
            continue
        # Held still: noise and tremor never called the model; only the 0.5 s refresh did (the
        # hold's first two frames may still differ from the sweep before them).
        for n in fresh:
            if segment.start + 2 <= n < segment.end:
                previous = max(f for f in fresh if f < n)
                assert (n - previous) / FPS >= BOUND - 1e-9, (segment, n, previous)
        assert seen[segment.end - 1][1] == segment.label  # the prediction followed the photo
    assert len(fresh) == stats.frames_processed - before.frames_processed < len(frames) / 4, (len(fresh), len(frames))


def test_frames_that_waited_behind_a_changed_scene_reuse_its_answer(embedder, photos, clock):
    worker = ModelWorker("test-steady-wait", 1)
    session = LiveSession(SlowEmbedder(embedder, 0.3), classes=["rock"], worker=worker, clock=clock)
    images = [Image.open(photos["rock"][10]), Image.open(photos["paper"][30])]
    raw, _ = handheld(images, ["rock", "paper"], hold_seconds=(1.0, 1.0), seed=4)
    held = [i420(next(raw)) for _ in range(4)]  # four frames of one held photo
    for n, frame in enumerate(held):  # the first enters the model; each later one replaces the one waiting
        clock.tick()
        session.pipeline.on_frame(frame)
        if n == 0:
            wait_until(lambda: worker.waiting() == 0, 5, "the first frame to enter the model")
    wait_until(lambda: session.snapshot().stats.frames_reused == 1, 10, "the waiting frame to reuse the answer")
    stats = session.snapshot().stats
    assert (stats.frames_received, stats.frames_processed, stats.frames_reused, stats.frames_dropped) == (4, 1, 1, 2)


def test_new_examples_send_the_next_still_frame_to_the_model(embedder, photos, clock):
    session = LiveSession(embedder, classes=["rock", "paper"], worker=ModelWorker("test-steady-add"), clock=clock)
    images = [Image.open(photos["rock"][10]), Image.open(photos["paper"][30])]
    raw, _ = handheld(images, ["rock", "paper"], hold_seconds=(1.0, 1.0), seed=5)
    held = [i420(next(raw)) for _ in range(6)]
    for frame in held[:3]:
        clock.tick()
        show(session, frame)
    assert session.snapshot().stats.frames_processed == 1  # one scene, one model pass
    session.add_latest("rock")  # Add stores the frame the model embedded
    clock.tick()
    captioned = show(session, held[3])
    snap = session.snapshot()
    assert snap.stats.frames_processed == 2 and snap.prediction.label == "rock"  # the classifier changed
    clock.tick()
    again = show(session, held[4])
    snap = session.snapshot()
    assert snap.stats.frames_processed == 2  # still again: the new answer is reused
    assert snap.frame_age == pytest.approx(1 / FPS)  # Add would take the frame the model saw
    band = captioned.to_ndarray()[:20], again.to_ndarray()[:20]  # the caption's rows (Y plane)
    assert np.array_equal(*band)  # the same caption on the reused frame


def test_record_adds_the_frames_the_model_saw(embedder, photos, clock):
    worker = ModelWorker("test-steady-record")
    session = LiveSession(embedder, classes=["rock"], worker=worker, clock=clock)
    image = Image.open(photos["rock"][10])
    raw, _ = handheld([image, image], ["rock", "rock"], hold_seconds=(2.0, 2.0), seed=6)
    held = [i420(next(raw)) for _ in range(FPS * 2)]
    show(session, held[0])
    session.start_recording("rock", seconds=1.2)
    before = session.snapshot().stats.frames_processed
    for frame in held[1:37]:  # the frames of the recording's 1.2 s
        clock.tick()
        show(session, frame)
        settle(worker)
    seen = session.snapshot().stats.frames_processed - before
    for frame in held[37:]:
        clock.tick()
        show(session, frame)
        settle(worker)
    recorded = session.classifier.counts()["rock"]
    # 1.2 s of a still scene: the model saw it at 0.5 and 1.0 s (the refresh), so two examples,
    # not 36 copies of one picture.
    assert recorded == seen == 2
    assert "Recorded 2 examples" in session.snapshot().notice


def test_the_gate_replays_the_rules_on_its_own():
    gate = SteadyGate(threshold=2.0, refresh=0.5)
    thumb = np.zeros((16, 16), np.float32)
    assert gate.on_arrival(thumb, 0.0) == (None, True)  # nothing answered yet: the model
    answer = ModelAnswer(thumb, ("a", None, (0, 0, 0)), "a", 0.0)
    gate.learn(answer, gate.generation)
    assert gate.on_arrival(thumb + 1.9, 0.1) == (answer, False)  # under the threshold: reused
    assert gate.on_arrival(thumb + 2.1, 0.2) == (None, True)  # over it: a new scene for the model
    assert gate.on_arrival(thumb, 0.3) == (answer, False)  # like the answer, and the model was just asked
    assert gate.on_arrival(thumb, 0.75) == (answer, True)  # 0.5 s since the model was asked (0.2): reused
    assert gate.on_arrival(thumb, 0.8) == (answer, False)  # and refreshed; the frames after it wait for that
    old = gate.generation
    gate.forget()
    gate.learn(ModelAnswer(thumb, ("a", None, (0, 0, 0)), "a", 0.8), old)  # began before the forget: ignored
    assert gate.on_arrival(thumb, 0.9) == (None, True)


def test_with_steady_scenes_off_the_model_sees_every_still_frame(embedder, photos, clock):
    session = LiveSession(embedder, classes=["rock"], worker=ModelWorker("test-steady-off"), clock=clock, steady=False)
    raw, _ = handheld([Image.open(photos["rock"][10])] * 2, ["rock", "rock"], hold_seconds=(1.0, 1.0), seed=7)
    for _ in range(5):
        clock.tick()
        show(session, i420(next(raw)))
    stats = session.snapshot().stats
    assert (stats.frames_processed, stats.frames_reused) == (5, 0)
