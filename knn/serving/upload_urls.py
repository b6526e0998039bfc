"""Keep the answer to a file uploader's request for upload URLs when a page run starts.

Streamlit 1.67's uploader asks the server for upload URLs over the websocket and shows, and
sends, the chosen files only once the answer (a `file_urls_response`) arrives. The server queues
that answer like any other message, and a whole-page run that starts before the queue goes out
clears it of everything but lifecycle messages and toasts: the answer is lost, the uploader shows
no file and sends nothing, and the user must choose the files again (55 of 110 uploads lost
on a page rerunning every 0.1 s; tests/test_upload_urls.py). `KEEP_UPLOAD_URLS` makes that clear keep
the answer too, as a run of fragments already does.
"""

from __future__ import annotations

from typing import Any

from .adapt import Adaptation, changed_signature, unread_source

KEPT = "file_urls_response"
CLEAR_PARAMETERS = ["self", "retain_lifecycle_msgs", "fragment_ids_this_run"]


def _find() -> tuple[Any, Any]:
    from streamlit.runtime.app_session import AppSession
    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

    return ForwardMsgQueue, AppSession


def _check(found: tuple[Any, Any]) -> list[str]:
    queue, session = found
    clear = getattr(queue, "clear", None)
    clear = getattr(clear, "stock", clear)  # applied before: check Streamlit's own
    return (
        changed_signature("ForwardMsgQueue.clear", clear, CLEAR_PARAMETERS)
        + unread_source(
            "ForwardMsgQueue.clear", clear, "self._queue = [", "ForwardMsgQueue.clear no longer filters its _queue"
        )
        + unread_source(
            "AppSession._handle_file_urls_request",
            getattr(session, "_handle_file_urls_request", None),
            KEPT,
            f"Streamlit no longer answers upload-URL requests with a queued {KEPT}",
        )
    )


def _change(found: tuple[Any, Any], _value: object) -> None:
    queue = found[0]
    if hasattr(queue.clear, "stock"):  # applied before
        return
    stock = queue.clear

    def clear(self: Any, retain_lifecycle_msgs: bool = False, fragment_ids_this_run: list[str] | None = None) -> None:
        kept = [m for m in self._queue if m.WhichOneof("type") == KEPT] if retain_lifecycle_msgs else []
        stock(self, retain_lifecycle_msgs, fragment_ids_this_run)
        self._queue += [m for m in kept if all(m is not left for left in self._queue)]

    clear.stock = stock  # type: ignore[attr-defined]  # Streamlit's own: marks it applied, and `_check` reads it
    queue.clear = clear


KEEP_UPLOAD_URLS = Adaptation(
    name="upload_urls",
    package="streamlit",
    checked="1.67.0",
    reason="a whole-page run that starts before the server's answer to an uploader goes out clears the answer",
    kept_by="tests/test_upload_urls.py (stock: uploads lost while the page reruns)",
    lost="Files chosen in an uploader while the page reruns may be lost",
    find=_find,
    check=_check,
    change=_change,
)
