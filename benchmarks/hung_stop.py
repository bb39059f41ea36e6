"""How soon Stop reaches an arm whose move() hangs in the driver (issue 13's before -> after figure).

A stand-in arm's move() blocks for `--hang` seconds (a driver waiting on a servo that does not
answer); the demo's SharedRobot.stop() is called meanwhile from another thread. Prints one JSON
object: how long stop() took to return and when the arm's own stop() ran, counted from Stop.

    .venv/bin/python benchmarks/hung_stop.py --hang 5
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hang", type=float, default=5.0, help="seconds the arm's move() blocks")
    a = p.parse_args(argv)

    from app.robot_access import SharedRobot
    from robot.base import SafetyFilter

    class HangingArm:
        def __init__(self) -> None:
            self.safety = SafetyFilter()
            self.entered = threading.Event()
            self.stopped_at: float | None = None

        def move(self, delta, gripper=None):
            self.entered.set()
            time.sleep(a.hang)

        def stop(self) -> None:
            self.stopped_at = time.perf_counter()

    arm = HangingArm()
    shared = SharedRobot(arm, step_s=0.0)
    mover = threading.Thread(target=lambda: shared.move(np.zeros(3)), daemon=True)
    mover.start()
    arm.entered.wait()
    t0 = time.perf_counter()
    shared.stop()
    returned = time.perf_counter() - t0
    mover.join()
    time.sleep(0.2)  # a stop() queued behind the move gets its chance to run
    ran = None if arm.stopped_at is None else arm.stopped_at - t0
    result = {"move_hangs_s": a.hang, "stop_returned_ms": round(returned * 1000, 1),
              "arm_stop_ran_after_s": None if ran is None else round(ran, 2)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
