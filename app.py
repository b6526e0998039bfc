"""The page: teach classes from the webcam and watch live predictions.  `streamlit run app.py`

Wiring only. Each browser session gets its own `LiveSession` (knn.live.session) in
st.session_state; its camera goes to `session.pipeline` (knn.live.pipeline), which never calls
st.*. Widgets call the session's methods; a fragment draws `LiveSession.snapshot()` once a second
without rerunning the page. The embedder is loaded once per process and shared by every session.

Everything a user typed or uploaded (class and file names) goes through `md()` before Streamlit
renders it, since labels, captions and messages are Markdown. No bare strings at module level:
Streamlit's magic would render them on the page.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable

import pandas as pd
import psutil
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

import knn
from knn.core.coach import Coaching, Suspect
from knn.core.limits import MAX_CLASSES, MAX_IMAGE_BYTES
from knn.core.project import MAX_PROJECT_BYTES, load_project, project_bytes, read_project_meta
from knn.live.pipeline import ANSWER_SIZE, streaming_cameras
from knn.live.session import RECORD_SECONDS, LiveSession, Snapshot
from knn.model.backbones import RESOLUTIONS, get_backbone
from knn.model.choice import BackboneChoice, choose_backbone
from knn.model.export import ExportError, export_bytes
from knn.serving.camera_context import forget_last_draw
from knn.serving.clicks import fragments_alone
from knn.serving.ice import camera_rtc
from knn.serving.settings import Settings, SettingsError
from knn.serving.startup import Started, start

START_CLASSES = ("Class 1", "Class 2", "Class 3")
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]
# A page run draws at most this many class cards and example thumbnails, whatever the session
# holds: Streamlit's cost per keyed widget grows with the number of widgets (docs/performance.md).
CARDS_PER_PAGE = 10
EXAMPLES_PER_PAGE = 24
KEYED_CLASSES = 9  # keys 1-9 add to classes 1-9, Shift+1-9 record
SUSPECTS_SHOWN = 6
THUMBNAIL_PX = 96
# Keyboard hints mean nothing on a touch screen, and there they would make each class's buttons
# wider than a phone's half width.
TOUCH_CSS = "<style>@media (hover: none), (max-width: 640px) {.st-key-quick_add kbd {display: none;}}</style>"
# The live panel's redraw period; each redraw costs the server and the browser (docs/performance.md),
# so it slows down while more than BUSY_SESSIONS cameras stream to this process.
REFRESH_SECONDS = 1.0
BUSY_REFRESH_SECONDS = 2.0
BUSY_SESSIONS = 2

st.set_page_config(page_title="Webcam KNN classifier", page_icon="📷", layout="wide")
ss = st.session_state


@st.cache_resource(show_spinner=False)
def serving() -> Started:
    """Once per process: settings from the environment, memory, GC, the bandwidth floor, metrics."""
    return start(Settings.from_env())


# ---- helpers -------------------------------------------------------------------------------------

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$=^&])")


def md(text: object) -> str:
    """Escape text so Markdown shows it literally (no links, images, colours or emphasis)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def say(kind: str, text: str, where: str | int = "main") -> None:
    """Show a message (success/info/warning/error) at `where` ("main": the slot under the camera;
    a class's slot: its card) until the user's next action or a click on Dismiss."""
    ss.message_seq = ss.get("message_seq", 0) + 1
    ss.setdefault("messages", []).append((ss.message_seq, where, kind, text))


def begin_action() -> None:
    """A new user action: the previous action's messages have been read."""
    ss.messages = []


def one_click(callback):
    """For a button drawn outside the live panel's fragment: skip the copy of a click that the
    panel's timed rerun carries, so a click acts once (knn.serving.clicks)."""

    @functools.wraps(callback)
    def wrapped(*args, **kwargs):
        if serving().one_click_each and fragments_alone(get_script_run_ctx()):
            return None
        return callback(*args, **kwargs)

    return wrapped


def show_messages(where: str | int | None) -> None:
    """Draw the messages for `where` (None: every one not drawn elsewhere this run, e.g. of a deleted
    class or a card on another page) and a Dismiss button; they stay until the next action."""
    drawn = ss.setdefault("drawn_messages", set())
    mine = [m for m in ss.get("messages", []) if (m[1] == where if where is not None else m[0] not in drawn)]
    for seq, _, kind, text in mine:
        getattr(st, kind)(md(text))
        drawn.add(seq)
    if mine:
        st.button(
            "Dismiss",
            key=f"dismiss_{where if where is not None else 'main'}",
            type="tertiary",
            on_click=dismiss,
            args=(tuple(m[0] for m in mine),),
        )


@one_click
def dismiss(seqs: tuple[int, ...]) -> None:
    ss.messages = [m for m in ss.get("messages", []) if m[0] not in seqs]


def user_action(callback):
    """A widget callback that is a user action: it starts by clearing the last action's messages."""

    @functools.wraps(callback)
    def wrapped(*args, **kwargs):
        begin_action()
        return callback(*args, **kwargs)

    return wrapped


@st.cache_resource(show_spinner=False)
def load_embedder(backbone: str) -> knn.Embedder:
    """One embedder per backbone per process, shared by all sessions (it is thread-safe)."""
    return knn.Embedder(backbone, threads=serving().settings.threads)


@st.cache_resource(show_spinner=False)
def default_backbone() -> BackboneChoice:
    """Once per process: the backbone sessions start with, and why: the operator's KNN_BACKBONE,
    else the best one this machine can get (knn.model.choice)."""
    configured = serving().settings.backbone
    if configured:
        return BackboneChoice(configured, "set by the server's KNN_BACKBONE")
    return choose_backbone()


def embedder_for(backbone: str) -> knn.Embedder:
    with st.spinner(f"Loading {backbone}… (the first time, weights are converted: up to a minute)"):
        return load_embedder(backbone)


def live() -> LiveSession:
    return ss.live


def slot_of(label: str) -> int:
    """A stable widget-key number per class, so renaming a class keeps its widgets."""
    if label not in ss.slots:
        ss.slots[label] = ss.next_slot
        ss.next_slot += 1
    return ss.slots[label]


# ---- per-session state ---------------------------------------------------------------------------


def init_session() -> None:
    if "live" in ss:
        return
    try:
        with st.spinner("Choosing the backbone… (the first time, weights are converted: up to a minute)"):
            embedder = embedder_for(default_backbone().backbone)
    except knn.WeightsUnavailable as exc:
        st.error(md(exc))
        st.stop()
    ss.live = LiveSession(embedder, classes=START_CLASSES, steady=serving().settings.steady)
    ss.slots, ss.next_slot, ss.messages, ss.message_seq = {}, 0, [], 0


# The Settings widgets take their defaults from the engine on every run and are never given values
# through st.session_state: a widget the browser redraws without its state falls back to its
# default, and a fixed default (the first backbone, k = 1) once switched a busy tab's backbone by
# itself (docs/performance.md). To show the engine's new values, their state is dropped instead.


def sync_backbone_widgets() -> None:
    """Show the backbone in use in the Backbone and Input widgets (after a switch or a restore)."""
    ss.pop("network", None)
    ss.pop("resolution", None)


def sync_settings() -> None:
    """Show the classifier's own k and threshold in the widgets (after a project restore)."""
    ss.pop("k", None)
    ss.pop("threshold", None)


# ---- callbacks (run before the page, in the script thread) ---------------------------------------


def class_action(action):
    """Make a class's callback: `action(slot, label)`; engine refusals become messages on the card,
    or at `where` (the buttons under the camera say them there, the sidebar may be folded away).

    It does nothing when the card's class is already gone (a second click on Delete can arrive
    before the page has redrawn).
    """

    @functools.wraps(action)
    def callback(slot: int, *args, where: str | int | None = None) -> None:
        begin_action()
        label = next((name for name, s in ss.slots.items() if s == slot), None)
        if label is None:
            return
        try:
            action(slot, label, *args)
        except ValueError as exc:  # LiveError, ClassifierError, ...: the message says what to do
            say("warning", str(exc), slot if where is None else where)

    return callback


@class_action
def on_rename(slot: int, old: str) -> None:
    key = f"name_{slot}"
    typed = ss[key]
    ss[key] = old  # shown again unless the rename succeeds
    try:
        new = live().rename_class(old, typed)
    except ValueError as exc:
        say("error", f"Cannot rename “{old}”: {exc}", slot)
        return
    ss.slots[new] = ss.slots.pop(old)
    ss[key] = new  # as stored: spaces trimmed, Unicode normalised


@one_click
@class_action
def on_add(slot: int, label: str) -> None:
    live().add_latest(label)
    st.toast(md(f"Added the current frame to “{label}”"))


@one_click
@class_action
def on_record(slot: int, label: str) -> None:
    live().start_recording(label, float(ss.get("record_seconds", RECORD_SECONDS)))


@one_click
@class_action
def on_clear(slot: int, label: str) -> None:
    live().clear_class(label)


@one_click
@class_action
def on_delete(slot: int, label: str) -> None:
    live().remove_class(label)
    del ss.slots[label]


@one_click
@user_action
def on_add_class() -> None:
    taken = set(live().classifier.classes)
    n = len(taken) + 1
    while f"Class {n}" in taken:
        n += 1
    try:
        live().add_class(f"Class {n}")
    except ValueError as exc:  # the class limit
        say("warning", str(exc), "classes")
        return
    ss.class_page = -(-(len(taken) + 1) // CARDS_PER_PAGE)  # the page with the new card


@one_click
@user_action
def on_delete_example(example_id: int) -> None:
    with contextlib.suppress(ValueError):  # already gone (a second click before the page redrew)
        live().remove_example(example_id)


@one_click
@user_action
def on_keep_example(example_id: int) -> None:
    ss.setdefault("kept_examples", set()).add(example_id)


@one_click
@user_action
def on_move_example(example_id: int, label: str) -> None:
    try:
        live().move_example(example_id, label)
    except ValueError as exc:  # the example or the class went away meanwhile
        say("warning", f"Could not move the example: {exc}")
        return
    st.toast(md(f"Moved the example to “{label}”"))


@user_action
def on_backbone_choice() -> None:
    """The user chose another backbone or input: switched at the start of this run."""
    ss.backbone_asked = True


@user_action
def on_k() -> None:
    live().set_k(int(ss.k))


@user_action
def on_threshold() -> None:
    live().set_unknown_threshold(float(ss.threshold) or None)


@user_action
def on_mirror() -> None:
    live().set_mirror(bool(ss.mirror))


@user_action
def on_augment() -> None:
    live().augment = bool(ss.augment)


# ---- uploads (taken by the page, not by callbacks) ------------------------------------------------
# Streamlit stops a callback at its first st.session_state access when another rerun is waiting,
# as one is under load, and an uploader's value never calls its callback again: the upload was
# silently lost (docs/performance.md). An uploader keeps its files until the page takes them, so
# here a run that is stopped leaves them for the next one, and the mark that they were taken is
# set straight after the engine took them, with no st.* call in between.


def upload_key(slot: int) -> str:
    return f"upload_{slot}_{ss.get(f'upload_nonce_{slot}', 0)}"


def project_key() -> str:
    return f"project_upload_{ss.get('project_nonce', 0)}"


def take_images() -> None:
    """Add the images uploaded to any class card, then give that card a fresh, empty uploader."""
    taken = ss.setdefault("taken_uploads", set())
    for label, slot in list(ss.slots.items()):
        key = upload_key(slot)
        files = ss.get(key)
        if not files:
            continue
        if key not in taken:
            begin_action()
            session = live()
            batch = [(f.name, f.getvalue()) for f in files]
            try:
                ids, errors = session.add_images(label, batch)
            except ValueError as exc:  # the class went away meanwhile
                ids, errors = [], [str(exc)]
            taken.add(key)
            if ids:
                say("success", f"Added {len(ids)} image{'s' * (len(ids) != 1)} to “{label}”.", slot)
            for error in errors:
                say("error", f"Refused: {error}", slot)
        ss[f"upload_nonce_{slot}"] = ss.get(f"upload_nonce_{slot}", 0) + 1


def restore_if_asked() -> None:
    """A project was uploaded: use it with its own backbone if this server has it, else re-embed
    its stored images with the backbone in use. Then a fresh, empty project uploader."""
    key = project_key()
    upload = ss.get(key)
    if upload is None:
        return
    taken = ss.setdefault("taken_uploads", set())
    if key not in taken:
        begin_action()
        restore_project(upload, lambda: taken.add(key))
    ss.project_nonce = ss.get("project_nonce", 0) + 1


def restore_project(upload, mark_taken: Callable[[], None]) -> None:
    """Restore the uploaded project file (`upload`: Streamlit's UploadedFile), calling `mark_taken`
    once it is restored or refused, before anything else that could stop the run."""
    try:
        data = upload.getvalue()
        backbone = read_project_meta(data)["backbone"]
        get_backbone(backbone)
        classifier = load_project(data)
    except ValueError as exc:  # ProjectFileError, or a backbone this version does not know
        mark_taken()
        say("error", f"Could not restore {upload.name}: {exc}. Your classes are unchanged.")
        return
    name, session, note = upload.name, live(), ""
    try:
        embedder = embedder_for(backbone)
    except knn.WeightsUnavailable as exc:
        embedder = session.embedder
        note = (
            f" It was made with {backbone}, which this server cannot load ({exc}); its examples were "
            f"re-embedded from their images with {embedder.backbone}."
        )
    bar = st.progress(0.0, text=f"Re-embedding the examples of {name}…")
    try:  # a run stopped meanwhile leaves the classes as they were, and the next run restores
        dropped = session.restore(classifier, backbone, embedder, lambda f, text: bar.progress(f, text=text))
        mark_taken()
    except ValueError as exc:
        mark_taken()
        say("error", f"Could not restore {name}: {exc}. Your classes are unchanged.")
        return
    finally:
        bar.empty()
    ss.slots = {}  # new classes, new widgets
    sync_settings()
    sync_backbone_widgets()
    clf = session.classifier
    say("success", f"Restored {name}: {len(clf.classes)} classes, {len(clf)} examples ({embedder.backbone}).{note}")
    if dropped:
        say("warning", f"{dropped} examples of {name} had no stored image to re-embed and were left out.")


# ---- page parts ----------------------------------------------------------------------------------


def switch_backbone_if_asked() -> None:
    """The Backbone or Input setting changed: load that model and re-embed the stored examples."""
    session = live()
    if not ss.pop("backbone_asked", False):
        return
    wanted = get_backbone(ss.network).at(int(ss.resolution)).id
    if wanted == session.embedder.backbone:
        return
    try:
        embedder = embedder_for(wanted)
    except knn.WeightsUnavailable as exc:
        say("error", f"Cannot use {wanted}: {exc}")
        sync_backbone_widgets()
        return
    bar = st.progress(0.0, text="Re-embedding the stored examples…")
    dropped = session.set_embedder(embedder, lambda fraction, text: bar.progress(fraction, text=text))
    bar.empty()
    say("success", f"Now using {embedder.backbone}; every example was re-embedded.")
    if dropped:
        say("warning", f"{dropped} examples had no stored image and were removed.")


def header() -> None:
    """The title, a slot for the backbone caption (filled by `backbone_caption` once a switch or a
    restore is done) and one for the operator's typos: a fixed number of elements, always."""
    st.title("Webcam KNN classifier")
    ss.caption_slot = st.empty()
    with st.container(key="operator_problems"):
        for problem in serving().settings.problems:  # the operator's typo, on every run
            st.warning(md(problem))


def backbone_caption() -> None:
    embedder = live().embedder
    spec = get_backbone(embedder.backbone)
    choice = default_backbone()
    why = choice.reason if embedder.backbone == choice.backbone else "chosen in Settings or by the project"
    ss.caption_slot.caption(
        f"Backbone: **{md(spec.label.split(' · ')[0])}** (`{embedder.backbone}`), "
        f"{md(spec.mode)} mode ({spec.size} px)",
        help=f"{embedder.dim}-d embeddings, {md(embedder.runtime)} runtime · why: {md(why)} · "
        f"weights: {md(embedder.weights_source)}",
    )


def camera() -> None:
    """The WebRTC camera: frames go to this session's pipeline, its results come back."""
    from streamlit_webrtc import WebRtcMode, webrtc_streamer  # looked up per run: tests swap it

    pipeline = live().pipeline
    if serving().cameras_kept:
        forget_last_draw(ss.get("camera"))  # drawn on every run: never an orphan (knn.serving.camera_context)
    webrtc_streamer(
        key="camera",
        mode=WebRtcMode.SENDRECV,
        **camera_rtc(configured_ice_servers(), serving()),
        media_stream_constraints={
            "video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 30}},
            "audio": False,
        },
        sink_video_track=pipeline.sink,
        source_video_track=pipeline.output,
    )
    st.caption(
        "Press **START** and allow camera access. Frames are classified on the server; "
        "nothing is stored unless you press Add or Record."
    )


def configured_ice_servers() -> list[dict] | None:
    """The operator's ICE servers (a secret, else KNN_ICE_SERVERS); None: streamlit-webrtc chooses."""
    ss.ice_problem = None
    try:
        secret = st.secrets.get("ice_servers")
    except Exception:  # no secrets.toml at all: that is the usual case locally
        secret = None
    settings = serving().settings
    try:
        return settings.ice_server_list(secret)
    except SettingsError as exc:  # said under the camera (`notices`): nothing may stand above it
        ss.ice_problem = f"ICE server setting ignored: {exc}"
        return settings.ice_server_list(None)


def guidance(snap: Snapshot) -> None:
    """Say what to do next instead of showing empty numbers."""
    with_examples = [c for c in snap.classes if snap.counts[c]]
    if not snap.classes:
        st.info("There are no classes: press **+ Add class** in the sidebar.")
    elif not snap.camera_live:
        st.info(
            "Press **START** under the camera (and allow camera access). You can also upload "
            "images to a class in the sidebar, or restore a project."
        )
    elif not with_examples:
        st.info(
            "Show the camera something and press a class's **+** button under the camera (one frame; "
            "keys 1–9) or its **⏺** button (a few seconds; Shift+1–9), or Add / Record on its card in the "
            "sidebar. Then do the same for another class."
        )
    elif len(with_examples) == 1:
        st.info("Now teach a second class: one class alone always wins.")


def panel_period() -> float:
    return BUSY_REFRESH_SECONDS if streaming_cameras() > BUSY_SESSIONS else REFRESH_SECONDS


def live_panel() -> None:
    """The live panel as a fragment redrawn every `panel_period()` seconds."""
    ss.panel_period = panel_period()
    st.fragment(live_panel_body, run_every=ss.panel_period)()


def live_panel_body() -> None:
    session = live()
    snap = session.snapshot()
    notice = session.take_notice()
    if notice:
        st.toast(md(notice))
    guidance(snap)
    pred = snap.prediction
    with st.container(key="live_prediction"):
        if pred is None:
            st.metric("Prediction", "—")  # no frame yet
        elif pred.label is None:
            st.metric("Prediction", "unknown" if snap.n_examples else "no examples")
            if snap.n_examples:
                st.caption(f"best similarity {pred.similarity:.2f} is below the threshold")
        else:
            st.metric("Prediction", md(pred.label))
            st.caption(f"confidence {pred.confidences[pred.label]:.0%} · best similarity {pred.similarity:.2f}")
        spec = get_backbone(snap.backbone)
        st.caption(
            f"{md(spec.label.split(' · ')[0])} · {md(spec.mode)} input ({spec.size} px)",
            help="Change the backbone and the input mode in the sidebar's Settings",
        )
    # In class order: the two swap places as the camera wavers, and the page redraws on a change.
    ss.hesitation = tuple(c for c in snap.classes if c in snap.hesitation[:2]) if snap.hesitation else None
    if snap.recording:
        label, seconds_left, seconds = snap.recording
        st.progress(
            max(0.0, min(1.0, 1 - seconds_left / seconds)),
            text=md(f"Recording into “{label}”: {seconds_left:.1f} s left"),
        )
    st.dataframe(
        pd.DataFrame(
            {
                "class": list(snap.classes),
                "confidence": [pred.confidences.get(c, 0.0) if pred else 0.0 for c in snap.classes],
                "examples": [snap.counts[c] for c in snap.classes],
            }
        ),
        column_config={
            "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="percent")
        },
        hide_index=True,
        key="confidences",
    )
    stats_table(snap)
    why(snap)
    if page_is_stale(session, snap):
        st.rerun()


def page_is_stale(session: LiveSession, snap: Snapshot) -> bool:
    """Whether the panel's timed run should redraw the whole page. Never while the page itself is
    being drawn: the request would stop that run, and a page whose runs all stop keeps showing
    elements of its earlier runs (the next timed run asks again; knn.serving.clicks)."""
    if serving().one_click_each and not fragments_alone(get_script_run_ctx()):
        return False
    # Recording adds examples in the callback: the sidebar's counts catch up once it ends (a full
    # rerun per refresh while recording would be wasteful). The coach's new analysis goes to the
    # cards and the coach's panel; the hesitation hint is the page's, since its buttons act.
    return (
        (snap.recording is None and (snap.counts != ss.get("drawn_counts") or coach_is_new(session)))
        or ss.hesitation != ss.get("drawn_hesitation")
        or panel_period() != ss.get("panel_period")
    )  # cameras started or stopped elsewhere


def hesitation_hint() -> None:
    """The live panel saw the camera waver between two classes: ask for the frame where it belongs.
    Drawn by the page, not by the panel's fragment, like every button that acts (`one_click`)."""
    pair = ss.drawn_hesitation = ss.get("hesitation")
    if pair is None:
        return
    best, second = pair
    with st.container(key="hesitation"):
        st.info(
            md(f"Undecided between “{best}” and “{second}”. If the camera shows one of them, add this frame to it:")
        )
        with st.container(horizontal=True, gap="small"):
            for label in (best, second):
                if label in ss.slots:
                    st.button(
                        md(f"Add to “{label}”"),
                        key=f"hesitation_add_{ss.slots[label]}",
                        on_click=on_add,
                        args=(ss.slots[label],),
                        kwargs={"where": "main"},
                    )


def stats_table(snap: Snapshot) -> None:
    s = snap.stats
    rss = psutil.Process().memory_info().rss
    store = snap.n_examples * snap.dim * 4
    rows = {
        "frames/s received · answered": f"{s.received_fps:.1f} · {s.answered_fps:.1f}",
        # fresh: the model saw the frame; reused: a still scene kept the last answer (knn.live.steady)
        "answered frames/s fresh · reused": f"{s.processed_fps:.1f} · {s.reused_fps:.1f}",
        "frames received · fresh · reused · dropped": (
            f"{s.frames_received} · {s.frames_processed} · {s.frames_reused} · {s.frames_dropped}"
        ),
        "embedding time p50 · p95": f"{_ms(s.embed_ms_p50)} · {_ms(s.embed_ms_p95)}",
        "KNN time p50 · p95": f"{_ms(s.knn_ms_p50)} · {_ms(s.knn_ms_p95)}",
        # knn.live.answer_size: many cameras on this process send the captioned video back smaller
        "video sent back": f"half size ({ANSWER_SIZE.cameras} cameras on this server process)"
        if ANSWER_SIZE.halved()
        else "the camera's size",
        "examples stored": f"{snap.n_examples} ({store / 1024**2:.1f} MB of embeddings)",
        "process memory": f"{rss / 1024**2:.0f} MB",
    }
    with st.container(key="live_stats"):
        st.table(pd.DataFrame({"": list(rows.values())}, index=list(rows)), border="horizontal", hide_header=True)


def _ms(value: float) -> str:
    if value != value:  # nan before the first frame
        return "—"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def why(snap: Snapshot) -> None:
    if not snap.neighbors:
        return
    st.markdown("**Why this answer:** the nearest stored examples")
    # A row that wraps, not columns: columns stack on a phone, one full-width picture each.
    with st.container(horizontal=True, gap="small"):
        for n in snap.neighbors:
            with st.container(width=THUMBNAIL_PX):
                if n.image:
                    st.image(n.image, width="stretch")
                st.caption(md(f"{n.label} · similarity {n.similarity:.2f}"))


def quick_add() -> None:
    """Add and Record for the first nine classes under the camera: keys 1-9 and Shift+1-9 press
    them (Streamlit ignores them while a text box has the focus), and on a phone they are reachable
    without opening the sidebar."""
    labels = live().classifier.classes[:KEYED_CLASSES]
    st.html(TOUCH_CSS)
    with st.container(horizontal=True, gap="small", key="quick_add"):
        for n, label in enumerate(labels, 1):
            slot = slot_of(label)
            with st.container(horizontal=True, gap=None, width="content", key=f"quick_{slot}"):
                st.button(
                    md(label),
                    icon=":material/add:",
                    key=f"quick_add_{slot}",
                    on_click=on_add,
                    args=(slot,),
                    kwargs={"where": "main"},
                    shortcut=str(n),
                    help=md(f"Add the current frame to “{label}” (key {n})"),
                )
                st.button(
                    "",
                    icon=":material/radio_button_checked:",
                    key=f"quick_record_{slot}",
                    on_click=on_record,
                    args=(slot,),
                    kwargs={"where": "main"},
                    shortcut=f"Shift+{n}",
                    help=md(
                        f"Record frames into “{label}” for {ss.get('record_seconds', RECORD_SECONDS):g} s (Shift+{n})"
                    ),
                )
    if len(live().classifier.classes) > KEYED_CLASSES:
        st.caption(f"Classes after the {KEYED_CLASSES}th: Add and Record on their cards in the sidebar.")


def coach_key(session: LiveSession, version: int) -> tuple[int, int]:
    return id(session.classifier), version


def coach_is_new(session: LiveSession) -> bool:
    """The analysis has a current result the page has not drawn yet."""
    result, current = session.analysis.latest(session.classifier)
    return current and coach_key(session, result.version) != ss.get("drawn_coach")


def coaching() -> Coaching | None:
    """The latest coaching, current or not (None before the first); queues one when it is stale."""
    session = live()
    result, current = session.analysis.latest(session.classifier)
    if current:
        ss.drawn_coach = coach_key(session, result.version)
    ss.coach_current = current
    return None if result is None else result.coaching


def coach_view(coached: Coaching | None) -> None:
    """What to teach next, from the stored examples (knn.core.coach, computed in the background)."""
    counts = live().classifier.counts()
    with st.container(key="coach", border=True):
        st.markdown("**Coach** · what would make the classifier better")
        if sum(1 for n in counts.values() if n) < 2:
            st.caption(
                "Once two classes have examples, the coach says what to teach next: which classes are "
                "confused, which examples look mislabelled, which need more variety."
            )
            return
        if coached is None:
            st.caption(f"Looking at the {sum(counts.values()):,} examples…")
            return
        tips = coached.tips()
        for tip in tips:
            st.markdown("- " + md(tip))
        if not tips:
            st.success(
                f"Every class is recognised by its other examples "
                f"(leave-one-out {coached.evaluation.accuracy:.0%}). Now try it on new views of each."
            )
        if not ss.coach_current:
            st.caption("Updating for the examples now stored…")
        suspects(coached)


def suspects(coached: Coaching) -> None:
    """Examples that look mislabelled, each with one-click fixes."""
    kept = ss.setdefault("kept_examples", set())
    clf = live().classifier
    # The coaching may predate the last move or delete: show only examples still where it found them.
    shown = [
        s
        for s in coached.suspects
        if s.label in ss.slots and s.example_id not in kept and clf.label_of(s.example_id) == s.label
    ][:SUSPECTS_SHOWN]
    if not shown:
        return
    with st.container(horizontal=True, gap="small"):
        for s in shown:
            suspect_card(s)


def suspect_card(s: Suspect) -> None:
    """A mislabelled-looking example: its picture, where it is, and one click to fix it."""
    with st.container(key=f"suspect_card_{s.example_id}", width=2 * THUMBNAIL_PX, border=True):
        if s.image:
            st.image(s.image, width="stretch")
        st.caption(md(f"in “{s.label}”, nearer to “{s.nearer_to[0]}”"))
        for label in s.nearer_to[:2]:
            st.button(
                md(f"Move to “{label}”"),
                key=f"move_{s.example_id}_{ss.slots.get(label, label)}",
                on_click=on_move_example,
                args=(s.example_id, label),
                width="stretch",
            )
        with st.container(horizontal=True, gap="small"):
            st.button(
                "Delete",
                key=f"suspect_delete_{s.example_id}",
                on_click=on_delete_example,
                args=(s.example_id,),
                type="tertiary",
            )
            st.button(
                "It is right",
                key=f"keep_{s.example_id}",
                on_click=on_keep_example,
                args=(s.example_id,),
                type="tertiary",
                help="Leave it in its class and stop showing it here",
            )


def sidebar(coached: Coaching | None) -> None:
    session = live()
    counts = session.classifier.counts()
    ss.drawn_counts = dict(counts)
    labels = list(counts)
    with st.sidebar:
        st.header("Classes")
        pages = max(1, -(-len(labels) // CARDS_PER_PAGE))
        ss.class_page = min(max(1, ss.get("class_page", 1)), pages)
        if pages > 1:
            st.number_input(f"Page of {pages} ({len(labels)} classes)", 1, pages, key="class_page")
        first = (ss.class_page - 1) * CARDS_PER_PAGE
        for label in labels[first : first + CARDS_PER_PAGE]:
            class_card(label, counts[label], coached)
        st.button(
            "+ Add class",
            key="add_class",
            on_click=on_add_class,
            disabled=len(labels) >= MAX_CLASSES,
            help=f"At most {MAX_CLASSES} classes" if len(labels) >= MAX_CLASSES else None,
        )
        show_messages("classes")
        with st.expander("Settings"):
            settings()
        with st.expander("Project", expanded=False):
            project()


def class_card(label: str, count: int, coached: Coaching | None) -> None:
    slot = slot_of(label)
    with st.container(border=True, key=f"class_{slot}"):
        # The name is the widget's default, not a value put in st.session_state before it: that
        # reaches the browser only with the card's first run, which a busy server can drop unsent,
        # and a card mounted from a later run shows its default (was: empty names after a restore).
        st.text_input(
            "Class name",
            value=label,
            key=f"name_{slot}",
            on_change=on_rename,
            args=(slot,),
            label_visibility="collapsed",
        )
        accuracy = coached.accuracy(label) if coached is not None else float("nan")
        recognised = "" if accuracy != accuracy else f" · {accuracy:.0%} recognised"  # nan: under 2 examples
        st.caption(
            f"{count} example{'s' * (count != 1)}{recognised}",
            help="Recognised: how many of its examples the other examples classify as this class "
            "(leave-one-out), updated whenever the examples change"
            if recognised
            else None,
        )
        with st.container(horizontal=True, gap="small"):
            st.button("Add", key=f"add_{slot}", on_click=on_add, args=(slot,), help="Add the current camera frame")
            st.button(
                "Record",
                key=f"record_{slot}",
                on_click=on_record,
                args=(slot,),
                help="Add camera frames continuously for a few seconds (see Settings)",
            )
            with st.popover("…", help="Clear or delete this class"):
                st.button(
                    "Clear its examples", key=f"clear_{slot}", on_click=on_clear, args=(slot,), disabled=not count
                )
                st.button("Delete the class", key=f"delete_{slot}", on_click=on_delete, args=(slot,), type="primary")
        with st.expander("Upload images"):
            st.file_uploader(
                "Images of this class",
                type=IMAGE_TYPES,
                accept_multiple_files=True,
                key=upload_key(slot),  # taken by `take_images`
                max_upload_size=max(1, MAX_IMAGE_BYTES // 1024**2),
                label_visibility="collapsed",
            )
        show_messages(slot)


def settings() -> None:
    session = live()
    current = get_backbone(session.embedder.backbone)
    st.number_input(
        "k: neighbours that vote",
        min_value=1,
        max_value=50,
        value=session.classifier.k,
        step=1,
        key="k",
        on_change=on_k,
    )
    st.slider(
        "Unknown below similarity (0 = never unknown)",
        min_value=0.0,
        max_value=1.0,
        value=float(session.classifier.unknown_threshold or 0.0),
        step=0.01,
        key="threshold",
        on_change=on_threshold,
    )
    st.slider(
        "Record for (seconds)", min_value=1.0, max_value=10.0, value=RECORD_SECONDS, step=0.5, key="record_seconds"
    )
    st.selectbox(
        "Backbone",
        options=list(knn.BACKBONES),
        format_func=lambda b: knn.BACKBONES[b].label,
        index=list(knn.BACKBONES).index(current.network),
        key="network",
        on_change=on_backbone_choice,
        help="Switching re-embeds every stored example from its stored image",
    )
    st.radio(
        "Input",
        options=list(RESOLUTIONS),
        index=list(RESOLUTIONS).index(current.size),
        key="resolution",
        on_change=on_backbone_choice,
        horizontal=True,
        format_func=lambda size: f"{RESOLUTIONS[size]} ({size} px)",
        help="Accurate sees 320×320 pixels instead of 224×224: twice the work per frame, better with "
        "several examples per class of detailed objects (README's few-shot table)",
    )
    st.toggle(
        "Augment new examples",
        value=session.augment,
        key="augment",
        on_change=on_augment,
        help="Store each new example with its mirror and five crops (12 vectors): it is also recognised "
        "a little off-centre or mirrored. Each Add then costs 12 embeddings.",
    )
    st.toggle("Mirror the preview", value=session.mirror, key="mirror", on_change=on_mirror)


def project() -> None:
    session = live()
    st.download_button(
        "Download project",
        # Built only when clicked (on another thread): the session object, not st.*, is used.
        data=lambda: project_bytes(session.classifier, session.embedder.backbone),
        file_name="knn-project.npz",
        mime="application/octet-stream",
        on_click="ignore",
        key="download_project",
    )
    st.file_uploader(
        "Restore a project (.npz)",
        type=["npz"],
        key=project_key(),  # taken by `restore_if_asked`
        max_upload_size=max(1, MAX_PROJECT_BYTES // 1024**2),
    )
    export_model_files(session)


EXPORT_FORMATS = {"keras": "Keras (.keras)", "tflite": "LiteRT (.tflite)"}


def export_model_files(session: LiveSession) -> None:
    """Build the taught model as one .keras/.tflite file (a child process), then offer it."""
    st.markdown("**Use it in your own code**")
    fmt = st.radio(
        "Model format", list(EXPORT_FORMATS), format_func=EXPORT_FORMATS.get, horizontal=True, key="export_format"
    )
    if st.button(
        "Build model file",
        key="build_export",
        help="MobileNet + the KNN head as one model; the class names are inside it",
    ):
        begin_action()
        bar = st.progress(0.0, text="Starting the export…")
        try:
            data = export_bytes(
                session.classifier,
                session.embedder,
                fmt,
                progress=lambda fraction, text: bar.progress(fraction, text=text),
            )
        except (ExportError, RuntimeError) as exc:
            say("error", f"Could not export: {exc}", "project")
        else:
            ss.export = (fmt, data, session.classifier.counts())
        finally:
            bar.empty()
    show_messages("project")
    built = ss.get("export")
    if built is not None:
        built_fmt, data, counts = built
        st.download_button(
            f"Download model.{built_fmt} ({len(data) / 1024**2:.1f} MB)",
            data,
            file_name=f"knn-model.{built_fmt}",
            mime="application/octet-stream",
            on_click="ignore",
            key="download_export",
        )
        if counts != session.classifier.counts():
            st.caption("The examples changed since this file was built: build it again to include them.")


def examples_view() -> None:
    clf = live().classifier
    counts = clf.counts()
    if not len(clf):
        st.info("No examples yet: Add, Record or upload some from the sidebar.")
        return
    classes = [c for c, n in counts.items() if n]
    if ss.get("examples_class") not in classes:
        ss.examples_class = classes[0]
    label = st.selectbox(
        "Examples of",
        classes,
        key="examples_class",
        format_func=lambda c: f"{c} ({counts[c]} example{'s' * (counts[c] != 1)})",
    )
    examples = clf.examples(label)
    pages = -(-len(examples) // EXAMPLES_PER_PAGE)
    page = 1
    if pages > 1:
        page = st.number_input(f"Page of {pages}", 1, pages, 1, key=f"examples_page_{slot_of(label)}", width=160)
    shown = examples[(page - 1) * EXAMPLES_PER_PAGE : page * EXAMPLES_PER_PAGE]
    cols = st.columns(8)
    for i, example in enumerate(shown):
        with cols[i % 8]:
            if example.image:
                st.image(example.image, width="stretch")
            else:
                st.caption("(no image)")
            st.button(
                "Delete",
                key=f"delete_example_{example.example_id}",
                on_click=on_delete_example,
                args=(example.example_id,),
                type="tertiary",
            )


def evaluation_view() -> None:
    """The Evaluation tab; while its leave-one-out is being computed it checks back every second."""
    session = live()
    current = session.analysis.latest(session.classifier)[1]
    st.fragment(evaluation_body, run_every=None if current else 1.0)(waiting=not current)


def evaluation_body(waiting: bool) -> None:
    import altair as alt  # here: it adds ~25 MB to the serving process, paid once someone looks

    session = live()
    clf = session.classifier
    counts = clf.counts()
    if sum(1 for n in counts.values() if n >= 1) < 2 or len(clf) < 3:
        st.info("Teach at least two classes (three examples in all) to see how well they separate.")
        return
    result, current = session.analysis.latest(clf)
    if waiting and current:
        st.rerun()  # drawn once more by the whole page, which then stops checking
    if result is None:
        st.info(f"Classifying each of the {len(clf):,} examples by all the others…")
        return
    if not current:
        st.caption(f"Updating for the {len(clf):,} examples now stored…")
    ev = result.evaluation
    st.metric(
        "Leave-one-out accuracy",
        f"{ev.accuracy:.1%}",
        help="Each stored example classified by all the others. Frames recorded a moment apart are "
        "near-duplicates, so this is optimistic: judge with new frames too.",
    )
    left, right = st.columns([1, 2])
    left.dataframe(
        pd.DataFrame(
            {
                "class": ev.classes,
                "examples": [counts.get(c, 0) for c in ev.classes],
                "accuracy": [ev.per_class.get(c) for c in ev.classes],
            }
        ),
        column_config={"accuracy": st.column_config.NumberColumn(format="percent")},
        hide_index=True,
    )
    cells = pd.DataFrame(
        [
            {"true class": t, "predicted class": p, "examples": int(ev.confusion[i, j])}
            for i, t in enumerate(ev.classes)
            for j, p in enumerate(ev.classes)
        ]
    )
    base = alt.Chart(cells).encode(
        x=alt.X("predicted class:N", sort=ev.classes, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("true class:N", sort=ev.classes),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("examples:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true class", "predicted class", "examples"],
    )
    most = int(ev.confusion.max()) if ev.confusion.size else 0
    text = base.mark_text(fontSize=14).encode(
        text="examples:Q",
        color=alt.condition(alt.datum.examples > most / 2, alt.value("white"), alt.value("black")),
    )
    chart = (heat + text).properties(title="Confusion matrix (rows: true class)")
    right.altair_chart(chart, width="stretch", height=48 * len(ev.classes) + 90)


# ---- the page ------------------------------------------------------------------------------------
# The camera component must keep its place in the element tree on every run: moving it (an element
# more or less anywhere before it) remounts it, which drops the WebRTC connection. So everything
# above it is a fixed number of elements, and whatever comes and goes (messages, progress bars,
# the quick buttons) sits in containers after it, filled once the work they show is done.

serving()
init_session()
ss.drawn_messages = set()
header()
cam_col, panel_col = st.columns([3, 2], gap="large")
with cam_col:
    camera()
    quick = st.container(key="quick")
    notices = st.container(key="notices")
with notices:
    restore_if_asked()
    take_images()
    switch_backbone_if_asked()
backbone_caption()
coached = coaching()
sidebar(coached)
with notices:
    if ss.get("ice_problem"):
        st.error(md(ss.ice_problem))
    show_messages(None)  # after the sidebar took its own
with quick:
    quick_add()
with panel_col:
    hesitation_hint()
    live_panel()
coach_view(coached)
examples_tab, evaluation_tab = st.tabs(["Examples", "Evaluation"], key="view", on_change="rerun")
if examples_tab.open:
    with examples_tab:
        examples_view()
if evaluation_tab.open:
    with evaluation_tab:
        evaluation_view()
