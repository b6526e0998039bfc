"""An uploaded file is added once (ui/streamlit_fixes.py `take`): by its upload's id, whatever key the
browser sends it under, and by only one of two page runs that see it at once (Streamlit's fast
reruns start a new run of the page while the last one still runs). Through Streamlit's AppTest, as
`take` keeps its marks in the session's state."""

from __future__ import annotations


def _taken_by_id():
    import streamlit as st
    from streamlit.proto.Common_pb2 import FileURLs
    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    from ui.streamlit_fixes import take, untaken

    def upload(name: str) -> UploadedFile:
        return UploadedFile(UploadedFileRec(f"id-{name}", f"{name}.jpg", "image/jpeg", b"photo"), FileURLs())

    st.session_state.first = [f.name for f in take([upload("a"), upload("b")])]
    st.session_state.again = [f.name for f in take([upload("b"), upload("c")])]  # b sent again, with c
    st.session_state.left = [f.name for f in untaken([upload("a"), upload("c"), upload("d")])]


def _two_runs_at_once():
    import threading
    import time

    import streamlit as st
    from streamlit.proto.Common_pb2 import FileURLs
    from streamlit.runtime.scriptrunner import add_script_run_ctx
    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    from ui.streamlit_fixes import take

    class Slow(UploadedFile):
        """An upload whose id takes a while to read: the other run goes on meanwhile, as a page
        run's thread does whenever this one waits."""

        @property
        def file_id(self) -> str:
            time.sleep(0.005)
            return self._id

        @file_id.setter
        def file_id(self, value: str) -> None:
            self._id = value

    files = [Slow(UploadedFileRec(f"id-{i}", f"{i}.jpg", "image/jpeg", b"photo"), FileURLs()) for i in range(4)]
    taken: list[list[str]] = []

    def run() -> None:
        taken.append([f.name for f in take(files)])

    runs = [add_script_run_ctx(threading.Thread(target=run)) for _ in "ab"]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    st.session_state.taken = sorted(taken)


def test_an_upload_is_taken_once_by_its_id_whatever_key_it_comes_under():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_taken_by_id, default_timeout=120).run()  # the first imports the page
    assert not at.exception, at.exception
    assert at.session_state.first == ["a.jpg", "b.jpg"]
    assert at.session_state.again == ["c.jpg"]
    assert at.session_state.left == ["d.jpg"]


def test_two_runs_at_once_take_an_upload_once():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_two_runs_at_once, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.session_state.taken == [[], ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]]
