"""The web demo's speed, as a person at the page sees it. Prints one JSON object.

- launch_to_first_page_s: `python -m app` started in a subprocess → the first 200 on "/".
- camera_fps_stream: frames per second an HTTP client receives from /camera.mjpg while
  the arm moves (the stream the page's <img> shows).
- camera_new_pictures_per_s_server / _browser: how often the picture actually changes, in
  the server's camera feed and on the page in Chromium (sampled from the <img> every 20 ms).
  The simulator advances 0.2 s per move() (the 5 Hz control step), so this is bounded by 5.
- token_to_screen_ms: for each action token, the delay from the loop yielding it in the
  server to the page in Chromium showing it (same machine, same clock), over one episode.

    python benchmarks/app.py [--episodes 1] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

OBSERVE = """
window.__shown = [];   // [Date.now(), subtask number, displayed action text length]
window.__frames = [];  // [Date.now(), hash] each time the camera picture changes
new MutationObserver(() => {
  const el = document.querySelector('#action-text'), cur = document.querySelector('#stream .cur');
  if (el && cur) {
    const m = cur.innerText.match(/Subtask (\\d+)/);
    window.__shown.push([Date.now(), m ? +m[1] : 0, el.innerText.replace('\\u258d', '').length]);
  }
}).observe(document.body, {subtree: true, childList: true, characterData: true});
const cv = document.createElement('canvas'); cv.width = cv.height = 128;
const cx = cv.getContext('2d', {willReadFrequently: true});
let lastHash = null;
setInterval(() => {
  const img = document.querySelector('#camera-live');
  if (!img || !img.naturalWidth) return;
  cx.drawImage(img, 0, 0, 128, 128);
  const d = cx.getImageData(0, 0, 128, 128).data;
  let h = 0; for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;
  if (h !== lastHash) { window.__frames.push([Date.now(), h]); lastHash = h; }
}, 20);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_to_first_page(timeout: float = 180.0) -> float:
    import httpx

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port), "--logs", "out/bench-app-logs"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"python -m app exited early: {proc.stderr.read()[-500:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"no page within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def stream_fps(url: str, seconds: float) -> float:
    import httpx

    frames, t0 = 0, time.perf_counter()
    with httpx.stream("GET", url + "/camera.mjpg", timeout=10) as r:
        for chunk in r.iter_bytes():
            frames += chunk.count(b"Content-Type: image/jpeg")
            if time.perf_counter() - t0 >= seconds:
                break
    return frames / (time.perf_counter() - t0)


def keep_moving(rt, stop: threading.Event) -> None:
    import numpy as np

    i = 0
    while not stop.is_set():
        rt.robot.move(np.array([0.0, 0.0, 0.01 if (i // 5) % 2 == 0 else -0.01]))
        i += 1


def token_delays(rt, shown: list[list[float]]) -> list[float]:
    """Match each server-side action token (wall time, subtask, displayed length) to its first showing."""
    from app.format import _strip_prefix
    from policy.prompts import ACTIONS_PREFIX

    view = rt.view
    events = view.events
    wall = dict((v, t) for t, v in view.token_times)
    text: dict[int, str] = {}
    delays = []
    for version, e in enumerate(events, start=1):
        if e["type"] == "SubtaskStarted":
            text[e["index"]] = ""
        if e["type"] != "Tokens" or e["stage"] != "actions" or version not in wall:
            continue
        text[e["index"]] = text.get(e["index"], "") + e["text"]
        n = len(_strip_prefix(text[e["index"]], ACTIONS_PREFIX))
        t_server = wall[version]
        seen = [t / 1000 for t, sub, length in shown if sub == e["index"] + 1 and length >= n and t / 1000 >= t_server - 0.5]
        if seen:
            delays.append(max(0.0, min(seen) - t_server))
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to count camera frames")
    ap.add_argument("--no-browser", action="store_true", help="skip the measurements that need Chromium")
    a = ap.parse_args()

    out: dict = {"launch_to_first_page_s": round(launch_to_first_page(), 2)}

    from app.__main__ import launch

    demo, rt, url = launch(["--port", str(free_port()), "--logs", "out/bench-app-logs"], block=False, quiet=True)
    try:
        out["camera_render_fps_server"] = rt.camera.period and round(1 / rt.camera.period, 1)
        stop = threading.Event()
        mover = threading.Thread(target=keep_moving, args=(rt, stop), daemon=True)
        mover.start()
        f0, t0 = rt.camera.frame_id, time.perf_counter()
        out["camera_fps_stream"] = round(stream_fps(url, a.seconds), 1)
        out["camera_new_pictures_per_s_server"] = round((rt.camera.frame_id - f0) / (time.perf_counter() - t0), 1)
        if not a.no_browser and Path(CHROMIUM).exists():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = b.new_page(viewport={"width": 1440, "height": 1000})
                page.goto(url)
                page.wait_for_function("document.querySelector('#camera-live') && document.querySelector('#camera-live').naturalWidth > 0",
                                       timeout=60_000)
                page.evaluate(OBSERVE)
                time.sleep(a.seconds)
                frames = page.evaluate("window.__frames")
                span = (frames[-1][0] - frames[0][0]) / 1000 if len(frames) > 1 else 0
                out["camera_new_pictures_per_s_browser"] = round((len(frames) - 1) / span, 1) if span else 0.0
                stop.set()
                mover.join()
                rt.reset("bench", seed=0)

                page.evaluate("window.__shown = []")
                page.fill("#instruction textarea", "pick up the carrot")
                page.click("#run")
                page.wait_for_selector("#status .st-ok, #status .st-fail", timeout=300_000)
                delays = token_delays(rt, page.evaluate("window.__shown"))
                b.close()
            if delays:
                ms = sorted(d * 1000 for d in delays)
                out["token_to_screen_ms"] = {
                    "n": len(ms), "median": round(statistics.median(ms), 1),
                    "p90": round(ms[int(0.9 * (len(ms) - 1))], 1), "max": round(ms[-1], 1),
                }
            out["episode"] = {"success": rt.view.success, "duration_s": round(rt.view.duration_s, 1)}
        stop.set()
    finally:
        rt.close()
        demo.close()
    out["cpu_cores"] = os.cpu_count()
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
