"""The web demo on a free loopback port, in this process, for the app tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(logs: Path, *flags: str) -> Iterator[tuple[object, str]]:
    """`python -m app FLAGS` on 127.0.0.1:<free port>; yields (runtime, url) and shuts it down after.

    Without a --policy flag the scripted expert drives (the tests check what the page does with an
    episode whose text is known); the embedded model has its own tests (test_micro_shipped)."""
    from app.__main__ import launch

    if "--policy" not in flags:
        flags = ("--policy", "scripted", *flags)
    demo, rt, url = launch(["--port", str(free_port()), "--logs", str(logs), *flags], block=False, quiet=True)
    try:
        yield rt, url
    finally:
        rt.close()
        demo.close()
