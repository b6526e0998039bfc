"""LiveSession: one browser session's classifier, fed camera frames by the video callback."""
from __future__ import annotations

import asyncio
import fractions
import io
import threading
import time

import av
import numpy as np
import pytest
from PIL import Image

import knn.live as live
from knn.classifier import ClassifierError
from knn.folders import class_folders
from knn.images import read_image
from knn.live import LiveError, LiveSession, ice_servers


class FakeEmbedder:
    """Mean colour of each quadrant: cheap, deterministic, and enough to tell solid colours apart."""

    input_size = 32

    def __init__(self, backbone: str = "fake", delay: float = 0.0):
        self.backbone = backbone
        self.dim = 12
        self.delay = delay
        self.calls = 0

    def embed(self, images):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        out = []
        for im in batch:
            h, w = im.shape[0] // 2, im.shape[1] // 2
            quads = [im[:h, :w], im[:h, w:], im[h:, :w], im[h:, w:]]
            out.append(np.concatenate([q.reshape(-1, 3).mean(0) for q in quads]) + 1.0)
        return np.asarray(out, np.float32)


def solid(colour, width=64, height=48) -> av.VideoFrame:
    """A camera frame of one colour, in the camera's pixel format."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = colour
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


@pytest.fixture()
def session() -> LiveSession:
    return LiveSession(FakeEmbedder(), classes=["red", "blue"])


def test_nothing_to_add_before_the_camera_starts(session):
    with pytest.raises(LiveError, match="press START"):
        session.add_latest("red")
    with pytest.raises(LiveError, match="press START"):
        session.start_recording("red")
    snap = session.snapshot()
    assert snap.prediction is None and snap.frame_age is None and not snap.camera_live
    assert snap.classes == ("red", "blue") and snap.n_examples == 0


def test_frame_in_annotated_frame_out_and_add_latest(session):
    out = session.on_frame(solid(RED))
    assert (out.width, out.height) == (64, 48)
    snap = session.snapshot()
    assert snap.camera_live and snap.prediction.label is None  # no examples yet
    assert session.add_latest("red") == 0
    session.on_frame(solid(BLUE))
    session.add_latest("blue")
    session.on_frame(solid(RED))
    snap = session.snapshot()
    assert snap.prediction.label == "red"
    assert snap.counts == {"red": 1, "blue": 1}
    assert snap.neighbors[0].label == "red" and snap.neighbors[0].image[:2] == b"\xff\xd8"  # a JPEG
    assert snap.stats.frames_processed == 3 and snap.stats.frames_dropped == 0
    # The stored image is the frame's centre crop at the model's input size.
    stored = session.classifier.examples("red")[0].image
    assert Image.open(__import__("io").BytesIO(stored)).size == (32, 32)


def test_the_prediction_is_drawn_on_the_returned_frame(session):
    frame = solid(GREEN, 320, 240)
    blank = session.on_frame(frame).to_ndarray(format="rgb24")
    session.add_latest("red")
    labelled = session.on_frame(frame).to_ndarray(format="rgb24")
    band = max(24, 240 // 12)
    below = labelled[band + 2 :].astype(int)
    assert np.abs(below - np.array(GREEN)).max() < 12  # the picture itself is untouched
    assert labelled[:band].mean() < blank[band + 2 :].mean()  # a darkened caption band
    assert not np.array_equal(labelled[:band], blank[:band])  # with a different caption


def test_a_failing_frame_is_reported_not_raised(session, monkeypatch):
    """An exception in the callback would stop streamlit-webrtc's worker and the video with it."""

    def broken(images):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(session.embedder, "embed", broken)
    out = session.on_frame(solid(RED))
    assert (out.width, out.height) == (64, 48)
    assert "model exploded" in session.take_notice()
    monkeypatch.undo()
    session.on_frame(solid(RED))
    assert session.snapshot().camera_live


def test_mirror_flips_the_picture(session):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = RED  # left half red
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    plain = session.on_frame(frame).to_ndarray(format="rgb24")
    session.set_mirror(True)
    mirrored = session.on_frame(frame).to_ndarray(format="rgb24")
    assert plain[40, 5, 0] > 150 and mirrored[40, 5, 0] < 50
    assert mirrored[40, 60, 0] > 150
    assert session.snapshot().mirror


def test_add_refuses_a_stale_frame(session, monkeypatch):
    session.on_frame(solid(RED))
    monkeypatch.setattr(live, "MAX_FRAME_AGE", 0.0)
    time.sleep(0.01)
    with pytest.raises(LiveError, match="not sending frames"):
        session.add_latest("red")


def test_add_to_a_missing_class_is_refused_not_created(session):
    session.on_frame(solid(RED))
    with pytest.raises(LiveError, match="no class"):
        session.add_latest("green")
    assert session.classifier.classes == ["red", "blue"]


def test_recording_adds_frames_until_the_deadline(session):
    session.on_frame(solid(RED))
    session.start_recording("red", seconds=0.3)
    assert session.snapshot().recording[0] == "red"
    for _ in range(5):
        session.on_frame(solid(RED))
    assert session.classifier.counts()["red"] == 5
    time.sleep(0.35)
    session.on_frame(solid(RED))
    snap = session.snapshot()
    assert snap.recording is None and snap.counts["red"] == 5
    assert "Recorded 5 examples" in snap.notice
    assert session.take_notice() and session.take_notice() is None


def test_deleting_or_renaming_the_recording_class(session):
    session.on_frame(solid(BLUE))
    session.start_recording("blue", seconds=10)
    session.rename_class("blue", "sky")
    session.on_frame(solid(BLUE))
    assert session.classifier.counts() == {"red": 0, "sky": 1}
    session.remove_class("sky")
    session.on_frame(solid(BLUE))
    # Adding to a missing class would create it again; the recording stopped instead.
    assert session.classifier.classes == ["red"] and session.snapshot().recording is None


def test_recording_stops_with_a_message_at_the_class_cap():
    from knn.classifier import KNNClassifier

    session = LiveSession(FakeEmbedder(), KNNClassifier(max_examples_per_class=3), classes=["red"])
    session.on_frame(solid(RED))
    session.start_recording("red", seconds=10)
    for _ in range(5):
        session.on_frame(solid(RED))
    snap = session.snapshot()
    assert snap.counts["red"] == 3 and snap.recording is None
    assert "stopped after 3 examples" in snap.notice


def test_class_edits_repredict_the_latest_frame(session):
    session.on_frame(solid(RED))
    session.add_latest("red")
    assert session.snapshot().prediction.label == "red"
    session.rename_class("red", "crimson")
    assert session.snapshot().prediction.label == "crimson"  # without waiting for a frame
    session.clear_class("crimson")
    assert session.snapshot().prediction.label is None
    session.add_latest("blue")
    (example,) = session.classifier.examples("blue")
    session.remove_example(example.example_id)
    assert session.snapshot().n_examples == 0
    with pytest.raises(ClassifierError):
        session.add_class("blue")  # duplicate names are the classifier's to refuse
    session.set_k(1)
    session.set_unknown_threshold(0.5)
    snap = session.snapshot()
    assert (snap.k, snap.unknown_threshold) == (1, 0.5)


def test_add_images_refuses_non_images_and_oversized_files(session, monkeypatch):
    png = _png(RED)
    monkeypatch.setattr(live, "MAX_IMAGE_BYTES", 10_000)
    ids, errors = session.add_images(
        "red", [("notes.txt", b"not an image"), ("huge.png", b"\x89PNG" + bytes(20_000)), ("red.png", png)]
    )
    assert len(ids) == 1 and session.classifier.counts()["red"] == 1
    assert len(errors) == 2
    assert "notes.txt" in errors[0] and "not an image" in errors[0]
    assert "huge.png" in errors[1] and "limit" in errors[1]
    assert "0x" not in errors[0]  # no object addresses in a message for the user
    ids, errors = session.add_images("red", [("x.txt", b"nope")])
    assert ids == [] and len(errors) == 1 and errors[0].startswith("x.txt is not an image")


def test_replace_classifier_checks_the_embedding_size(session):
    from knn.classifier import KNNClassifier

    other = KNNClassifier()
    other.add(np.ones(5, np.float32), "five")
    with pytest.raises(LiveError, match="5-dimensional"):
        session.replace_classifier(other)
    good = KNNClassifier(k=1)
    good.add(np.ones(12, np.float32), "twelve")
    session.replace_classifier(good)
    assert session.snapshot().classes == ("twelve",)


def test_switching_embedder_re_embeds_every_stored_example(session):
    session.on_frame(solid(RED))
    session.add_latest("red")
    session.on_frame(solid(BLUE))
    session.add_latest("blue")
    session.classifier.add(np.ones(12, np.float32), "blue", None)  # no image: cannot be re-embedded
    new = FakeEmbedder("fake2")
    steps = []
    dropped = session.set_embedder(new, lambda f, text: steps.append(f))
    assert dropped == 1 and steps[-1] == 1.0
    assert session.embedder is new and session.snapshot().backbone == "fake2"
    assert session.classifier.counts() == {"red": 1, "blue": 1}
    with pytest.raises(LiveError, match="press START"):  # the old frame's embedding is gone
        session.add_latest("red")
    session.on_frame(solid(BLUE))
    assert session.snapshot().prediction.label == "blue"


def test_dropped_frames_are_counted_when_the_callback_falls_behind(session):
    frames = [solid(RED) for _ in range(4)]
    (out,) = asyncio.run(session.on_frames(frames))
    assert isinstance(out, av.VideoFrame)
    stats = session.snapshot().stats
    assert (stats.frames_received, stats.frames_processed, stats.frames_dropped) == (4, 1, 3)


class _Camera:
    """A 30 fps source track, as aiortc delivers a browser's camera; remembers when each frame was made."""

    def __init__(self):
        from aiortc import MediaStreamTrack

        made: dict[int, float] = {}

        class Track(MediaStreamTrack):
            kind = "video"

            def __init__(self):
                super().__init__()
                self.pts = 0

            async def recv(self):
                await asyncio.sleep(1 / 30)
                frame = solid(RED)
                frame.pts, frame.time_base = self.pts, fractions.Fraction(1, 90000)
                made[self.pts] = time.monotonic()
                self.pts += 3000
                return frame

        self.track = Track()
        self.made = made


def test_slow_callback_drops_old_frames_in_streamlit_webrtc_and_latency_stays_flat():
    """Through streamlit-webrtc's own async track: an 80 ms callback on a 30 fps camera."""
    from streamlit_webrtc.models import CallbackAttachableProcessor
    from streamlit_webrtc.process import AsyncVideoProcessTrack

    session = LiveSession(FakeEmbedder(delay=0.08), classes=["red"])
    camera = _Camera()
    waited: list[float] = []  # per processed frame: how long it sat before the callback took it
    serve = session._serve

    def timed(frame, wait, **kwargs):
        waited.append(time.monotonic() - camera.made[frame.pts])
        return serve(frame, wait, **kwargs)

    session._serve = timed  # both callbacks end in self._serve
    processor = CallbackAttachableProcessor(session.on_frame, session.on_frames, None)
    track = AsyncVideoProcessTrack(camera.track, processor)

    async def consume(seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            await track.recv()
            n += 1
        return n

    try:
        delivered = asyncio.run(consume(3.0))
    finally:
        track.stop()
    stats = session.snapshot().stats
    assert delivered >= 75  # the returned video keeps the camera's pace
    assert 20 <= stats.frames_processed <= 40  # ~12 per second get through an 80 ms callback
    assert stats.frames_dropped >= 30
    # Every frame is either processed, dropped, or still queued at the stop.
    assert stats.frames_received - stats.frames_processed - stats.frames_dropped <= 3
    # Latency stays flat: no frame waits longer than one callback plus a frame gap, late or early.
    assert max(waited) < 0.08 + 0.06, waited
    third = len(waited) // 3
    assert np.mean(waited[-third:]) < np.mean(waited[:third]) + 0.03


def test_page_and_callback_threads_share_a_session_safely(session):
    stop = threading.Event()
    errors = []

    def camera():
        colours = [RED, BLUE]
        i = 0
        while not stop.is_set():
            try:
                session.on_frame(solid(colours[i % 2]))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            i += 1

    thread = threading.Thread(target=camera)
    thread.start()
    try:
        deadline = time.monotonic() + 5  # the shared model worker may finish other tests' frames first
        while not session.snapshot().camera_live and time.monotonic() < deadline:
            time.sleep(0.01)
        session.start_recording("red", seconds=0.2)
        for i in range(50):
            session.add_latest("blue")
            snap = session.snapshot()
            assert sum(snap.counts.values()) == snap.n_examples
            if i == 25:
                session.add_class("green")
                session.remove_class("green")
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert session.classifier.counts()["blue"] == 50


def test_ice_servers_come_from_the_secret_then_the_environment(monkeypatch):
    monkeypatch.delenv("KNN_ICE_SERVERS", raising=False)
    assert ice_servers() == [{"urls": ["stun:stun.l.google.com:19302"]}]
    monkeypatch.setenv("KNN_ICE_SERVERS", "[]")
    assert ice_servers() == []
    turn = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"}]
    monkeypatch.setenv("KNN_ICE_SERVERS", __import__("json").dumps(turn))
    assert ice_servers() == turn
    assert ice_servers(secret=[{"urls": "stun:a.example:3478"}]) == [{"urls": "stun:a.example:3478"}]
    monkeypatch.setenv("KNN_ICE_SERVERS", "{not json")
    with pytest.raises(ValueError, match="KNN_ICE_SERVERS is not valid JSON"):
        ice_servers()
    with pytest.raises(ValueError, match="list of"):
        ice_servers(secret={"urls": "stun:x"})


def test_real_photos_through_the_real_embedder(embedder, rps_dir):
    """Frames of two hand gestures: examples from the first half of the files, queries from the second."""
    files = class_folders(rps_dir)
    session = LiveSession(embedder, classes=["rock", "paper"])
    for label in ("rock", "paper"):
        for path in files[label][:60:12]:  # 5 far-apart examples each
            session.on_frame(_camera_frame(path))
            session.add_latest(label)
    correct = 0
    queries = [(label, p) for label in ("rock", "paper") for p in files[label][60::10]]
    for label, path in queries:
        session.on_frame(_camera_frame(path))
        correct += session.snapshot().prediction.label == label
    assert correct / len(queries) >= 0.9
    stats = session.snapshot().stats
    assert stats.frames_processed == 10 + len(queries)
    assert stats.embed_ms_p50 > 0


def _camera_frame(path) -> av.VideoFrame:
    rgb = np.asarray(Image.fromarray(read_image(path)).resize((640, 480)))
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _png(colour) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
    return buf.getvalue()



def _stamped(colour, pts: int) -> av.VideoFrame:
    frame = solid(colour)
    frame.pts, frame.time_base = pts, fractions.Fraction(1, 90000)
    return frame


def test_metrics_report_counters_and_each_latency_once(session):
    for i in range(5):
        session.on_frame(_stamped(RED, 1_000_000 + 3000 * i))
    asyncio.run(session.on_frames([_stamped(RED, 1_015_000), _stamped(RED, 1_018_000)]))
    m = session.metrics()
    assert (m["frames_received"], m["frames_processed"], m["frames_dropped"]) == (7, 6, 1)
    assert m["id"] == session.id and m["examples"] == 0 and m["frame_age"] >= 0
    assert len(m["latencies"]) == 6 and all(v >= 0 for v in m["latencies"])
    assert m["latency_ms_p95"] >= m["latency_ms_p50"] >= 0
    again = session.metrics(latencies_since=m["latencies_recorded"])
    assert again["latencies"] == [] and again["latencies_lost"] == 0
    session.on_frame(solid(RED))  # no timestamp: processed, but no latency to tell
    assert session.metrics(latencies_since=m["latencies_recorded"])["latencies"] == []


def test_a_freed_session_leaves_the_registry():
    import gc

    session = LiveSession(FakeEmbedder(), classes=["red"])
    session.on_frame(solid(RED))
    assert session in live.live_sessions()
    sid = session.id
    del session
    gc.collect()
    assert sid not in [s.id for s in live.live_sessions()]


def test_model_input_is_the_centre_square_as_pil_would_crop_and_resize_it(rps_dir):
    from knn.images import center_crop_resize

    path = class_folders(rps_dir)["paper"][0]
    for size in ((640, 480), (480, 640), (300, 300)):
        frame = av.VideoFrame.from_ndarray(
            np.asarray(Image.fromarray(read_image(path)).resize(size)), format="rgb24"
        ).reformat(format="yuv420p")
        crop = live.model_input(frame, 224)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8 and crop.flags.c_contiguous
        expected = center_crop_resize(frame.to_ndarray(format="rgb24"), 224)
        assert np.abs(crop.astype(int) - expected).mean() < 4  # libswscale vs PIL rounding


def test_model_input_through_the_real_embedder_matches_the_pil_path(embedder, rps_dir):
    """Switching the frame preprocessing to PyAV must not move the embeddings."""
    from knn.images import center_crop_resize

    files = class_folders(rps_dir)
    for label in ("rock", "paper", "scissors"):
        frame = _camera_frame(files[label][7])
        a = embedder.embed(live.model_input(frame, embedder.input_size))[0]
        b = embedder.embed(center_crop_resize(frame.to_ndarray(format="rgb24"), embedder.input_size))[0]
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


def test_the_returned_frame_is_yuv420p_with_only_the_banner_rows_changed(session):
    """aiortc encodes yuv420p: a frame in that format needs no conversion before each encode."""
    rng = np.random.default_rng(0)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    out = session.on_frame(frame)
    assert out.format.name == "yuv420p" and (out.width, out.height) == (320, 240)
    band = live._band(240)
    before, after = frame.to_ndarray(), out.to_ndarray()
    y_in, y_out = before.reshape(-1)[: 320 * 240].reshape(240, 320), after.reshape(-1)[: 320 * 240].reshape(240, 320)
    assert np.array_equal(y_in[band:], y_out[band:]) and not np.array_equal(y_in[:band], y_out[:band])
    assert np.array_equal(frame.to_ndarray(), before)  # the camera's frame itself is untouched
    odd = session.on_frame(solid(RED, 63, 47))  # odd sizes have no 4:2:0 planes: drawn in RGB
    assert (odd.width, odd.height) == (63, 47)


def test_a_frame_behind_another_sessions_goes_back_at_once_and_its_result_follows(monkeypatch):
    """While other sessions' frames fill the model worker, the queued callback waits at most
    MODEL_WAIT and returns no frame; its frame's result comes next, drawn on a later frame."""
    monkeypatch.setattr(live, "MODEL_WAIT", 0.02)
    busy = [LiveSession(FakeEmbedder(delay=0.3), classes=["red"]) for _ in range(live.MODEL_WORKER.threads)]
    other = LiveSession(FakeEmbedder(), classes=["red", "blue"])
    other.add_images("blue", [("blue.png", _png(BLUE))])
    other.add_images("red", [("red.png", _png(RED))])
    other.on_frame(solid(BLUE))  # served once: its caption says blue
    assert other.snapshot().prediction.label == "blue"
    workers = [threading.Thread(target=b.on_frame, args=(solid(RED),)) for b in busy]
    for worker in workers:
        worker.start()
    time.sleep(0.05)  # busy frames occupy every worker thread now
    try:
        t0 = time.monotonic()
        # No new result yet: no frame to send (the browser keeps the last one drawn).
        assert asyncio.run(other.on_frames([solid(RED), solid(RED)])) == []
        assert time.monotonic() - t0 < 0.2  # did not wait for busy's 300 ms frame
        stats = other.snapshot().stats
        assert (stats.frames_received, stats.frames_processed, stats.frames_dropped) == (3, 1, 1)
        assert other.snapshot().prediction.label == "blue"  # the red frame is still waiting
    finally:
        for worker in workers:
            worker.join()
    deadline = time.monotonic() + 5
    while other.snapshot().stats.frames_processed < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert other.snapshot().stats.frames_processed == 2  # its frame had its turn after busy's
    assert other.snapshot().prediction.label == "red"
    assert len(asyncio.run(other.on_frames([solid(RED)]))) == 1  # a new result: a frame out


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()
