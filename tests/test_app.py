"""The page's logic without a camera or browser, through Streamlit's AppTest.

The WebRTC component needs a browser, so it is replaced by a stand-in that records how the page
configured it; camera frames are fed to the session's callback directly, as aiortc would.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import knn
import knn.live.session
from knn.core.classifier import KNNClassifier
from knn.core.images import encode_jpeg
from knn.core.project import project_bytes
from knn.model.backbones import get_backbone
from tests.frames import show, wait_until

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def model_built(seconds: float = 300) -> None:
    """Wait for the process's model (knn.serving.model_job) that the page's sessions use: the page
    draws before it is ready, and the AppTests that teach start once it is."""
    from knn.serving.model_job import model_job
    from knn.serving.settings import Settings

    settings = Settings.from_env()
    job = model_job(settings.backbone, settings.threads)
    assert job.wait(seconds) and job.ready, job.status()


@pytest.fixture()
def camera_calls(monkeypatch):
    """Replace streamlit_webrtc.webrtc_streamer; returns the keyword arguments of each call."""
    import streamlit_webrtc

    calls: list[dict] = []
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture()
def at(camera_calls, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("KNN_ICE_SERVERS", "[]")
    model_built()  # the page draws while it loads (tests/test_first_visit.py); these tests teach
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    assert not app.exception, app.exception
    return app


def text(elements) -> list[str]:
    """Element values as the user reads them (the page escapes Markdown in what users typed)."""
    return [e.value.replace("\\", "") for e in elements]


def counts(at) -> list[str]:
    """Each class card's count, e.g. "2 examples" (the card may add " · 100% recognised")."""
    found = (re.match(r"\d+ examples?\b", c) for c in text(at.sidebar.caption))
    return [m.group(0) for m in found if m]


def photo(colour, size=(96, 72)) -> np.ndarray:
    rng = np.random.default_rng(sum(colour))
    image = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour, np.uint8)
    return np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def show_camera(at, rgb: np.ndarray) -> None:
    """One camera frame through this session's video callback."""
    frame = av.VideoFrame.from_ndarray(np.asarray(Image.fromarray(rgb).resize((320, 240))), format="rgb24")
    show(at.session_state.live, frame.reformat(format="yuv420p"))


RED, BLUE = (200, 30, 30), (30, 30, 200)


def test_first_visit_explains_what_to_do(at, camera_calls):
    assert [t.value for t in at.text_input] == ["Class 1", "Class 2", "Class 3"]
    assert counts(at) == ["0 examples"] * 3
    assert any("Press **START** under the camera" in t for t in text(at.info))
    assert any("No examples yet" in t for t in text(at.info))
    assert at.metric[0].label == "Prediction" and at.metric[0].value == "—"  # no frame yet
    (caption,) = [c for c in at.caption if c.value.startswith("Backbone:")]
    backbone = at.session_state.live.embedder.backbone
    assert backbone in caption.value and "fast mode (224 px)" in caption.value
    assert "why:" in caption.proto.help and "weights:" in caption.proto.help
    # The live panel says it too, beside the prediction.
    assert any(c.value.endswith("fast input (224 px)") for c in at.caption)


def test_the_camera_is_wired_to_this_sessions_callback(at, camera_calls):
    call = camera_calls[-1]
    live = at.session_state.live
    # The camera's frames go to this session's pipeline, its results come back: the same sink and
    # track the tests drive, nothing else.
    assert call["sink_video_track"] is live.pipeline.sink
    assert call["source_video_track"] is live.pipeline.output
    assert not {"video_frame_callback", "queued_video_frames_callback"} & set(call)
    # KNN_ICE_SERVERS for both peers (knn.serving.ice)
    assert call["frontend_rtc_configuration"] == call["server_rtc_configuration"] == {"iceServers": []}
    assert call["media_stream_constraints"]["audio"] is False


def test_without_ice_servers_streamlit_webrtc_chooses_them(camera_calls, monkeypatch):
    """No secret, no KNN_ICE_SERVERS: no iceServers key, so streamlit-webrtc picks a provider's TURN
    relay (from its keys) or Google's public STUN server, for both peers."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("KNN_ICE_SERVERS", raising=False)
    st.cache_resource.clear()  # the settings are read once per process: read them again
    AppTest.from_file(APP, default_timeout=300).run()
    call = camera_calls[-1]
    assert call["frontend_rtc_configuration"] == call["server_rtc_configuration"] == {}


def test_add_without_a_frame_explains_itself(at):
    at.button(key="add_0").click().run()
    assert any("No camera frame yet" in w and "START" in w for w in text(at.warning))
    at.button(key="record_0").click().run()
    assert any("No camera frame yet" in w for w in text(at.warning))
    assert counts(at)[0] == "0 examples"


def test_add_frames_and_read_the_prediction(at):
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    show_camera(at, photo(BLUE))
    at.button(key="add_1").click().run()
    assert counts(at) == ["1 example", "1 example", "0 examples"]
    show_camera(at, photo(RED))
    at.run()
    assert at.metric[0].value == "Class 1"
    assert at.session_state.live.snapshot().prediction.label == "Class 1"
    # Why this answer: the nearest examples' thumbnails (and the examples view's) are shown.
    assert any("Why this answer" in m for m in text(at.markdown))
    assert len(at.image) >= 3  # two nearest examples, and the first class's example in the Examples tab


def test_record_adds_frames_in_the_callback(at):
    show_camera(at, photo(RED))
    at.button(key="record_0").click().run()
    for i in range(4):  # a moving scene: each frame goes to the model (a still one would twice a second)
        show_camera(at, photo((200, 80 + 40 * i, 30)))
    at.run()
    assert counts(at)[0] == "4 examples"
    (bar,) = at.get("progress")  # still recording: the live panel shows how long is left
    assert "Recording into" in bar.proto.text


def test_rename_add_and_delete_classes(at):
    at.text_input(key="name_0").set_value("  Mug ").run()
    assert at.session_state.live.classifier.classes == ["Mug", "Class 2", "Class 3"]
    assert at.text_input(key="name_0").value == "Mug"
    # A duplicate or empty name is refused and the box shows the current name again.
    at.text_input(key="name_1").set_value("Mug").run()
    assert any("Cannot rename" in e and "already exists" in e for e in text(at.error))
    assert at.text_input(key="name_1").value == "Class 2"
    at.text_input(key="name_1").set_value("   ").run()
    assert at.text_input(key="name_1").value == "Class 2"
    at.button(key="delete_2").click().run()
    assert [t.value for t in at.text_input] == ["Mug", "Class 2"]
    at.button(key="add_class").click().run()
    assert [t.value for t in at.text_input] == ["Mug", "Class 2", "Class 3"]
    assert at.session_state.live.classifier.classes == ["Mug", "Class 2", "Class 3"]


def mounted_fresh(widget) -> object:
    """What a browser shows for `widget` if it mounts it from this run, having missed the earlier
    runs (Streamlit drops a run's unsent elements when the next run starts): the value sent with
    the element, else its default (an option's index for a selectbox or radio)."""
    proto = widget.proto
    if proto.set_value:  # the element carries the server's value (e.g. one written on every run)
        return current(widget)
    default = proto.default
    return list(default) if widget.type == "slider" else default


def current(widget) -> object:
    """The widget's value on the server, in the shape `mounted_fresh` gives."""
    if widget.type in ("selectbox", "radio"):
        return widget.index
    if widget.type == "slider":
        return list(widget.value) if isinstance(widget.value, tuple) else [widget.value]
    return widget.value


def test_every_widget_mounted_from_a_later_run_shows_its_value(at):
    # A value written to st.session_state before its widget reaches the browser only with that
    # run; a later run sends the widget with its default. So each widget's default must be its value.
    at.text_input(key="name_0").set_value("Mug").run()
    at.text_input(key="name_1").set_value("Mug").run()  # refused: the box shows "Class 2" again
    at.number_input(key="k").set_value(5).run()
    at.toggle(key="mirror").set_value(True).run()
    at.run()
    widgets = [
        w
        for kind in ("text_input", "number_input", "slider", "toggle", "checkbox", "selectbox", "radio")
        for w in getattr(at, kind)
    ]
    assert len(widgets) >= 10
    shown = {w.key: mounted_fresh(w) for w in widgets}
    assert shown == {w.key: current(w) for w in widgets}
    assert [at.text_input(key=f"name_{i}").value for i in range(3)] == ["Mug", "Class 2", "Class 3"]


def test_user_text_is_never_markup(at):
    name = "**bold** [x](javascript:alert(1)) <b>hi</b>"
    at.text_input(key="name_0").set_value(name).run()
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    show_camera(at, photo(RED))
    at.run()
    shown = at.metric[0].value
    assert shown != name and shown.replace("\\", "") == name  # escaped, so shown literally


def test_upload_images_to_a_class(at, monkeypatch):
    files = [("red1.png", png(photo(RED)), "image/png"), ("red2.png", png(photo((180, 40, 40))), "image/png")]
    at.file_uploader(key="upload_1_0").set_value(files).run()
    assert counts(at)[1] == "2 examples"
    assert any("Added 2 images" in s for s in text(at.success))
    # The uploader is emptied for the next batch.
    assert at.file_uploader(key="upload_1_1").value == []


def test_an_upload_repeated_by_a_stale_rerun_is_added_once(at):
    """The browser can send the old uploader's files again before it has drawn the fresh one (a
    rerun from the live panel's timer): the page takes only the current uploader's files."""
    files = [("red1.png", png(photo(RED)), "image/png"), ("red2.png", png(photo((180, 40, 40))), "image/png")]
    old = at.file_uploader(key="upload_1_0")
    old.set_value(files).run()
    assert counts(at)[1] == "2 examples"
    old.set_value(files).run()  # the stale widget state, once more
    assert not at.exception, at.exception
    assert counts(at)[1] == "2 examples"


def test_non_images_and_oversized_uploads_are_refused_with_a_message(at, monkeypatch):
    monkeypatch.setattr(knn.live.session, "MAX_IMAGE_BYTES", 50_000)
    big = png(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    assert len(big) > 50_000
    files = [
        ("notes.jpg", b"this is text, not a photo", "image/jpeg"),
        ("big.png", big, "image/png"),
        ("ok.png", png(photo(BLUE)), "image/png"),
    ]
    at.file_uploader(key="upload_0_0").set_value(files).run()
    errors = text(at.error)
    assert any("notes.jpg" in e and "not an image" in e for e in errors)
    assert any("big.png" in e and "limit" in e for e in errors)
    assert counts(at)[0] == "1 example"


def test_project_download_and_restore(at):
    assert at.get("download_button")[0].label == "Download project"
    backbone = at.session_state.live.embedder.backbone
    dim = at.session_state.live.embedder.dim
    saved = KNNClassifier(k=5, unknown_threshold=0.4)
    rng = np.random.default_rng(1)
    for label in ("cup", "pen"):
        saved.add_class(label)
        for _ in range(3):
            saved.add(rng.normal(size=dim).astype(np.float32), label, encode_jpeg(photo(RED)))
    data = project_bytes(saved, backbone)
    at.file_uploader(key="project_upload_0").set_value(("mine.npz", data, "application/octet-stream")).run()
    assert any("Restored mine.npz" in s for s in text(at.success))
    assert [t.value for t in at.text_input] == ["cup", "pen"]
    # A busy server can drop the restore run's elements before they reach the browser (Streamlit
    # clears unsent ones when the next run starts): cards first drawn by a later run show the names.
    at.run()
    assert [mounted_fresh(t) for t in at.text_input] == ["cup", "pen"]
    assert counts(at) == ["3 examples", "3 examples"]
    assert at.number_input(key="k").value == 5 and at.slider(key="threshold").value == pytest.approx(0.4)
    # What the download button serves is the same project again.
    again = knn.load_project(project_bytes(at.session_state.live.classifier, backbone), backbone)
    assert again.counts() == {"cup": 3, "pen": 3}


def test_a_bad_project_file_leaves_the_classes_untouched(at):
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    at.file_uploader(key="project_upload_0").set_value(("broken.npz", b"PK\x03\x04 nonsense", "application/zip")).run()
    errors = text(at.error)
    assert any("Could not restore broken.npz" in e and "unchanged" in e for e in errors)
    assert [t.value for t in at.text_input] == ["Class 1", "Class 2", "Class 3"]
    assert counts(at)[0] == "1 example"
    # A backbone this version does not know is refused with its name.
    other = KNNClassifier()
    other.add(np.ones(at.session_state.live.embedder.dim, np.float32), "x")
    data = project_bytes(other, "mobilenet_v9_1.0_224")
    at.file_uploader(key="project_upload_1").set_value(("v9.npz", data, "application/octet-stream")).run()
    assert any("mobilenet_v9_1.0_224" in e and "unchanged" in e for e in text(at.error))
    assert at.session_state.live.classifier.counts()["Class 1"] == 1


def test_a_project_of_another_backbone_is_used_with_it_or_re_embedded(at, monkeypatch):
    """The project's own backbone is loaded when this server has it; otherwise its stored images
    are embedded again by the backbone in use, with a progress bar."""
    live = at.session_state.live
    current = live.embedder.backbone
    mode = get_backbone(current).at(320).id  # the same network in accurate mode: another embedding space
    saved = KNNClassifier()
    for colour, label in ((RED, "red"), (BLUE, "blue")):
        saved.add(np.ones(live.embedder.dim, np.float32) * (1 + len(label)), label, encode_jpeg(photo(colour)))
    saved.add(np.ones(live.embedder.dim, np.float32), "blue")  # no image: it cannot be re-embedded
    at.file_uploader(key="project_upload_0").set_value(
        ("accurate.npz", project_bytes(saved, mode), "application/octet-stream")
    ).run()
    assert live.embedder.backbone == mode and len(live.classifier) == 3  # used as it is, with its backbone
    assert at.radio(key="resolution").value == 320
    unavailable = "mobilenet_v3_small_224"  # no weights for it here, and no downloads in tests
    at.file_uploader(key="project_upload_1").set_value(
        ("v3.npz", project_bytes(saved, unavailable), "application/octet-stream")
    ).run()
    assert live.embedder.backbone == mode  # kept, and the project re-embedded with it
    assert live.classifier.counts() == {"red": 1, "blue": 1}
    assert any("re-embedded" in s and unavailable in s for s in text(at.success))
    assert any("no stored image" in w for w in text(at.warning))
    show_camera(at, photo(RED))
    at.run()
    assert at.metric[0].value == "red"


def test_settings_reach_the_classifier(at):
    at.number_input(key="k").set_value(7).run()
    at.slider(key="threshold").set_value(0.6).run()
    at.toggle(key="mirror").set_value(True).run()
    live = at.session_state.live
    assert (live.classifier.k, live.classifier.unknown_threshold, live.mirror) == (7, 0.6, True)
    at.slider(key="threshold").set_value(0.0).run()
    assert live.classifier.unknown_threshold is None


def test_examples_view_deletes_one_example(at):
    for colour in (RED, (190, 50, 40)):
        show_camera(at, photo(colour))
        at.button(key="add_0").click().run()
    (first, second) = at.session_state.live.classifier.examples("Class 1")
    at.button(key=f"delete_example_{first.example_id}").click().run()
    assert [e.example_id for e in at.session_state.live.classifier.examples()] == [second.example_id]
    assert counts(at)[0] == "1 example"


def test_evaluation_view(at):
    at.session_state["view"] = "Evaluation"
    at.run()
    assert any("Teach at least two classes" in t for t in text(at.info))
    at.number_input(key="k").set_value(1).run()  # two examples a class: k=3 would outvote the one same-class neighbor
    for colour, slot in ((RED, 0), ((190, 40, 40), 0), (BLUE, 1), ((40, 40, 190), 1)):
        show_camera(at, photo(colour))
        at.button(key=f"add_{slot}").click().run()
    # Leave-one-out runs off the page's thread; the page shows it once it is ready.
    session = at.session_state.live
    wait_until(lambda: session.analysis.latest(session.classifier)[1], 30, "the leave-one-out of 4 examples")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Leave-one-out accuracy"] == "100.0%"
    assert at.get("vega_lite_chart")  # the confusion matrix
    assert not any("Updating" in c for c in text(at.caption))


@pytest.mark.parametrize(
    "network, resolution, label",
    [
        ("mobilenet_v1_1.0_224", 224, "MobileNet v1"),
        ("mobilenet_v2_1.0_224", 320, "MobileNetV2"),
    ],
)
def test_switching_backbone_or_mode_re_embeds_the_examples(at, models_dir, network, resolution, label):
    if not (models_dir / "mobilenet_v2_1.0_224_no_top.weights.h5").is_file():
        pytest.skip("../shared/models has no MobileNetV2 weights")
    for colour, slot in ((RED, 0), (BLUE, 1)):
        show_camera(at, photo(colour))
        at.button(key=f"add_{slot}").click().run()
    at.selectbox(key="network").set_value(network)
    at.radio(key="resolution").set_value(resolution).run()
    assert not at.exception, at.exception
    live = at.session_state.live
    wanted = get_backbone(network).at(resolution)
    assert live.embedder.backbone == wanted.id and live.embedder.input_size == resolution
    assert live.classifier.dim == live.embedder.dim
    assert live.classifier.counts() == {"Class 1": 1, "Class 2": 1, "Class 3": 0}
    assert any("re-embedded" in s for s in text(at.success))
    caption = " ".join(text(at.caption))
    assert label in caption and f"{wanted.mode} mode ({resolution} px)" in caption
    show_camera(at, photo(BLUE))
    at.run()
    assert at.metric[0].value == "Class 2"


def test_missing_weights_are_explained_not_a_traceback(camera_calls, monkeypatch, tmp_path):
    """A backbone whose weights this machine cannot get (offline, none in KNN_WEIGHTS_DIR): the page
    is drawn as ever, camera included, and says why the model cannot answer."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    missing = "mobilenet_v2_0.35_224"
    monkeypatch.setenv("KNN_BACKBONE", missing)
    monkeypatch.setenv("KNN_CACHE", str(tmp_path))  # an empty cache
    st.cache_resource.clear()  # the settings are read once per process: read them again
    try:
        app = AppTest.from_file(APP, default_timeout=300)
        app.run()
        assert camera_calls  # the page did not wait for the model
        job = app.session_state.live.embedder  # the process's model job (knn.serving.model_job)
        assert job.backbone == missing
        assert job.wait(120) and not job.ready
        app.run()
        assert not app.exception
        assert any("No weights for this backbone" in e for e in text(app.error))
    finally:
        st.cache_resource.clear()  # the next tests read their own settings


def test_export_the_taught_model_as_a_download(at):
    import zipfile

    at.button(key="build_export").click().run()  # nothing taught yet
    assert any("Could not export" in e for e in text(at.error))
    assert "export" not in at.session_state
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    show_camera(at, photo(BLUE))
    at.button(key="add_1").click().run()
    at.button(key="build_export").click().run()  # .keras, the default format
    fmt, data, _ = at.session_state.export
    assert fmt == "keras"
    labels = zipfile.ZipFile(io.BytesIO(data)).read("labels.txt").decode().splitlines()
    assert labels == ["Class 1", "Class 2", "Class 3"]
    assert [b.label for b in at.get("download_button")][-1].startswith("Download model.keras")
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    assert any("build it again" in c for c in text(at.caption))


def test_a_full_session_draws_one_page_of_class_cards_and_thumbnails(at):
    """100 classes and 5,000 examples (the limits): the page draws 10 cards and 24 thumbnails,
    so a click costs the same as with three classes."""
    from knn.core.limits import MAX_CLASSES, MAX_EXAMPLES

    dim = at.session_state.live.embedder.dim
    rng = np.random.default_rng(3)
    jpeg = encode_jpeg(photo(RED))
    clf = KNNClassifier(max_examples_per_class=MAX_EXAMPLES)
    labels = [f"class {i}" for i in range(MAX_CLASSES)]
    for label in labels:
        clf.add_class(label)
    per_class = MAX_EXAMPLES // MAX_CLASSES
    clf.add_many(
        rng.standard_normal((MAX_EXAMPLES, dim)).astype(np.float32),
        [labels[i // per_class] for i in range(MAX_EXAMPLES)],
        [jpeg] * MAX_EXAMPLES,
    )
    data = project_bytes(clf, at.session_state.live.embedder.backbone)
    at.file_uploader(key="project_upload_0").set_value(("full.npz", data, "application/octet-stream")).run()
    assert any("100 classes, 5000 examples" in s for s in text(at.success))
    names = [t.value for t in at.sidebar.text_input]
    assert names == labels[:10]
    assert at.button(key="add_class").disabled  # no room for a 101st class
    at.number_input(key="class_page").set_value(10).run()
    assert [t.value for t in at.sidebar.text_input] == labels[90:]
    thumbnails = [b for b in at.button if b.key and b.key.startswith("delete_example_")]
    assert len(thumbnails) == 24  # one class's first page


def _camera_block_index(at) -> int:
    """Where the columns holding the camera sit among the main area's elements."""
    return next(
        i
        for i, node in enumerate(at.main.children.values())
        if [getattr(c, "type", "") for c in getattr(node, "children", {}).values()] == ["column", "column"]
    )


def test_messages_never_move_the_camera_and_stay_until_the_next_action(at):
    """A message above the camera moved the component, which remounts it and drops the stream."""
    first = _camera_block_index(at)
    at.file_uploader(key="project_upload_0").set_value(("broken.npz", b"PK\x03\x04 nonsense", "application/zip")).run()
    assert _camera_block_index(at) == first
    assert any("Could not restore broken.npz" in e for e in text(at.error))
    at.run()  # a rerun that is no action (the live panel asks for one when the counts change)
    assert any("Could not restore broken.npz" in e for e in text(at.error))
    at.number_input(key="k").set_value(5).run()  # the next action
    assert not any("Could not restore" in e for e in text(at.error))
    at.file_uploader(key="project_upload_1").set_value(("broken.npz", b"nonsense", "application/zip")).run()
    at.button(key="dismiss_main").click().run()
    assert not any("Could not restore" in e for e in text(at.error)) and _camera_block_index(at) == first
    show_camera(at, photo(RED))
    at.button(key="quick_add_0").click().run()  # the buttons under the camera, after it
    assert counts(at)[0] == "1 example" and _camera_block_index(at) == first


def test_quick_buttons_carry_the_keys(at):
    adds = [at.button(key=f"quick_add_{slot}") for slot in range(3)]
    records = [at.button(key=f"quick_record_{slot}") for slot in range(3)]
    assert [b.proto.shortcut for b in adds] == ["1", "2", "3"]
    assert [b.proto.shortcut for b in records] == ["shift+1", "shift+2", "shift+3"]
    at.button(key="quick_record_1").click().run()  # no frame yet: said under the camera, not in the sidebar
    assert any("No camera frame yet" in w for w in text(at.main.warning))


def test_the_coach_names_what_to_teach_and_moves_a_mislabelled_example(at):
    at.number_input(key="k").set_value(1).run()
    reds = [(200 + i, 30, 30) for i in range(0, 50, 10)]
    blues = [(30, 30, 200 + i) for i in range(0, 50, 10)]
    for colour in reds:
        show_camera(at, photo(colour))
        at.button(key="add_0").click().run()
    for colour in blues + [(205, 35, 30)]:  # a red frame added to the blue class by mistake
        show_camera(at, photo(colour))
        at.button(key="add_1").click().run()
    session = at.session_state.live
    wait_until(lambda: session.analysis.latest(session.classifier)[1], 30, "the coach's analysis")
    at.run()
    coach = " ".join(text(at.main.markdown))
    assert "“Class 3” has no examples yet" in coach and "1 example looks mislabelled" in coach, coach
    wrong = session.classifier.examples("Class 2")[-1].example_id
    cards = [c for c in text(at.sidebar.caption) if c.endswith("recognised")]
    assert len(cards) == 2 and cards[0].startswith("5 examples · ") and cards[1].startswith("6 examples · ")
    at.button(key=f"move_{wrong}_0").click().run()  # Move to “Class 1”
    assert session.classifier.counts() == {"Class 1": 6, "Class 2": 5, "Class 3": 0}


def undecided(at) -> list:
    """Teach two classes, then show the camera something between them until the page asks where
    it belongs; the hint's two buttons."""
    from knn.core.coach import HESITATION_SECONDS
    from knn.live.worker import MODEL_WORKER

    for colour, slot in ((RED, 0), (BLUE, 1), ((150, 20, 90), 0), ((90, 20, 150), 1)):
        show_camera(at, photo(colour))
        at.button(key=f"add_{slot}").click().run()
    show_camera(at, photo((20, 200, 20)))  # the camera looks elsewhere: purple is then a new scene (knn.live.steady)
    show_camera(at, photo((120, 20, 120)))
    at.run()
    time.sleep(HESITATION_SECONDS)  # the session's own clock: the page is not given another
    show_camera(at, photo((120, 20, 120)))
    # A still frame is answered at once and its refresh runs on the model worker: the page's
    # snapshot must come after it, or the frame looks older than the camera's live window.
    wait_until(lambda: MODEL_WORKER.busy() == 0, 20, "the model to renew the still frame's answer")
    at.run()  # the live panel notices; the page draws the hint on its next run (in a browser the
    at.run()  # panel's next timed run asks for it; AppTest only runs the whole page)
    assert any("Undecided between" in i for i in text(at.info))
    return [b for b in at.button if (b.key or "").startswith("hesitation_add_")]


def test_a_frame_between_two_classes_asks_where_it_belongs(at):
    buttons = undecided(at)
    assert len(buttons) == 2
    buttons[0].click().run()
    assert sum(at.session_state.live.classifier.counts().values()) == 5


def test_a_class_of_the_hint_renamed_while_it_shows_ends_the_hint(at):
    """The session's hesitation names the old class a few seconds more: the page draws no hint
    for a pair it no longer has (it raised ValueError on it; so did a project restored meanwhile)."""
    assert len(undecided(at)) == 2
    at.text_input(key="name_0").set_value("Crimson").run()
    at.run()
    assert not at.exception, at.exception
    assert not any("Undecided between" in i for i in text(at.info))


def test_the_settings_widgets_default_to_what_the_engine_uses(at):
    """A widget the browser redraws without its state falls back to its default, so each Settings
    widget's default is the engine's value: such a redraw can neither change k nor switch the
    backbone (a busy tab once switched itself to the first backbone this way)."""
    from knn.model.backbones import RESOLUTIONS

    at.number_input(key="k").set_value(5).run()
    at.slider(key="threshold").set_value(0.4).run()
    at.toggle(key="mirror").set_value(True).run()
    live = at.session_state.live
    current = get_backbone(live.embedder.backbone)
    assert live.classifier.k == 5 and at.number_input(key="k").proto.default == 5
    assert list(at.slider(key="threshold").proto.default) == [pytest.approx(0.4)]
    assert at.toggle(key="mirror").proto.default is True
    assert list(knn.BACKBONES)[at.selectbox(key="network").proto.default] == current.network
    assert list(RESOLUTIONS)[at.radio(key="resolution").proto.default] == current.size
    at.run()  # a rerun with no action switches nothing
    assert at.session_state.live.embedder.backbone == current.id


def test_the_coach_tries_other_settings_off_the_page_and_says_when_its_answer_is_stale(at):
    """Too few examples: the trial says what is missing; a later Add makes that answer stale."""
    for slot, colour in [(0, RED), (1, BLUE)]:
        for shade in range(3):
            show_camera(at, photo((colour[0] + 5 * shade, 30, colour[2] + 5 * shade)))
            at.button(key=f"add_{slot}").click().run()
    session = at.session_state.live
    wait_until(lambda: session.analysis.latest(session.classifier)[1], 30, "the coach's analysis")
    at.run()
    at.button(key="try_rules").click().run()
    wait_until(lambda: at.session_state.rule_trial.job.done, 30, "the trial")
    at.run()
    said = " ".join(text(at.main.info))
    assert "Not enough evidence yet to change settings." in said and "has 3 examples from 3 batches" in said, said
    assert not [b for b in at.button if b.key == "switch_rule"]
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    assert any("changed since: try again" in c for c in text(at.main.caption))
