"""Shared access to one robot from many threads: the loop, the camera, the page.

`SharedRobot` wraps any `robot.base.Robot`:
- every call is serialized by one mutex (MuJoCo's data and most drivers are not
  thread-safe), except `stop()`, which never waits for it: the e-stop latch is set
  and the arm's own `stop()` runs at once on the stopping thread, even while a `move()`
  hangs in the driver (robots' `stop()` is safe to call concurrently, see `robot.base.Robot`);
  `in_flight()` says which call holds the mutex and for how long, so a hung driver can be
  reported rather than shown as an ordinary busy robot;
- everything that renders (`observe`) runs on one dedicated thread, because an
  offscreen GL context belongs to the thread that made it current;
- `move` is paced to the arm's control rate (`step_s`, 0.2 s for 5 Hz), so a
  simulated arm moves in real time on the camera instead of jumping to the end.

`CameraFeed` keeps the latest observation fresh at `fps` on its own thread, so the
page reads a frame without touching the robot.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from robot.base import FilteredCommand, Observation


class SharedRobot:
    def __init__(self, robot: Any, step_s: float = 0.2) -> None:
        self.robot = robot
        self.safety = robot.safety
        self.step_s = float(step_s)
        self.mutex = threading.RLock()
        self._render = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._call: tuple[str, float] | None = None  # (what, time.monotonic() it began) under the mutex
        self.stop_error = ""  # what the arm's own stop() raised last time, if it did

    # --------------------------------------------------------------- Robot protocol
    def connect(self) -> None:
        with self.mutex:
            self.robot.connect()

    def disconnect(self) -> None:
        with self.mutex:
            self._on_render(self.robot.disconnect)
        self._render.shutdown(wait=False)

    def observe(self) -> Observation:
        with self._calling("observe()"):
            return self._on_render(self.robot.observe)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        with self.mutex:
            outer, self._call = self._call, (what, time.monotonic())
            try:
                yield
            finally:
                self._call = outer

    def in_flight(self) -> tuple[str, float] | None:
        """(the robot call holding the mutex, seconds it has run), or None when the robot is idle."""
        call = self._call
        return None if call is None else (call[0], time.monotonic() - call[1])

    def move(self, delta: np.ndarray, gripper: float | None = None) -> FilteredCommand:
        t0 = time.perf_counter()
        with self._calling("move()"):
            cmd = self.robot.move(delta, gripper)
        rest = self.step_s - (time.perf_counter() - t0)
        # Pace to the control rate, but wake at once when the e-stop is pressed.
        if rest > 0 and not self.safety.engaged:
            self.safety.wait_engaged(rest)
        return cmd

    def home(self) -> None:
        with self._calling("home()"):
            self.robot.home()

    def stop(self) -> None:
        """Latch the e-stop and run the arm's own stop() now, on this thread, without the mutex."""
        self.safety.estop("Stop pressed in the web demo")  # latch first: no further step starts
        try:
            self.robot.stop()
            self.stop_error = ""
        except Exception as e:  # the latch holds either way; say what the arm's stop() did
            self.stop_error = f"the arm's stop() failed: {type(e).__name__}: {e}"

    # --------------------------------------------------------------- extras of the sim
    def reset(self, seed: int | None = None, **kw) -> None:
        with self._calling("reset()"):
            self._on_render(lambda: self.robot.reset(seed, **kw))

    def call(self, fn, *a, **kw):
        """Run `fn(robot, ...)` under the mutex (ground-truth checks, object positions)."""
        with self._calling(getattr(fn, "__name__", "call") + "()"):
            return fn(self.robot, *a, **kw)

    def __getattr__(self, name: str) -> Any:  # read-only extras (object_positions, task, seed, ...)
        return getattr(self.robot, name)

    def _on_render(self, fn):
        return self._render.submit(fn).result()


class CameraFeed:
    """The latest frame, refreshed at `fps` in the background; `frame_id` counts new frames."""

    def __init__(self, robot: SharedRobot, fps: float = 12.0) -> None:
        self.robot = robot
        self.period = 1.0 / fps
        self.obs: Observation | None = None
        self.frame_id = 0
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)

    def start(self) -> "CameraFeed":
        self.grab()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def grab(self) -> Observation | None:
        try:
            obs = self.robot.observe()
        except Exception as e:  # a camera that drops out: show why, keep trying
            self.error = f"camera: {type(e).__name__}: {e}"
            return None
        changed = self.obs is None or not np.array_equal(obs.image, self.obs.image) or not np.allclose(obs.ee_pos, self.obs.ee_pos)
        self.obs, self.error = obs, ""
        if changed:
            self.frame_id += 1
        return obs

    def jpeg_frame(self) -> bytes:
        """The current frame as JPEG, encoded once per frame however many viewers there are."""
        fid, obs = self.frame_id, self.obs
        if self._jpeg[0] != fid and obs is not None:
            self._jpeg = (fid, jpeg_bytes(obs.image))
        return self._jpeg[1]

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self.grab()
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - t0)))


def jpeg_bytes(image: np.ndarray, quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
