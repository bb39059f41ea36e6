"""Cameras through OpenCV: a background thread keeps the newest frame and reconnects.

    cam = Camera(CameraConfig(source=0, size=256))     # a device index, a /dev/video path, a URL or a file
    cam.start()
    rgb = cam.read()                                   # newest frame, (256, 256, 3) uint8 RGB
    cam.close()

Reading a camera in the control loop's own thread hands it stale frames (OpenCV buffers
several) and blocks it when the camera hiccups. Here one thread reads continuously and
keeps only the newest frame; `read()` returns it at once. When frames stop (USB unplugged,
stream dropped, end of a file), the thread releases the capture, says so, and reopens it
every `reconnect_delay` seconds until it works again, then says that too. Messages go to
the `robot.camera` logger, to `Camera.events` and to an optional `on_event` callback.
`read()` refuses frames older than `stale_after` seconds, so a policy never acts on an
image of the past.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

log = logging.getLogger("robot.camera")


class CameraError(RuntimeError):
    """No usable frame (camera not started, never delivered a frame, or frames are stale)."""


@dataclass
class CameraConfig:
    source: int | str = 0  # device index, device path, stream URL or video file
    size: int | None = 256  # square output (resize), as Bridge's 256x256 images; None keeps the native size
    width: int | None = None  # ask the device for this capture size (ignored by files)
    height: int | None = None
    fps: float | None = None  # pace reads to this rate (files play at their own rate when None)
    reconnect_delay: float = 0.5  # seconds between attempts to reopen
    stale_after: float = 1.0  # seconds: an older newest frame is refused by read()
    first_frame_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 8:
            raise ValueError(f"CameraConfig.size must be at least 8 pixels (or None), got {self.size}")
        if not self.reconnect_delay > 0 or not self.stale_after > 0:
            raise ValueError("CameraConfig.reconnect_delay and stale_after must be positive seconds")


class Camera:
    def __init__(self, config: CameraConfig | None = None, on_event: Callable[[str], None] | None = None) -> None:
        self.config = config or CameraConfig()
        self.on_event = on_event
        self.events: collections.deque[str] = collections.deque(maxlen=100)
        self.frames = 0  # frames received since start
        self.reconnects = 0
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._running = False
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._connected = False

    # ------------------------------------------------------------------ public
    def start(self) -> "Camera":
        if self._running:
            return self
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"camera-{self.config.source}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._release()

    def __enter__(self) -> "Camera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected

    def read(self, timeout: float | None = None) -> np.ndarray:
        """The newest frame as (H, W, 3) uint8 RGB; waits up to `timeout` for the first one."""
        if not self._running:
            raise CameraError(f"camera {self.config.source!r} is not started: call start() first")
        timeout = self.config.first_frame_timeout if timeout is None else timeout
        with self._cond:
            if self._frame is None:
                self._cond.wait_for(lambda: self._frame is not None, timeout=timeout)
            if self._frame is None:
                raise CameraError(f"camera {self.config.source!r} delivered no frame in {timeout:.1f} s; check the cable/device or --camera")
            age = time.monotonic() - self._stamp
            if age > self.config.stale_after:
                raise CameraError(f"camera {self.config.source!r} has delivered no frame for {age:.1f} s (reconnecting); not using a stale image")
            return self._frame

    def wait_for_new(self, timeout: float = 1.0) -> np.ndarray:
        """Block until a frame newer than the current one arrives (e.g. after the arm moved)."""
        with self._cond:
            stamp = self._stamp
            if not self._cond.wait_for(lambda: self._stamp > stamp, timeout=timeout):
                raise CameraError(f"camera {self.config.source!r}: no new frame within {timeout:.1f} s")
        return self.read()

    # ------------------------------------------------------------------ thread
    def _say(self, msg: str) -> None:
        self.events.append(msg)
        log.warning(msg)
        if self.on_event is not None:
            try:
                self.on_event(msg)
            except Exception:  # a UI callback must not kill the camera thread
                log.exception("camera on_event callback failed")

    def _open(self) -> bool:
        cfg = self.config
        cap = cv2.VideoCapture(cfg.source)
        if not cap.isOpened():
            cap.release()
            return False
        if cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # devices that honour it hand out fresher frames
        self._cap = cap
        native = cap.get(cv2.CAP_PROP_FPS)
        is_file = isinstance(cfg.source, str) and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        # files decode as fast as the CPU allows: pace them like a live camera
        self._period = 1.0 / cfg.fps if cfg.fps else (1.0 / native if is_file and native and native > 0 else 0.0)
        return True

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _loop(self) -> None:
        lost_at: float | None = None
        announced_fail = False
        while self._running:
            if self._cap is None:
                if self._open():
                    if lost_at is not None:
                        self.reconnects += 1
                        self._say(f"camera {self.config.source!r} reconnected after {time.monotonic() - lost_at:.1f} s")
                    lost_at = None
                    announced_fail = False
                    self._connected = True
                else:
                    if lost_at is None and not announced_fail:
                        self._say(f"camera {self.config.source!r} cannot be opened; retrying every {self.config.reconnect_delay:.1f} s")
                        announced_fail = True
                        lost_at = time.monotonic()
                    time.sleep(self.config.reconnect_delay)
                    continue
            t0 = time.monotonic()
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self._release()
                self._connected = False
                lost_at = time.monotonic()
                announced_fail = True
                self._say(f"camera {self.config.source!r} lost (no frame); reconnecting")
                time.sleep(self.config.reconnect_delay)
                continue
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if self.config.size is not None:
                rgb = cv2.resize(rgb, (self.config.size, self.config.size), interpolation=cv2.INTER_AREA)
            with self._cond:
                self._frame = np.ascontiguousarray(rgb)
                self._stamp = time.monotonic()
                self.frames += 1
                self._cond.notify_all()
            if self._period:
                time.sleep(max(0.0, self._period - (time.monotonic() - t0)))
        self._connected = False
