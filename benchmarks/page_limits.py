"""The web page's resource cases of issue 13, measured against a real server on loopback.

Starts `python -m app` in this process (simulated arm, scripted policy) and tries what a careless
user or an attacker would: a 1 MB instruction (and how long another client's Reset waits meanwhile),
a 12000 x 12000 PNG sent to /vqa (the server's peak memory), a 50 MB upload, `--logs .` (is the
repository's .git/config downloadable?), an unwritable log folder (does the episode reach History,
does the page say why?), and 300 wrong logins. Prints one JSON object; run it from any checkout
to compare trees (it imports `app` from the checkout it sits in):

    .venv/bin/python benchmarks/page_limits.py [--case long_instruction ...]
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _launch(*flags: str):
    from app.__main__ import launch

    try:
        return launch(["--policy", "scripted", "--stream-cps", "0", "--pace", "0", "--port", str(_port()), *flags],
                      block=False, quiet=True)
    except SystemExit as e:  # a refusal at start-up is one of the outcomes
        return str(e.code)


def _close(started) -> None:
    demo, rt, _url = started
    rt.close()
    demo.close()


def _big_png(size: int = 12000) -> bytes:
    """A black size x size RGB PNG (~140 KB for 12000), written row by row: never held decoded here."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row, parts = zlib.compressobj(9), b"\0" * (1 + 3 * size), []
    for _ in range(size):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def long_instruction(url: str) -> dict:
    from gradio_client import Client

    a, b = Client(url, verbose=False), Client(url, verbose=False)
    b.predict(api_name="/reset")
    text = "pick up the carrot " * 55_000  # ~1 MB
    reset_s: list[float] = []

    def reset_meanwhile():
        time.sleep(1.5)  # the megabyte is on its way and being read
        t = time.perf_counter()
        b.predict(api_name="/reset")
        reset_s.append(time.perf_counter() - t)

    th = threading.Thread(target=reset_meanwhile)
    t0 = time.perf_counter()
    th.start()
    out = a.predict(text, api_name="/run")
    run_s = time.perf_counter() - t0
    th.join()
    message = str(out[-1])
    return {"instruction_chars": len(text), "run_s": round(run_s, 2), "other_clients_reset_s": round(reset_s[0], 2),
            "reply_chars": len(json.dumps(out, default=str)), "message": message[:160]}


def huge_image(url: str) -> dict:
    from gradio_client import Client, handle_file

    path = Path(tempfile.mkdtemp()) / "huge.png"
    path.write_bytes(_big_png())
    c = Client(url, verbose=False)
    before, peak = _rss_mb(), [0.0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.02)

    w = threading.Thread(target=watch)
    w.start()
    t0 = time.perf_counter()
    try:
        c.predict(handle_file(str(path)), "what is on the table?", False, False, api_name="/vqa")
        error = ""
    except Exception as e:  # noqa: BLE001 - the refusal is the measurement
        error = f"{type(e).__name__}: {e}"
    done.set()
    w.join()
    return {"png_kb": round(path.stat().st_size / 1024), "rss_before_mb": round(before), "rss_peak_mb": round(peak[0]),
            "seconds": round(time.perf_counter() - t0, 2), "error": error[:200]}


def big_upload(url: str, mb: int = 50) -> dict:
    import httpx

    r = httpx.post(f"{url}/gradio_api/upload", files=[("files", ("big.bin", b"\0" * (mb << 20)))], timeout=120)
    stored = ""
    if r.status_code == 200:
        stored = r.json()[0]
    return {"upload_mb": mb, "status": r.status_code, "stored": bool(stored),
            "downloadable": bool(stored) and httpx.get(f"{url}/gradio_api/file={stored}", timeout=60).status_code == 200,
            "detail": r.text[:160] if r.status_code != 200 else ""}


def logs_dot() -> dict:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        started = _launch("--logs", ".")
    finally:
        os.chdir(cwd)
    if isinstance(started, str):
        return {"started": False, "message": started[:200]}
    import httpx

    try:
        r = httpx.get(f"{started[2]}/gradio_api/file={ROOT / '.git' / 'config'}", timeout=30)
        return {"started": True, "git_config_status": r.status_code, "served": r.status_code == 200 and "[core]" in r.text}
    finally:
        _close(started)


def unwritable_logs() -> dict:
    blocker = Path(tempfile.mkdtemp()) / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    started = _launch("--logs", str(blocker / "logs"))
    if isinstance(started, str):
        return {"started": False, "message": started[:200]}
    from gradio_client import Client

    try:
        c = Client(started[2], verbose=False)
        out = c.predict("pick up the carrot", api_name="/run")
        time.sleep(2.5)  # the History timer
        rows = c.predict(api_name="/history")[0]
        return {"run_message": str(out[-1])[:200], "status": str(out[0])[:120],
                "history_rows": len((rows or {}).get("data", []) if isinstance(rows, dict) else rows or [])}
    finally:
        _close(started)


def wrong_logins(url: str, n: int = 300) -> dict:
    import httpx

    codes: dict[int, int] = {}
    t0 = time.perf_counter()
    with httpx.Client(timeout=30) as h:
        for i in range(n):
            r = h.post(f"{url}/login", data={"username": "admin", "password": f"guess{i}"})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
        good = h.post(f"{url}/login", data={"username": "u", "password": "p"})
    return {"attempts": n, "seconds": round(time.perf_counter() - t0, 2), "status_counts": codes,
            "right_password_after": good.status_code, "detail": good.text[:120]}


CASES = ("long_instruction", "huge_image", "big_upload", "logs_dot", "unwritable_logs", "wrong_logins")


def main(argv: list[str] | None = None) -> dict:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", choices=CASES, help="run only these cases (default: all)")
    cases = p.parse_args(argv).case or CASES
    result: dict = {}
    served = [c for c in ("long_instruction", "huge_image", "big_upload") if c in cases]
    if served:
        started = _launch("--logs", tempfile.mkdtemp())
        try:
            for case in served:
                result[case] = globals()[case](started[2])
        finally:
            _close(started)
    if "logs_dot" in cases:
        result["logs_dot"] = logs_dot()
    if "unwritable_logs" in cases:
        result["unwritable_logs"] = unwritable_logs()
    if "wrong_logins" in cases:
        started = _launch("--logs", tempfile.mkdtemp(), "--auth", "u:p")
        try:
            result["wrong_logins"] = wrong_logins(started[2])
        finally:
            _close(started)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
