"""The page's resource limits (issue 13), unit by unit: app.limits."""

from __future__ import annotations

import struct
import zlib

import pytest

from app.limits import (
    MAX_INSTRUCTION_CHARS,
    LimitError,
    LoginThrottle,
    check_instruction,
    check_log_folder,
    limit_image_decoding,
    log_folder_problem,
)


def test_instructions_over_the_limit_are_refused_without_echoing_them():
    assert check_instruction("  pick up\n the   carrot ") == "pick up the carrot"
    assert check_instruction("x" * MAX_INSTRUCTION_CHARS) == "x" * MAX_INSTRUCTION_CHARS
    for text in ("x" * (MAX_INSTRUCTION_CHARS + 1), "carrot " * 150_000):
        with pytest.raises(LimitError, match=rf"characters long; at most {MAX_INSTRUCTION_CHARS} are read") as e:
            check_instruction(text)
        assert len(str(e.value)) < 200


def test_the_log_folder_may_not_expose_the_project_or_home(tmp_path):
    project, home = tmp_path / "repo", tmp_path / "home" / "me"
    (project / ".git").mkdir(parents=True)
    (project / "README.md").write_text("x")
    home.mkdir(parents=True)
    for bad in (project, tmp_path, home, home.parent, tmp_path / "repo" / ".." / "repo"):
        with pytest.raises(LimitError, match="serves its log folder to the page"):
            check_log_folder(bad, project=project, home=home)
    with pytest.raises(LimitError, match=r"holds \.git, README\.md"):  # e.g. a copy of a repository
        check_log_folder(project, project=tmp_path / "elsewhere", home=home)
    ok = project / "out" / "app-logs"
    assert check_log_folder(ok, project=project, home=home) == ok.resolve()  # not there yet: fine
    log = ok / "20260101-120000_pick_up_the_carrot"
    (log / "images").mkdir(parents=True)
    (log / "episode.jsonl").write_text("{}\n")
    (ok / "20260101-120000_pick_up_the_carrot.zip").write_bytes(b"PK")
    assert check_log_folder(ok, project=project, home=home) == ok.resolve()
    (ok / "notes.txt").write_text("secret")
    with pytest.raises(LimitError, match="notes.txt, which are not episode logs"):
        check_log_folder(ok, project=project, home=home)
    with pytest.raises(LimitError, match="is a file"):
        check_log_folder(ok / "notes.txt", project=project, home=home)


def test_an_unwritable_log_folder_is_named_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    assert log_folder_problem(tmp_path / "logs") == ""
    problem = log_folder_problem(tmp_path / "file" / "logs")  # root ignores permission bits; a file in the way does not
    assert problem.startswith(f"cannot write episode logs to {tmp_path / 'file' / 'logs'}: ") and "\n" not in problem


def _png_header(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header says width x height: Pillow reads only the header before its size check."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_oversized_images_are_refused_from_their_header(tmp_path, monkeypatch):
    import gradio as gr
    from PIL import Image

    monkeypatch.setattr(Image, "_decompression_bomb_check", Image._decompression_bomb_check)  # undone after
    limit_image_decoding(25_000_000)
    limit_image_decoding(25_000_000)  # twice: still one check, not a check of a check
    for w, h in ((12000, 12000), (6000, 6000)):  # 144 MP, and 36 MP (under Pillow's own limit)
        with pytest.raises(gr.Error) as e:
            Image.open(_write(tmp_path, w, h))
        assert e.value.message == f"the image is {w}×{h} pixels ({w * h / 1e6:.0f} MP); at most 25 MP are read — downscale it first"
    assert Image.open(_write(tmp_path, 4000, 3000)).size == (4000, 3000)


def _write(tmp_path, w, h):
    p = tmp_path / f"{w}x{h}.png"
    p.write_bytes(_png_header(w, h))
    return p


def test_login_back_off_grows_per_client_and_clears_on_success():
    t = LoginThrottle(free=3, base_s=1.0, max_s=8.0)
    now = 100.0
    for _ in range(3):
        assert t.wait_s("a", now) == 0
        t.failed("a", now)
    assert t.wait_s("a", now) == pytest.approx(1.0) and t.wait_s("b", now) == 0  # per client
    t.failed("a", now + 1)
    assert t.wait_s("a", now + 1) == pytest.approx(2.0)
    for k in range(10):
        t.failed("a", now + 2 + k)
    assert t.wait_s("a", now + 11) == pytest.approx(8.0)  # capped
    t.succeeded("a")
    assert t.wait_s("a", now + 11) == 0
    small = LoginThrottle(free=1, max_clients=2)
    for c in "xyz":
        small.failed(c, now)
    assert small.wait_s("x", now) == 0 and small.wait_s("z", now) > 0  # the least recent is forgotten
