"""robot.camera against a real cv2.VideoCapture of a video file the test writes."""

import os
import time

import cv2
import numpy as np
import pytest

from robot.camera import Camera, CameraConfig, CameraError

W, H, FPS, N = 64, 48, 20, 20


def _write_video(path, n=N):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert vw.isOpened()
    for i in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[..., 0] = 255  # blue in OpenCV's BGR
        frame[..., 1] = i * 12  # frame index in the green channel
        vw.write(frame)
    vw.release()
    return path


def _wait(pred, timeout=15.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def video(tmp_path):
    return _write_video(tmp_path / "cam.avi")


def test_newest_frame_in_rgb_at_the_configured_size(video):
    with Camera(CameraConfig(source=str(video), size=32, reconnect_delay=0.05, stale_after=5)) as cam:
        img = cam.read()
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert img[..., 2].mean() > 200 and img[..., 0].mean() < 40  # BGR blue arrives as RGB blue
        first = int(round(img[..., 1].mean() / 12))
        assert _wait(lambda: cam.frames >= 8)
        later = int(round(cam.read()[..., 1].mean() / 12))
        assert later > first  # the thread keeps replacing it with the newest frame
        new = cam.wait_for_new(timeout=2.0)
        assert new.shape == (32, 32, 3)


def test_disconnect_is_reported_and_reconnects(video, tmp_path):
    events = []
    cfg = CameraConfig(source=str(video), size=None, reconnect_delay=0.05, stale_after=1.0)
    cam = Camera(cfg, on_event=events.append).start()
    try:
        assert cam.read().shape == (H, W, 3)
        # unplug: the file disappears while the camera is streaming
        away = tmp_path / "unplugged.avi"
        os.replace(video, away)
        assert _wait(lambda: any("lost" in e for e in events))
        assert not cam.connected
        assert _wait(lambda: time.monotonic() - cam._stamp > 1.05)
        with pytest.raises(CameraError, match="no frame for .* stale"):
            cam.read()
        # plug back in
        os.replace(away, video)
        assert _wait(lambda: any("reconnected" in e for e in events))
        assert cam.reconnects >= 1
        assert _wait(lambda: cam.connected)
        assert cam.wait_for_new(timeout=10).shape == (H, W, 3)  # fresh frames again
        assert all(e in cam.events for e in events)
    finally:
        cam.close()
    assert not cam._thread


def test_a_camera_that_never_opens_says_so(tmp_path):
    events = []
    cam = Camera(CameraConfig(source=str(tmp_path / "nothing.avi"), reconnect_delay=0.05), on_event=events.append).start()
    try:
        with pytest.raises(CameraError, match="delivered no frame"):
            cam.read(timeout=0.3)
        assert any("cannot be opened" in e for e in events)
        assert len(events) == 1  # said once, not every retry
    finally:
        cam.close()


def test_read_before_start_and_bad_config():
    with pytest.raises(CameraError, match="not started"):
        Camera().read()
    with pytest.raises(ValueError, match="size"):
        CameraConfig(size=2)
