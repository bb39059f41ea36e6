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


def make_report(out: Path, trials: int = 2, png: bool = True) -> Path:
    """A real `python -m evaluation.report` report in `out` from synthetic trials (the scripted
    expert succeeding every fig5 trial), without running any: the Evaluation tab's input.
    `png=False` skips Chromium and writes no PNG. Returns report.md's path."""
    from evaluation.policies import parse_policy
    from evaluation.report import build_report
    from evaluation.store import write_manifest, write_trial
    from evaluation.suites import suite_rows
    from evaluation.trials import plan

    rows, spec = suite_rows("fig5"), parse_policy("scripted")
    write_manifest(out, {"suite": "fig5", "robot": "sim", "seed_base": 1_000_000, "image_size": 64, "trials": trials,
                         "rows": [{"key": r.key, "title": r.title} for r in rows], "policies": {spec.label: spec.as_dict()}})
    for s, t in plan(rows, [spec], trials):
        write_trial(out, s.label, t, {"policy": s.label, "row": t.row, "task": t.task, "lang": t.lang, "index": t.index,
                                       "seed": t.seed, "success": True, "retries": 0, "rejected": 0, "seconds": 2.0,
                                       "robot": "sim"})
    return build_report(out, png=png)
