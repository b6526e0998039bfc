"""Headless Chromium with a fake webcam, and the app in one of its tabs as a user sees it.

Chromium plays a .y4m video (harness.webcam writes one from photos) as its camera, or its own
moving test pattern. `Page` is one tab: what a user clicks and reads, and how many times the page
has run, so a test can wait for later runs before it says something did not happen.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter, deque
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CAMERA_IFRAME = 'iframe[title*="webrtc"]'


def skip_without_chromium() -> None:
    """Skip the calling test module where Chromium or Playwright is absent."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: the browser tests need Chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")


def launch(playwright, video: Path | None, cameras: int = 1, origins: tuple[str, ...] = ()):
    """Headless Chromium whose camera plays `video` (read at launch: another video, another browser).

    Without a video it has `cameras` fake cameras playing Chromium's own moving test pattern
    (a file is one camera only), e.g. a phone's front and back camera. `origins` (e.g.
    "http://knn.test:8501") are other names for this machine: their hosts resolve to 127.0.0.1, and
    each origin may use the camera as an HTTPS one would, so the app can be opened as a deployment is.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is absent: install Debian's chromium")
    fake = (
        ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
        if video
        else [f"--use-fake-device-for-media-stream=device-count={cameras}"]
    )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--use-fake-ui-for-media-stream",
            # Several tabs stream at once: keep those in the background running at full speed.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            *fake,
            *_aliases(origins),
        ],
    )


def _aliases(origins: tuple[str, ...]) -> list[str]:
    if not origins:
        return []
    hosts = {urlsplit(origin).hostname for origin in origins}
    return [
        "--host-resolver-rules=" + ", ".join(f"MAP {host} 127.0.0.1" for host in sorted(hosts)),
        "--unsafely-treat-insecure-origin-as-secure=" + ",".join(origins),
    ]


RECORD_PEERS = """
(() => {
  // Observation only: every RTCPeerConnection the page makes is also kept in window.__knnPeers,
  // so a test can read its getStats() (which candidates carry the call).
  const Native = window.RTCPeerConnection;
  if (!Native || Native.__knnRecorded) return;
  const peers = (window.__knnPeers = []);
  class Recorded extends Native {
    constructor(...args) { super(...args); peers.push(this); }
  }
  Recorded.__knnRecorded = true;
  window.RTCPeerConnection = Recorded;
})();
"""
"""An init script for a browser context (`context.add_init_script(RECORD_PEERS)`): see `Page.ice_pairs`."""

SELECTED_PAIRS = """
async () => Promise.all((window.__knnPeers || []).map(async (pc) => {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  const local = pair && stats.get(pair.localCandidateId), remote = pair && stats.get(pair.remoteCandidateId);
  const offered = pc.remoteDescription ? [...pc.remoteDescription.sdp.matchAll(/ typ (\\w+)/g)].map((m) => m[1]) : [];
  return {state: pc.connectionState, policy: pc.getConfiguration().iceTransportPolicy,
          remote_offered: [...new Set(offered)].sort(),
          local: local && local.candidateType, remote: remote && remote.candidateType,
          local_address: local && `${local.address}:${local.port}`,
          remote_address: remote && `${remote.address}:${remote.port}`,
          bytes_sent: pair ? pair.bytesSent : 0, bytes_received: pair ? pair.bytesReceived : 0};
}))
"""


COUNT_RUNS = """
(() => {
  // Observation only: count the page's finished runs (the whole page, or a fragment such as the live
  // panel's timed redraw) from the state Streamlit's frontend sets on its root element.
  if (window.top !== window || window.__knnRuns !== undefined) return;
  window.__knnRuns = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.target.getAttribute("data-test-script-state") === "notRunning" && r.oldValue !== "notRunning") {
        window.__knnRuns += 1;
      }
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ["data-test-script-state"]});
})();
"""
"""An init script for a tab (`Page` adds it): see `Page.runs`."""

WATCH_UPLOADERS = """
(() => {
  // Observation only: note each uploader or expander the page takes out of a class card, for a
  // stalled upload's message (an uploader removed while its files upload loses them).
  if (window.top !== window || window.__knnRemoved !== undefined) return;
  window.__knnRemoved = [];
  const watched = '[data-testid="stFileUploader"], [data-testid="stExpander"]';
  new MutationObserver((records) => {
    for (const r of records) {
      for (const node of r.removedNodes) {
        if (node.nodeType !== 1) continue;
        const found = node.matches(watched) ? [node] : [...node.querySelectorAll(watched)];
        const card = r.target.closest && r.target.closest('[class*="st-key-class_"]');
        const where = card ? [...card.classList].find((c) => c.startsWith("st-key-class_")) : "outside a card";
        for (const f of found) {
          const label = f.querySelector("summary")?.innerText;
          const what = f.dataset.testid === "stExpander" ? `expander "${label}"` : "uploader";
          window.__knnRemoved.push([Math.round(performance.now()), what, where]);
        }
      }
    }
  }).observe(document, {subtree: true, childList: true});
})();
"""
"""An init script for a tab (`Page` adds it): see `Page.upload`'s message when an upload stalls."""


def _streamlit_message(message_class, payload):
    """A websocket frame read as Streamlit's `message_class`, or None if it is not one."""
    if not isinstance(payload, bytes):
        return None
    try:
        return message_class.FromString(payload)
    except Exception:  # not a Streamlit message: not ours to read
        return None


class UploadWatch:
    """What this tab's uploaders said over Streamlit's websocket, observation only, for a stalled
    upload's message: requests for upload URLs ("asked") and their answers ("answered"), and which
    uploaders each request for a run of the page or of a fragment carried files for
    (knn.serving.upload_urls)."""

    def __init__(self, page) -> None:
        self.seen: Counter = Counter()
        self.trace: deque[str] = deque(maxlen=40)
        self._start = time.monotonic()
        page.on("websocket", self._on_socket)

    def _on_socket(self, socket) -> None:
        socket.on("framesent", self._sent)
        socket.on("framereceived", self._received)

    def _sent(self, payload) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = _streamlit_message(BackMsg, payload)
        kind = message.WhichOneof("type") if message else None
        if kind == "file_urls_request":
            self.seen["asked"] += 1
            self._note(f"asked URLs for {len(message.file_urls_request.file_names)} files")
        elif kind == "rerun_script":
            rerun = message.rerun_script
            uploads = {  # the widget id ends with its key, e.g. upload_3_0
                w.id.rsplit("-", 1)[-1]: len(w.file_uploader_state_value.uploaded_file_info)
                for w in rerun.widget_states.widgets
                if w.WhichOneof("value") == "file_uploader_state_value"
                and w.file_uploader_state_value.uploaded_file_info
            }
            scope = "fragment" if rerun.fragment_id else "page"
            self._note(f"{scope} run asked, uploaders with files {uploads}")

    def _received(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = _streamlit_message(ForwardMsg, payload)
        if message and message.WhichOneof("type") == "file_urls_response":
            self.seen["answered"] += 1
            self._note("URLs answered")

    def _note(self, event: str) -> None:
        if "fragment run" in event and self.trace and self.trace[-1].endswith(event):
            return  # the live panel's timer: once in a row is enough
        self.trace.append(f"{time.monotonic() - self._start:.1f} s {event}")


class Page:
    """The app in one browser tab: what a user clicks and reads."""

    def __init__(self, page, url: str):
        self.page = page
        self.uploads = UploadWatch(page)
        page.add_init_script(COUNT_RUNS)
        page.add_init_script(WATCH_UPLOADERS)
        # The first visit in a process loads the embedder, and a server busy with many cameras
        # serves the page slowly: allow for both.
        page.goto(url, timeout=120_000)
        page.wait_for_selector(".st-key-live_prediction", timeout=120_000)

    @classmethod
    def opened(cls, page) -> Page:
        """A tab already on the app, e.g. one a benchmark opened to time it: no navigation, no wait
        (and no count of its runs)."""
        tab = cls.__new__(cls)
        tab.page = page
        tab.uploads = UploadWatch(page)  # sees nothing of a websocket already open
        return tab

    def reload(self, url: str | None = None) -> None:
        """Reload the tab (or open `url` in it), as a user does; wait until the page is drawn."""
        if url is None:
            self.page.reload(timeout=120_000)
        else:
            self.page.goto(url, timeout=120_000)
        self.page.wait_for_selector(".st-key-live_prediction", timeout=120_000)

    def param(self, name: str) -> str | None:
        """A parameter of the tab's URL, e.g. param("project") -> the project's token."""
        return parse_qs(urlsplit(self.page.url).query).get(name, [None])[0]

    def text(self) -> str:
        """Everything the page shows as text."""
        return self.page.locator("body").inner_text()

    def wait_text(self, text: str, seconds: float = 60) -> None:
        """Wait until the page shows `text`, and the run that drew it has finished."""
        self.wait_for(lambda: text in self.text() and self.idle(), repr(text), seconds)

    def idle(self) -> bool:
        """No run of the page is under way now (its elements are all drawn)."""
        state = "document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state')"
        return self.page.evaluate(state) == "notRunning"

    def _component(self):
        return self.page.frame_locator(CAMERA_IFRAME).first

    def start_camera(self) -> None:
        """Press START; once more if no frame arrives (a click during a rerun can get lost). On a
        server still building its model (an empty cache), first wait for it: the page is there
        before the model, and frames are answered only after."""
        self.page.bring_to_front()
        self.wait_for(lambda: not self.model_loading(), "the server's model", 300)
        component = self._component()
        for attempt in range(2):
            component.get_by_role("button", name="START").click()
            try:
                self.wait_for(self.camera_live, "the first processed frame", 45)
                return
            except AssertionError:
                if attempt:
                    raise
                stop = component.get_by_role("button", name="STOP")
                if stop.count():
                    stop.click()

    def press_start(self) -> None:
        """Press START and wait for nothing more (a camera that is not expected to connect)."""
        self.page.bring_to_front()
        self._component().get_by_role("button", name="START").click()

    def notice(self, key: str) -> str:
        """The text of the message under the camera whose container has this key ("relay_advice",
        "connection_problem"); "" while none is shown."""
        box = self.page.locator(f".st-key-{key}")
        return box.first.inner_text() if box.count() else ""

    def camera_stopped(self) -> bool:
        """START is showing: the camera is not streaming (it stopped, or the component remounted)."""
        return self._component().get_by_role("button", name="START").count() > 0

    def mark_camera(self) -> None:
        """Tag the camera component's iframe; a remount (which drops the stream) replaces it."""
        self.page.locator(CAMERA_IFRAME).first.evaluate("frame => { frame.knnMark = true; }")

    def camera_unmoved(self) -> bool:
        """The tagged iframe is still the camera component's (it was never remounted)."""
        return bool(self.page.locator(CAMERA_IFRAME).first.evaluate("frame => frame.knnMark === true"))

    def stop_camera(self) -> None:
        self._component().get_by_role("button", name="STOP").click()
        self._component().get_by_role("button", name="START").wait_for(timeout=20_000)

    def model_loading(self) -> bool:
        """The page shows the model's progress bar: the server's model is still being built."""
        return self.page.locator(".st-key-model_progress").count() > 0

    def received_fps(self) -> float:
        """The live panel's camera frames per second received by the server (answered or not)."""
        return float(self.stat("frames/s received").split("·")[0])

    def camera_live(self) -> bool:
        """Frames are being answered now: the rate on the live panel is above zero."""
        return self.prediction() != "—" and self.answered_fps() > 0

    def prediction(self) -> str:
        return self.page.locator('.st-key-live_prediction [data-testid="stMetricValue"]').first.inner_text().strip()

    def stats(self) -> str:
        return self.page.locator(".st-key-live_stats").first.inner_text()

    def stat(self, name: str) -> str:
        """A value of the live panel's table, e.g. stat("frames/s received") -> "29.5 · 29.4"."""
        lines = [line.strip() for line in self.stats().splitlines() if line.strip()]
        for i, line in enumerate(lines):  # a row reads "label<TAB>value", or label and value lines
            label, _, value = line.partition("\t")
            if label.strip().startswith(name):
                if value.strip():
                    return value.strip()
                if i + 1 < len(lines):
                    return lines[i + 1]
        raise AssertionError(f"no {name!r} on the live panel: {lines}")

    def answered_fps(self) -> float:
        """The live panel's answered frames per second (captioned results sent back, from the
        model or reused for a still scene; measured over its last 2 s)."""
        return float(self.stat("frames/s received").split("·")[-1])

    def model_and_reused_fps(self) -> tuple[float, float]:
        """The live panel's answered frames per second that the model saw, and that reused its answer."""
        model, reused = self.stat("answered frames/s").split("·")
        return float(model), float(reused)

    def count(self, slot: int) -> int:
        text = self.page.locator(f'.st-key-class_{slot} [data-testid="stCaptionContainer"]').first.inner_text()
        return int(text.split()[0])

    def button(self, key: str):
        """The button a widget `key` names (Streamlit also renders a hidden copy to measure it)."""
        return self.page.locator(f".st-key-{key} button:visible").first

    def sidebar_section(self, title: str) -> None:
        """Open a sidebar expander (Settings, Project) unless it is open."""
        _expand(self.page.locator('[data-testid="stSidebar"] summary', has_text=title).first)

    def uploader(self, slot: int):
        """The file input of a class card's uploader, opened and shown as a user would find it."""
        card = self.page.locator(f".st-key-class_{slot}")
        summary = card.locator("summary", has_text="Upload images").first
        zone = card.locator('[data-testid="stFileUploaderDropzone"]').first

        def shown() -> bool:
            if zone.is_visible():
                return True
            _expand(summary)  # again if a run redrew the card closed after the last click (seen in CI)
            return False

        self.wait_for(shown, f"the uploader of class {slot + 1} open", 30)
        return card.locator('input[type="file"]')

    def add(self, slot: int, times: int = 1, pause: float = 0.4) -> None:
        for i in range(times):
            before = self.count(slot)
            self.page.locator(f".st-key-add_{slot} button:visible").click()
            what = f"example {i + 1} in class {slot + 1}"
            self.wait_for(lambda before=before: self.count(slot) == before + 1, what, 20)
            time.sleep(pause)  # the video moves on to another photo

    def rename(self, slot: int, name: str) -> None:
        """Type a class's new name on its card; wait until its quick Add button shows it."""
        box = self.page.locator(f".st-key-name_{slot} input")
        box.fill(name)
        box.press("Enter")
        quick_add = self.page.locator(f".st-key-quick_add_{slot}").first
        self.wait_for(lambda: name in quick_add.inner_text(), f"{name} on its button", 20)

    def upload(self, slot: int, files: list[Path]) -> None:
        """Choose `files` in a class card's uploader; wait until the class counts them."""
        before, sent = self.count(slot), self.files_sent()
        start = self.page.evaluate("performance.now()")
        card = self.page.locator(f".st-key-class_{slot}")

        def taken() -> bool:
            shown = card.locator('[data-testid="stFileChip"]').count() > 0
            return shown or self.files_sent() > sent or self.count(slot) > before

        self.uploader(slot).set_input_files([str(f) for f in files])
        try:
            self.wait_for(taken, f"the uploader of class {slot + 1} to take {len(files)} files", 30)
            what = f"{len(files)} uploads in class {slot + 1}"
            self.wait_for(lambda: self.count(slot) == before + len(files), what, 60)
        except AssertionError as exc:  # say where it stopped, as the server and the browser saw it
            raise AssertionError(f"{exc}; {self._upload_story(slot, before, sent, start)}") from None

    def _upload_story(self, slot: int, before: int, sent: int, start: float) -> str:
        try:
            counted = f"class {slot + 1} counted {before} before, {self.count(slot)} now; every class: {self.counts()}"
            removed = self.page.evaluate(f"window.__knnRemoved.filter((r) => r[0] >= {start})")
            said = self.page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]').all_inner_texts()
            page = f"{counted}; the cards say {said}; files sent {self.files_sent() - sent}"
            page += f"; taken out of the page since: {removed}"
        except Exception as exc:  # the page itself is gone
            page = f"the page unreadable: {exc}"
        seen = self.uploads.seen
        return (
            f"{page}; upload URLs asked {seen['asked']}, answered {seen['answered']} in all; "
            f"the websocket, last events: {' | '.join(self.uploads.trace)}"
        )

    def files_sent(self) -> int:
        """Files this tab has uploaded to the server so far (each upload request that completed,
        from the browser's resource timing)."""
        return int(
            self.page.evaluate(
                "performance.getEntriesByType('resource').filter(e => e.name.includes('/_stcore/upload_file/')).length"
            )
        )

    def restore_project(self, path: Path, classes: list[str]) -> None:
        """Upload a project file to the Project section's uploader; wait for its `classes` on the cards."""
        self.page.locator('[class*="st-key-project_upload_"] input[type="file"]').set_input_files(str(path))
        try:
            self.wait_for(lambda: self.class_names() == classes, f"the classes of {path.name}", 90)
        except AssertionError as exc:  # say what the cards showed instead
            raise AssertionError(f"{exc}; the cards read {self.class_names()!r}") from None

    def slot(self, label: str) -> int:
        """The widget slot of the class card named `label` (slots follow the cards made in this
        session, so a restored project's first card is not slot 0)."""
        for box in self.page.locator('[class*="st-key-name_"]').all():
            if box.locator("input").input_value() == label:
                key = next(c for c in (box.get_attribute("class") or "").split() if c.startswith("st-key-name_"))
                return int(key.removeprefix("st-key-name_"))
        raise AssertionError(f"no class card named {label!r}: the cards read {self.class_names()!r}")

    def counts(self) -> list[int]:
        """Every class card's example count, in the order of the cards."""
        captions = self.page.locator('[class*="st-key-class_"] [data-testid="stCaptionContainer"]').all()
        return [int(c.inner_text().split()[0]) for c in captions]

    def class_names(self) -> list[str]:
        """The class names on the sidebar's cards, in order."""
        return [box.input_value() for box in self.page.locator('[class*="st-key-name_"] input').all()]

    def ice_pairs(self) -> list[dict]:
        """For each RTCPeerConnection of the camera component (needs `RECORD_PEERS`): its state,
        ICE transport policy, the candidate types the server offered in its answer, and the
        selected candidate pair's types ("host", "srflx", "relay"), addresses and bytes."""
        frame = self.page.locator('iframe[title*="webrtc"]').first.element_handle().content_frame()
        return frame.evaluate(SELECTED_PAIRS)

    def runs(self) -> int:
        """The page's runs finished in this tab so far: whole-page runs and fragment runs (the live
        panel redraws about every second while the camera streams)."""
        return int(self.page.evaluate("window.__knnRuns"))

    def wait_runs(self, count: int, what: str, seconds: float = 60) -> None:
        """Wait until the page has finished `count` more runs than now: a positive signal to wait
        for before saying that something did not happen (a message did not vanish, a click did not
        act twice). The first of them may have been under way already: ask for two or more."""
        start = self.runs()
        self.wait_for(lambda: self.runs() >= start + count, f"{count} more page runs ({what})", seconds)

    def wait_for(self, condition, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except Exception:  # the page is rerunning: elements come and go
                pass
            time.sleep(0.25)
        try:
            shot = Path(tempfile.mkstemp(prefix="knn-timed-out-", suffix=".png")[1])
            self.page.screenshot(path=str(shot))
            stats = " ".join(self.stats().split())
            state = f"prediction {self.prediction()!r}; {stats}; the page then: {shot}"
        except Exception as exc:  # the page itself is gone
            state = f"page unreadable: {exc}"
        raise AssertionError(f"timed out after {seconds} s waiting for {what}; {state}")


def _expand(summary) -> None:
    """Open the expander whose `summary` this is, unless it is open."""
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
