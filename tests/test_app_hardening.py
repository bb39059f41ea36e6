"""The page's resources and a hung arm (issue 13): a real sim runtime, a real server on loopback, real files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from app.build import build_runtime
from app.config import ConfigError, from_args
from app.handlers import Handlers
from app.limits import LOG_FILE, MAX_INSTRUCTION_CHARS
from app.runtime import Busy, UserError, wait_until
from app.session import EpisodeView, History
from tests.app_helpers import running_app
from tests.test_app_limits import _png_header


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    cfg = from_args(["--policy", "scripted", "--stream-cps", "0", "--pace", "0",
                     "--logs", str(tmp_path_factory.mktemp("logs"))], env={})
    runtime = build_runtime(cfg, camera_fps=5).start_camera()
    yield runtime
    runtime.close()


# ----------------------------------------------------------------------------- instruction length


def test_a_megabyte_instruction_is_refused_at_once_and_blocks_nobody(rt):
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=rf"at most {MAX_INSTRUCTION_CHARS} are read") as e:
        rt.start("pick up the carrot " * 55_000, "mallory")
    assert time.perf_counter() - t0 < 1.0 and len(str(e.value)) < 200  # not echoed back
    assert not rt.lock.holder  # no lock was taken
    t0 = time.perf_counter()
    rt.reset("ann", seed=1)  # another client is not held up
    assert time.perf_counter() - t0 < 10.0


# ----------------------------------------------------------------------------- a move that hangs


def test_stop_during_a_hung_move_reaches_the_arm_and_reports_the_lock_stuck(rt):
    raw = rt.robot.robot
    entered, release, stopped_while_hung = threading.Event(), threading.Event(), []
    move, stop = raw.move, raw.stop

    def hanging_move(delta, gripper=None):
        entered.set()
        release.wait(20)  # a driver that does not answer
        return move(delta, gripper)

    def recording_stop():
        stopped_while_hung.append(not release.is_set())
        stop()

    raw.move, raw.stop = hanging_move, recording_stop
    try:
        rt.reset("ann", seed=2)
        rt.start("pick up the carrot", "ann")
        assert entered.wait(60), "the episode never moved"
        t0 = time.perf_counter()
        message = rt.stop("bob")  # anyone may press Stop
        assert 2.5 < time.perf_counter() - t0 < 6.0
        assert stopped_while_hung == [True], "the arm's own stop() waited for the hung move"
        assert message.startswith("stopped, but the arm's move() has not returned for") and "restart the demo" in message
        with pytest.raises(Busy, match="robot stuck — the arm's move"):
            rt.start("pick up the banana", "bob")
        with pytest.raises(Busy, match="robot stuck"):
            rt.reset("bob")
    finally:
        release.set()
        raw.move, raw.stop = move, stop
    assert wait_until(lambda: not rt.running, 30)
    assert rt.lock.holder is None and rt.lock.stuck == ""  # the episode's end let go
    rt.reset("bob", seed=1)


# ----------------------------------------------------------------------------- the log folder


def test_logs_in_the_project_are_refused_at_start():
    for folder in (".", "..", "app"):
        with pytest.raises(ConfigError, match=rf"--logs {folder}: "):
            from_args(["--policy", "scripted", "--logs", folder], env={})


def test_an_unwritable_log_folder_is_said_on_the_page_and_the_episode_still_reaches_history(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    cfg = from_args(["--policy", "scripted", "--stream-cps", "0", "--pace", "0", "--logs", str(blocker / "logs")], env={})
    runtime = build_runtime(cfg, camera_fps=5).start_camera()
    try:
        h = Handlers(runtime)
        updates = list(h.run("pick up the carrot", SimpleNamespace(session_hash="ann")))
        message = updates[-1][-1]
        assert message.startswith("**episode log not written: cannot write episode logs to") and "NotADirectoryError" in message
        assert runtime.snapshot().success  # the episode ran all the same
        rows, files = h.history()
        assert rows[0][1] == "pick up the carrot" and "episode log not written: cannot write episode logs" in rows[0][5]
        assert files is None
    finally:
        runtime.close()


# ----------------------------------------------------------------------------- history caps


def _logged(folder: Path, name: str, size: int) -> EpisodeView:
    d = folder / name
    (d / "images").mkdir(parents=True)
    (d / LOG_FILE).write_text("{}\n")
    (d / "images" / "00000.png").write_bytes(np.random.default_rng(0).bytes(size))  # incompressible
    return EpisodeView(instruction=name, reason="done", success=True, log_dir=str(d))


def test_history_keeps_the_newest_rows_and_logs_and_says_so(tmp_path):
    hist = History(tmp_path, max_rows=3, max_logs=2, max_bytes=10**9)
    for k in range(4):
        hist.add(_logged(tmp_path, f"2026010{k}-120000_ep{k}", 1000))
    assert [r.number for r in hist.rows] == [4, 3, 2]  # newest first, numbering goes on
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["20260102-120000_ep2", "20260103-120000_ep3"]
    assert not (tmp_path / "20260100-120000_ep0.zip").exists()
    assert hist.rows[-1].log_zip is None and hist.offered() == [str(r.log_zip) for r in hist.rows[:2]]
    assert "the newest 3 episodes" in hist.note() and "(1 older rows and 2 older logs so far)" in hist.note()
    assert History(tmp_path / "fresh").note() == ""  # nothing dropped yet: nothing to say
    small = History(tmp_path / "small", max_bytes=5000)
    for k in range(3):
        small.add(_logged(tmp_path / "small", f"2026020{k}-120000_big{k}", 3000))  # ~6 kB each with its zip
    assert len([p for p in (tmp_path / "small").iterdir() if p.is_dir()]) == 1  # the newest is always kept
    assert small.rows[0].log_zip.is_file()


def test_a_log_that_cannot_be_zipped_keeps_its_row(tmp_path):
    hist = History(tmp_path)
    view = EpisodeView(instruction="pick up the carrot", reason="all 3 subtasks done", success=True,
                       log_dir=str(tmp_path / "20260101-120000_gone"))  # removed before it could be zipped
    row = hist.add(view)
    assert hist.rows == [row] and row.log_zip is None
    assert row.reason.startswith("all 3 subtasks done · log not saved: its log could not be zipped: FileNotFoundError")


# ----------------------------------------------------------------------------- a server on loopback


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("srv-logs"), "--auth", "ann:pw", "--stream-cps", "0", "--pace", "0") as (rt, url):
        yield rt, url


def test_uploads_over_the_limit_are_refused(server):
    _, url = server
    client = Client(url, auth=("ann", "pw"), verbose=False)
    cookies = client.cookies
    small = httpx.post(f"{url}/gradio_api/upload", files=[("files", ("a.bin", b"x" * 1000))], cookies=cookies, timeout=60)
    assert small.status_code == 200, small.text
    big = httpx.post(f"{url}/gradio_api/upload", files=[("files", ("b.bin", b"\0" * (21 << 20)))], cookies=cookies, timeout=120)
    assert big.status_code == 413 and "maximum allowed size" in big.text.lower()


def test_an_oversized_image_is_refused_before_it_is_decoded(server, tmp_path):
    _, url = server
    png = tmp_path / "huge.png"
    png.write_bytes(_png_header(12000, 12000))  # what a 140 KB PNG of 144 MP says about itself
    client = Client(url, auth=("ann", "pw"), verbose=False)
    with pytest.raises(Exception) as e:
        client.predict(handle_file(str(png)), "what is on the table?", False, False, api_name="/vqa")
    assert str(e.value) == "the image is 12000×12000 pixels (144 MP); at most 25 MP are read — downscale it first"


def test_the_history_tab_says_what_it_keeps_once_it_drops_something(server, monkeypatch):
    rt, url = server
    old = rt.history.folder / "20250101-000000_an_old_episode"  # a log of an earlier run, in the same folder
    (old / "images").mkdir(parents=True)
    (old / LOG_FILE).write_text("{}\n")
    monkeypatch.setattr(rt.history, "max_logs", 1)
    client = Client(url, auth=("ann", "pw"), verbose=False)
    client.predict(api_name="/reset")
    client.predict("pick up the carrot", api_name="/run")
    table, files = client.predict(api_name="/history")
    rows = table["data"] if isinstance(table, dict) else table
    assert "pick up the carrot" in rows[0][1] and not old.exists()
    assert "kept: the newest 100 episodes here, the newest 1 logs" in str(rows[-1][1])


def test_failed_logins_back_off_per_client(server):
    _, url = server
    with httpx.Client(timeout=30) as h:
        codes = [h.post(f"{url}/login", data={"username": "ann", "password": f"guess{i}"}).status_code for i in range(7)]
        assert codes[:5] == [400] * 5 and codes[5:] == [429, 429]
        refused = h.post(f"{url}/login", data={"username": "ann", "password": "pw"})
        assert refused.status_code == 429 and "try again in" in refused.json()["detail"]
        time.sleep(1.2)
        assert h.post(f"{url}/login", data={"username": "ann", "password": "pw"}).status_code == 200  # clears it
        assert h.post(f"{url}/login", data={"username": "ann", "password": "nope"}).status_code == 400
