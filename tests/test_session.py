"""LiveSession: one browser session's teaching facade, fed camera frames through its pipeline.

Frames go through `session.pipeline.on_frame` (what the camera sink calls) and come back from the
result track (what aiortc's encoder reads), with the real MobileNet embedder.
"""

from __future__ import annotations

import gc
import io
import threading

import av
import numpy as np
import pytest
from PIL import Image

import knn
import knn.live.session as live
from knn.core.classifier import ClassifierError, KNNClassifier
from knn.core.image_folders import class_folders
from knn.core.images import center_crop_resize, decode_jpeg, encode_jpeg, read_square
from knn.core.limits import STORED_IMAGE_SIZE
from knn.live.overlay import _band, model_input
from knn.live.session import LiveError, LiveSession
from knn.live.worker import ModelWorker
from tests.frames import BLUE, GREEN, RED, SlowEmbedder, grey, photo_frame, show, solid, wait_until


@pytest.fixture()
def session(embedder) -> LiveSession:
    return LiveSession(embedder, classes=["red", "blue"], worker=ModelWorker("test-session"))


class Clock:
    """The session's clock, moved on by the test: seconds pass when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def clocked(embedder, clock) -> LiveSession:
    """A session on `clock`."""
    return LiveSession(embedder, classes=["red", "blue"], worker=ModelWorker("test-session"), clock=clock)


def test_nothing_to_add_before_the_camera_starts(session):
    with pytest.raises(LiveError, match="press START"):
        session.add_latest("red")
    with pytest.raises(LiveError, match="press START"):
        session.start_recording("red")
    snap = session.snapshot()
    assert snap.prediction is None and snap.frame_age is None and not snap.camera_live
    assert snap.classes == ("red", "blue") and snap.n_examples == 0


def test_frame_in_captioned_frame_out_and_add_latest(session, embedder):
    out = show(session, solid(RED))
    assert (out.width, out.height) == (64, 48)
    snap = session.snapshot()
    assert snap.camera_live and snap.prediction.label is None  # no examples yet
    assert session.add_latest("red") == 0
    show(session, solid(BLUE))
    session.add_latest("blue")
    show(session, solid(RED))
    snap = session.snapshot()
    assert snap.prediction.label == "red"
    assert snap.counts == {"red": 1, "blue": 1}
    assert snap.neighbors[0].label == "red" and snap.neighbors[0].image[:2] == b"\xff\xd8"  # a JPEG
    assert snap.stats.frames_processed == 3 and snap.stats.frames_dropped == 0
    stored = session.classifier.examples("red")[0].image  # what the model saw: the centre crop
    side = embedder.input_size
    assert Image.open(io.BytesIO(stored)).size == (side, side)


def test_a_frame_goes_into_a_class_once(session):
    show(session, solid(RED))
    first = session.add_latest("red")
    assert session.add_latest("red") == first  # a double click: the same frame, nothing new
    assert session.classifier.counts()["red"] == 1
    other = session.add_latest("blue")  # the same frame in another class is the user's choice
    assert other != first and session.classifier.counts() == {"red": 1, "blue": 1}
    session.remove_example(first)
    assert session.add_latest("red") not in (first, other)  # deleted meanwhile: added again
    show(session, solid((200, 120, 30)))  # the model saw a new frame
    assert session.classifier.counts()["red"] == 1
    session.add_latest("red")
    assert session.classifier.counts()["red"] == 2


def test_the_prediction_is_drawn_on_the_returned_frame(session):
    frame = solid(GREEN, 320, 240)
    blank = show(session, frame).to_ndarray(format="rgb24")
    session.add_latest("red")
    labelled = show(session, frame).to_ndarray(format="rgb24")
    band = _band(240)
    below = labelled[band + 2 :].astype(int)
    assert np.abs(below - np.array(GREEN)).max() < 12  # the picture itself is untouched
    assert labelled[:band].mean() < blank[band + 2 :].mean()  # a dark caption band
    assert not np.array_equal(labelled[:band], blank[:band])  # with another caption


def test_a_failing_frame_is_reported_and_captioned_not_raised(session, embedder, monkeypatch):
    """An exception on the video path must stop neither the worker nor the video."""

    def broken(image):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(embedder, "embed_one", broken)
    out = show(session, solid(RED))
    assert (out.width, out.height) == (64, 48)
    assert "model exploded" in session.take_notice()
    monkeypatch.undo()
    show(session, solid(RED))
    assert session.snapshot().camera_live


def test_mirror_flips_the_picture(session):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = RED  # left half red
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    plain = show(session, frame).to_ndarray(format="rgb24")
    session.set_mirror(True)
    mirrored = show(session, frame).to_ndarray(format="rgb24")
    assert plain[40, 5, 0] > 150 and mirrored[40, 5, 0] < 50
    assert mirrored[40, 60, 0] > 150
    assert session.snapshot().mirror


def test_add_refuses_a_stale_frame(clocked, clock):
    show(clocked, solid(RED))
    clock.now += live.MAX_FRAME_AGE + 0.01
    with pytest.raises(LiveError, match="not sending frames"):
        clocked.add_latest("red")


def test_add_to_a_missing_class_is_refused_not_created(session):
    show(session, solid(RED))
    with pytest.raises(LiveError, match="no class"):
        session.add_latest("green")
    assert session.classifier.classes == ["red", "blue"]


def test_recording_adds_frames_until_the_deadline(clocked, clock):
    show(clocked, solid(RED))
    clocked.start_recording("red", seconds=1.0)
    assert clocked.snapshot().recording[0] == "red"
    for i in range(5):  # five different scenes, a frame apart: each one embedded and recorded
        clock.now += 1 / 30
        show(clocked, grey(40 + 30 * i))
    assert clocked.classifier.counts()["red"] == 5
    clock.now += 1.0  # past the deadline
    show(clocked, solid(RED))
    snap = clocked.snapshot()
    assert snap.recording is None and snap.counts["red"] == 5
    assert "Recorded 5 examples" in snap.notice
    assert clocked.take_notice() and clocked.take_notice() is None


def test_a_recording_whose_camera_stopped_ends_by_the_clock(clocked, clock):
    from knn.live.recording import END_GRACE

    show(clocked, solid(RED))
    clocked.start_recording("red", seconds=1.0)
    for i in range(3):
        clock.now += 1 / 30
        show(clocked, grey(40 + 30 * i))
    clock.now += 1.0  # the deadline passed, and no frame came after it: the camera stopped
    assert clocked.snapshot().notice is None  # within the grace a late frame may still end it
    clock.now += END_GRACE
    snap = clocked.snapshot()  # the page's next look ends it
    assert snap.recording is None and snap.counts["red"] == 3
    assert snap.notice == "Recorded 3 examples into “red”."
    clock.now += 1 / 30
    show(clocked, grey(200))  # the camera again: nothing more is recorded
    assert clocked.classifier.counts()["red"] == 3


def test_deleting_or_renaming_the_recording_class(session):
    show(session, solid(BLUE))
    session.start_recording("blue", seconds=10)
    session.rename_class("blue", "sky")
    show(session, solid(BLUE))
    assert session.classifier.counts() == {"red": 0, "sky": 1}
    session.remove_class("sky")
    show(session, solid(BLUE))
    # Adding to a missing class would create it again; the recording stopped instead.
    assert session.classifier.classes == ["red"] and session.snapshot().recording is None


def test_recording_stops_with_a_message_at_the_class_cap(embedder):
    session = LiveSession(embedder, KNNClassifier(max_examples_per_class=3), classes=["red"])
    show(session, solid(RED))
    session.start_recording("red", seconds=10)
    for i in range(5):
        show(session, grey(40 + 30 * i))
    snap = session.snapshot()
    assert snap.counts["red"] == 3 and snap.recording is None
    assert "stopped after 3 examples" in snap.notice


def test_class_edits_repredict_the_latest_frame(session):
    show(session, solid(RED))
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


def test_a_restore_with_the_same_backbone_checks_the_embedding_size(session, embedder):
    other = KNNClassifier()
    other.add(np.ones(5, np.float32), "five")
    with pytest.raises(LiveError, match="5-dimensional"):
        session.restore(other, embedder.backbone, embedder)
    good = KNNClassifier(k=1)
    good.add(np.ones(embedder.dim, np.float32), "ones")
    session.restore(good, embedder.backbone, embedder)
    assert session.snapshot().classes == ("ones",)


def rule(session: LiveSession) -> tuple[str, float, bool]:
    return session.classifier.vote, session.classifier.centroid_weight, session.classifier.centred


def test_a_new_session_has_the_new_rule_and_keeps_a_projects_through_forget_and_a_switch(embedder):
    assert rule(LiveSession(embedder, worker=ModelWorker("test-session"))) == ("blend", 0.3, True)
    own = KNNClassifier(k=2, vote="centroids", centroid_weight=0.6, centred=False)
    session = LiveSession(embedder, own, classes=["red", "blue"], worker=ModelWorker("test-session"))
    show(session, solid(RED))
    session.add_latest("red")
    session.set_embedder(knn.Embedder(embedder.backbone))  # re-embedded: the same rule
    assert rule(session) == ("centroids", 0.6, False) and session.classifier.k == 2
    assert session.classifier.counts() == {"red": 1, "blue": 0}
    session.forget(classes=["Class 1"])  # a new project: the session's settings and rule stay
    assert rule(session) == ("centroids", 0.6, False) and session.classifier.classes == ["Class 1"]


def test_switching_embedder_re_embeds_every_stored_example(session, embedder):
    show(session, solid(RED))
    session.add_latest("red")
    show(session, solid(BLUE))
    session.add_latest("blue")
    session.classifier.add(np.ones(embedder.dim, np.float32), "blue", None)  # no image: cannot be re-embedded
    other = knn.Embedder()  # another instance of the backbone: the switch must still re-embed
    steps = []
    dropped = session.set_embedder(other, lambda fraction, text: steps.append(fraction))
    assert dropped == 1 and steps[-1] == 1.0
    assert session.embedder is other
    assert session.classifier.counts() == {"red": 1, "blue": 1}
    with pytest.raises(LiveError, match="press START"):  # the old frame's embedding is gone
        session.add_latest("red")
    show(session, solid(BLUE))
    assert session.snapshot().prediction.label == "blue"


def test_frames_behind_a_busy_model_are_replaced_and_counted(embedder):
    session = LiveSession(SlowEmbedder(embedder, 0.3), classes=["red"], worker=ModelWorker("test-drop", threads=1))
    for i in range(4):  # the first goes into the model; each later one replaces the one waiting
        session.pipeline.on_frame(grey(40 + 30 * i))
    wait_until(lambda: session.snapshot().stats.frames_processed == 2, 10, "two frames through the model")
    stats = session.snapshot().stats
    assert (stats.frames_received, stats.frames_processed, stats.frames_dropped) == (4, 2, 2)


def test_page_and_video_threads_share_a_session_safely(session):
    stop = threading.Event()
    errors = []

    def camera():
        colours = [RED, BLUE]
        i = 0
        while not stop.is_set():
            try:
                show(session, solid(colours[i % 2]))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            i += 1

    thread = threading.Thread(target=camera)
    thread.start()
    try:
        wait_until(lambda: session.snapshot().camera_live, 10, "the first frame")
        session.start_recording("red", seconds=0.2)
        added = set()
        for i in range(50):
            added.add(session.add_latest("blue"))  # each new frame once
            snap = session.snapshot()
            assert sum(snap.counts.values()) == snap.n_examples
            if i == 25:
                session.add_class("green")
                session.remove_class("green")
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert session.classifier.counts()["blue"] == len(added)  # each distinct frame once, none lost


def test_real_photos_through_the_real_embedder(embedder, rps_dir):
    """Frames of two hand gestures: examples from the first half of the files, queries from the second."""
    files = class_folders(rps_dir)
    session = LiveSession(embedder, classes=["rock", "paper"])
    for label in ("rock", "paper"):
        for path in files[label][:60:12]:  # 5 far-apart examples each
            show(session, photo_frame(path))
            session.add_latest(label)
    correct = 0
    queries = [(label, p) for label in ("rock", "paper") for p in files[label][60::10]]
    for label, path in queries:
        show(session, photo_frame(path))
        correct += session.snapshot().prediction.label == label
    assert correct / len(queries) >= 0.9
    stats = session.snapshot().stats
    assert stats.frames_processed == 10 + len(queries)
    assert stats.embed_ms_p50 > 0


def test_a_freed_session_leaves_the_registry(embedder):
    session = LiveSession(embedder, classes=["red"])
    show(session, solid(RED))
    assert session in live.live_sessions()
    sid = session.id
    del session
    gc.collect()
    assert sid not in [s.id for s in live.live_sessions()]


def test_model_input_is_the_centre_square_as_pil_would_crop_and_resize_it(rps_dir):
    path = class_folders(rps_dir)["paper"][0]
    for size in ((640, 480), (480, 640), (300, 300)):
        frame = photo_frame(path, size)
        crop = model_input(frame, 224)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8 and crop.flags.c_contiguous
        expected = center_crop_resize(frame.to_ndarray(format="rgb24"), 224)
        assert np.abs(crop.astype(int) - expected).mean() < 4  # libswscale vs PIL rounding


def test_model_input_through_the_real_embedder_matches_the_pil_path(embedder, rps_dir):
    """Scaling the camera frame with PyAV must not move the embeddings."""
    files = class_folders(rps_dir)
    for label in ("rock", "paper", "scissors"):
        frame = photo_frame(files[label][7])
        a = embedder.embed_one(model_input(frame, embedder.input_size))
        b = embedder.embed_one(center_crop_resize(frame.to_ndarray(format="rgb24"), embedder.input_size))
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


def test_examples_are_stored_at_320_px_and_re_embed_as_the_camera_saw_them(clocked, clock, embedder, rps_dir):
    """A camera frame, a Record frame and an upload are stored at STORED_IMAGE_SIZE; re-embedding
    from the stored image at the model's input size gives the crop the camera gave the model."""
    paths = class_folders(rps_dir)["paper"]
    frame = photo_frame(paths[0])  # 640x480
    show(clocked, frame)
    added = clocked.add_latest("red")
    clocked.start_recording("blue", seconds=0.5)
    clock.now += 0.1
    show(clocked, photo_frame(paths[1]))
    (uploaded,), errors = clocked.add_images("blue", [("p.jpg", paths[2].read_bytes())])
    assert not errors
    images = {e.example_id: e.image for e in clocked.classifier.examples()}
    assert len(images) == 3
    for image in images.values():
        assert Image.open(io.BytesIO(image)).size == (STORED_IMAGE_SIZE, STORED_IMAGE_SIZE)
    side = embedder.input_size
    seen = model_input(frame, side)  # what the camera gave the model for the added frame
    again = center_crop_resize(decode_jpeg(images[added]), side)  # what a re-embedding gives it
    assert np.abs(again.astype(int) - seen).mean() < 4  # the same crop: only JPEG and resampling differ
    vectors = np.asarray(embedder.embed([seen, again]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert float(vectors[0] @ vectors[1]) > 0.98  # 0.993 at least on 26 real photos (docs/accuracy.md)
    upload = read_square(io.BytesIO(paths[2].read_bytes()), side)
    assert np.abs(center_crop_resize(decode_jpeg(images[uploaded]), side).astype(int) - upload).mean() < 4


def test_a_project_stored_with_224_px_images_keeps_them_and_re_embeds(session, embedder, rps_dir):
    path = class_folders(rps_dir)["rock"][0]
    old = KNNClassifier()
    square = read_square(path, 224)
    old.add(embedder.embed_one(square), "rock", encode_jpeg(square, size=224))  # as stored before
    session.restore(old, embedder.backbone, embedder)
    session.set_embedder(knn.Embedder(embedder.backbone))  # re-embedded from its 224 px image
    (example,) = session.classifier.examples()
    assert Image.open(io.BytesIO(example.image)).size == (224, 224)
    show(session, photo_frame(path))
    assert session.snapshot().prediction.label == "rock"


def test_the_returned_frame_is_yuv420p_with_only_the_banner_rows_changed(session):
    """aiortc encodes yuv420p: a frame in that format needs no conversion before its encode."""
    rng = np.random.default_rng(0)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    before = frame.to_ndarray()
    out = show(session, frame)
    assert out.format.name == "yuv420p" and (out.width, out.height) == (320, 240)
    band = _band(240)
    after = out.to_ndarray()
    y_in, y_out = before.reshape(-1)[: 320 * 240].reshape(240, 320), after.reshape(-1)[: 320 * 240].reshape(240, 320)
    assert np.array_equal(y_in[band:], y_out[band:]) and not np.array_equal(y_in[:band], y_out[:band])
    assert np.array_equal(frame.to_ndarray(), before)  # the camera's frame itself is untouched
    odd = show(session, solid(RED, 63, 47))  # odd sizes have no 4:2:0 planes: drawn in RGB
    assert (odd.width, odd.height) == (63, 47)


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_augmented_examples_carry_their_views_through_edits_and_a_backbone_switch(session, embedder):
    session.augment = True
    show(session, solid(RED))
    red = session.add_latest("red")
    show(session, solid(BLUE, 64, 48))
    session.augment = False
    blue = session.add_latest("blue")
    assert {e.example_id: e.vectors for e in session.classifier.examples()} == {red: 12, blue: 1}
    assert session.classifier.state().embeddings.shape[0] == 13
    session.classifier.move(red, "blue")  # its views go with it
    assert session.classifier.counts() == {"red": 0, "blue": 2} and session.classifier.state().embeddings.shape[0] == 13
    session.set_embedder(knn.Embedder(embedder.backbone))  # re-embedded with its views again
    assert sorted(e.vectors for e in session.classifier.examples()) == [1, 12]
    session.remove_example(session.classifier.examples()[0].example_id)
    assert session.classifier.state().embeddings.shape[0] == 1  # all its vectors went with it


def test_move_example_moves_it_and_repredicts(session):
    show(session, solid(RED))
    moved = session.add_latest("blue")  # a red frame filed under blue by mistake
    show(session, solid(BLUE))
    session.add_latest("blue")
    show(session, solid(RED))
    assert session.snapshot().prediction.label == "blue"
    session.move_example(moved, "red")
    assert session.classifier.counts() == {"red": 1, "blue": 1}
    assert session.snapshot().prediction.label == "red"  # the latest frame, classified again
    with pytest.raises(LiveError, match="no class"):
        session.move_example(moved, "green")
    with pytest.raises(ClassifierError, match="no example"):
        session.move_example(12345, "red")


def test_a_frame_between_two_classes_for_a_few_seconds_is_reported(embedder):
    from knn.core.coach import HESITATION_SECONDS

    clock = [1000.0]
    session = LiveSession(embedder, classes=["red", "blue"], worker=ModelWorker("test-session"), clock=lambda: clock[0])
    purple = (120, 20, 120)
    for colour, label in ((RED, "red"), (BLUE, "blue"), ((150, 20, 90), "red"), ((90, 20, 150), "blue")):
        show(session, solid(colour))
        session.add_latest(label)
    show(session, solid((20, 200, 20)))  # the camera looks elsewhere: purple is then a new scene (knn.live.steady)
    show(session, solid(purple))  # as near to one class as to the other
    assert session.snapshot().hesitation is None  # the clock starts
    clock[0] += HESITATION_SECONDS
    show(session, solid(purple))  # still undecided
    best, second, seconds = session.snapshot().hesitation
    assert {best, second} == {"red", "blue"} and seconds == HESITATION_SECONDS
    session.add_latest(best)  # the user answered: ask again only after another wait
    assert session.snapshot().hesitation is None


def test_the_rule_trial_leaves_out_upload_batches_and_set_rule_switches(embedder, grocery):
    """Look-alike cartons uploaded in two batches per class: the trial offers another rule (the
    batches are its groups), one call switches to it, and a rule that is not one is refused."""
    from tests.photo_batches import photo_batches

    batches = photo_batches(grocery, "yoghurts")
    session = LiveSession(embedder, classifier=KNNClassifier(k=3, vote="examples", centred=False), classes=batches)
    for label, uploads in batches.items():
        for files in uploads:
            ids, errors = session.add_images(label, [(p.name, p.read_bytes()) for p in files])
            assert len(ids) == len(files) and not errors
    assert len(set(session.batches().values())) == 2 * len(batches)
    trial = session.try_rules()
    best = trial.best
    assert trial.current.vote == "examples" and best is not None and best.offer
    show(session, solid(RED))
    version = session.classifier.version
    rule = best.rule
    session.set_rule(rule.vote, rule.centroid_weight, rule.centred)
    clf = session.classifier
    assert (clf.vote, clf.centroid_weight, clf.centred) == (rule.vote, rule.centroid_weight, rule.centred)
    assert clf.version > version and session.snapshot().prediction.label in batches  # predicted again
    assert session.try_rules().current == best.rule
    for bad in [("nearest", 0.3, True), ("blend", 1.5, True), ("blend", 0.3, "yes")]:
        with pytest.raises(ClassifierError):
            session.set_rule(*bad)
        assert (clf.vote, clf.centred) == (best.rule.vote, best.rule.centred)
