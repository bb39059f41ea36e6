"""What one visitor may cost the demo's server, and which folder it may serve logs from.

Every figure is a constant here (the README's "Page limits" table lists them):

- an instruction is at most `MAX_INSTRUCTION_CHARS` long, refused before any lock is taken;
- an uploaded image is at most `MAX_IMAGE_PIXELS`, refused from its header before it is decoded
  (`limit_image_decoding`); an upload is at most `MAX_UPLOAD` bytes, and uploads and Gradio's
  copies of downloads are deleted `CACHE_MAX_AGE_S` after they were made (`CACHE_CLEANUP`);
- the log folder must be one the demo owns (`check_log_folder`): it is served to the page, so it
  may hold only episode logs, never the project, the home folder or a folder above either;
- the History keeps the newest `MAX_EPISODES` episodes and at most `MAX_LOG_MB` of logs
  (oldest deleted first) and offers the newest `MAX_OFFERED_LOGS` for download;
- a client that keeps failing to log in waits longer and longer (`LoginThrottle`).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

# At module level, not in add_login_throttle: with postponed annotations FastAPI resolves the
# login route's parameter types in this module's globals (a local import left them unresolved).
from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

MAX_INSTRUCTION_CHARS = 300
MAX_QUESTION_CHARS = 2000
MAX_IMAGE_PIXELS = 25_000_000  # 25 MP: a phone photo passes; 12000 x 12000 (144 MP, 432 MB decoded) does not
MAX_UPLOAD = "20mb"
CACHE_MAX_AGE_S = 3600
CACHE_CLEANUP = (600, CACHE_MAX_AGE_S)  # Gradio's delete_cache: every 10 min, files older than 1 h
MAX_EPISODES = 100
MAX_LOG_MB = 500.0
MAX_OFFERED_LOGS = 20

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOG_FILE = "episode.jsonl"  # policy.episode_log's file in every episode folder


class LimitError(ValueError):
    """A request or setting beyond a limit; the message says which and what to do."""


# ----------------------------------------------------------------------------- instruction


def check_instruction(text: str | None) -> str:
    """The instruction with its whitespace collapsed; refuses one over the limit without echoing it."""
    raw = text or ""
    if len(raw) > 4 * MAX_INSTRUCTION_CHARS:  # far over: do not even split it
        raise LimitError(f"the instruction is {len(raw):,} characters long; at most {MAX_INSTRUCTION_CHARS} are read — type a shorter one")
    clean = " ".join(raw.split())
    if len(clean) > MAX_INSTRUCTION_CHARS:
        raise LimitError(f"the instruction is {len(clean):,} characters long; at most {MAX_INSTRUCTION_CHARS} are read — type a shorter one")
    return clean


# ----------------------------------------------------------------------------- images


def image_too_large(width: int, height: int, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    return (f"the image is {width}×{height} pixels ({width * height / 1e6:.0f} MP); at most "
            f"{max_pixels / 1e6:.0f} MP are read — downscale it first")


def limit_image_decoding(max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse images over `max_pixels` when Pillow reads their header, before any pixel is decoded.

    Gradio decodes an upload with `PIL.Image.open` before the handler sees it, so the limit has to
    live there: Pillow's own size check (`Image._decompression_bomb_check`, which every opener calls
    with the header's size) is wrapped to raise a `gr.Error` with one line, which Gradio hands to the
    page as it is (any other exception there comes out as a paragraph about preprocessing)."""
    import gradio as gr
    from PIL import Image

    check = getattr(Image._decompression_bomb_check, "__wrapped__", Image._decompression_bomb_check)

    def refuse_large(size) -> None:
        width, height = (max(1, int(v)) for v in size)
        if width * height > max_pixels:
            raise gr.Error(image_too_large(width, height, max_pixels), print_exception=False)
        check(size)

    refuse_large.__wrapped__ = check  # type: ignore[attr-defined]
    Image._decompression_bomb_check = refuse_large


# ----------------------------------------------------------------------------- the log folder


LOG_NAME = re.compile(r"\d{8}-\d{6}_[a-z0-9_]*")  # policy.episode_log's folder names: <date>-<time>_<slug>[_n]


def _is_log_entry(p: Path) -> bool:
    """An episode log folder, its zip, or a leftover of log_folder_problem's write test."""
    if p.name.startswith(".write-test-"):
        return True
    if p.is_dir():
        return bool(LOG_NAME.fullmatch(p.name)) and ((p / LOG_FILE).is_file() or (p / "images").is_dir())
    return p.suffix == ".zip" and bool(LOG_NAME.fullmatch(p.stem))


def check_log_folder(folder: str | Path, project: Path = PROJECT_ROOT, home: Path | None = None) -> Path:
    """The log folder, resolved, if the demo may serve it; else `LimitError` naming why.

    The folder goes into Gradio's allowed_paths, so everything under it can be downloaded by
    whoever can open the page. It must not be (or lie above) the project or the home folder,
    and may hold nothing but episode logs (folders with episode.jsonl and their zips)."""
    p = Path(folder).expanduser().resolve()
    home = (home or Path.home()).resolve()
    for what, guarded in (("the project", project.resolve()), ("your home folder", home)):
        if p == guarded or p in guarded.parents:
            raise LimitError(f"--logs {folder}: the demo serves its log folder to the page, and this is {what}"
                             f"{'' if p == guarded else ' or a folder above it'}; give it a folder of its own, "
                             "e.g. --logs out/app-logs")
    if p.exists() and not p.is_dir():
        raise LimitError(f"--logs {folder}: {p} is a file, not a folder")
    if p.is_dir():
        strangers = [c.name for c in sorted(p.iterdir()) if not _is_log_entry(c)]
        if strangers:
            shown = ", ".join(strangers[:3]) + (f" and {len(strangers) - 3} more" if len(strangers) > 3 else "")
            raise LimitError(f"--logs {folder}: the folder holds {shown}, which are not episode logs; the demo serves "
                             "this folder to the page, so give it an empty folder or one of its own, e.g. --logs out/app-logs")
    return p


def log_folder_problem(folder: Path) -> str:
    """'' when an episode log can be written into `folder` now, else what went wrong (one line)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
        return ""
    except OSError as e:
        return f"cannot write episode logs to {folder}: {type(e).__name__}: {e.strerror or e}"


# ----------------------------------------------------------------------------- login back-off


class LoginThrottle:
    """Per-client back-off on failed logins.

    After `free` failures in a row a client must wait `base_s * 2**(n - free)` seconds (at most
    `max_s`) after its last failure before it may try again; attempts inside the wait are refused
    without checking the password. A success clears the client. At most `max_clients` are
    remembered (the least recent forgotten first)."""

    def __init__(self, free: int = 5, base_s: float = 1.0, max_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.free, self.base_s, self.max_s, self.max_clients = free, base_s, max_s, max_clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures, last time)
        self._mutex = threading.Lock()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds `client` must still wait before its next attempt (0 = may try now)."""
        now = time.monotonic() if now is None else now
        with self._mutex:
            n, last = self._failures.get(client, (0, 0.0))
        if n < self.free:
            return 0.0
        return max(0.0, last + min(self.max_s, self.base_s * 2 ** (n - self.free)) - now)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._mutex:
            n, _ = self._failures.pop(client, (0, 0.0))
            self._failures[client] = (n + 1, now)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._mutex:
            self._failures.pop(client, None)


def add_login_throttle(demo: Any, throttle: LoginThrottle | None = None) -> LoginThrottle:
    """Put `throttle` in front of Gradio's POST /login (call after launch, with --auth on).

    Our route answers first: a client inside its wait gets 429 with the seconds left; otherwise
    Gradio's own login handler checks the password, and its answer counts as a failure or a success."""
    throttle = throttle or LoginThrottle()
    app = demo.app
    gradio_login = next(r.endpoint for r in app.router.routes
                        if getattr(r, "path", None) == "/login" and "POST" in getattr(r, "methods", ()))

    async def login(request: Request, form_data: OAuth2PasswordRequestForm = Depends()):
        client = request.client.host if request.client else "unknown"
        wait = throttle.wait_s(client)
        if wait > 0:
            raise HTTPException(status_code=429, headers={"Retry-After": str(math.ceil(wait))},
                                detail=f"too many failed logins from {client}: try again in {math.ceil(wait)} s")
        try:
            response = await gradio_login(request, form_data)
        except HTTPException:
            throttle.failed(client)
            raise
        throttle.succeeded(client)
        return response

    for path in ("/login", "/login/"):
        app.add_api_route(path, login, methods=["POST"], include_in_schema=False)
        app.router.routes.insert(0, app.router.routes.pop())  # before Gradio's own
    return throttle
