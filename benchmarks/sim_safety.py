"""Where the simulated arm really goes under random action blocks (issue 13's before -> after figure).

Random two-axis steps (each at most 5 cm, each commanded target inside the box) drive the MuJoCo
arm; the measured hand is read after every stretch of physics (every 1/50 s), and the largest
jump from where a step began and the largest distance outside the workspace box are reported,
with how often the arm's own excursion check latched the e-stop. `--floor 0.04` raises the box
floor (the hand then never reaches the table). Prints one JSON object.

    .venv/bin/python benchmarks/sim_safety.py --steps 1500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0, help="scene seed and random-step seed")
    p.add_argument("--floor", type=float, default=None, help="raise the box floor to this z (metres)")
    p.add_argument("--task", default="pick_up")
    a = p.parse_args(argv)

    import mujoco

    from robot.base import BRIDGE_WORKSPACE, EStopEngaged, SafetyConfig, Workspace
    from robot.sim import SimConfig, SimRobot

    ws = BRIDGE_WORKSPACE if a.floor is None else Workspace((0.10, -0.15, a.floor), BRIDGE_WORKSPACE.high)
    sim = SimRobot(SimConfig(image_size=32, safety=SafetyConfig(workspace=ws)), seed=a.seed, task=a.task)
    rng = np.random.default_rng(a.seed)
    samples: list[np.ndarray] = []
    step = mujoco.mj_step

    def recording_step(m, d, *args, **kw):
        step(m, d, *args, **kw)
        if d is sim.data:
            samples.append(sim.ee_pos())

    mujoco.mj_step = recording_step
    jump = out = 0.0
    latched, t0 = 0, time.perf_counter()
    try:
        for _ in range(a.steps):
            target = sim.target
            while True:
                d = np.zeros(3)
                d[rng.choice(3, 2, replace=False)] = rng.uniform(-0.035, 0.035, 2)
                if np.linalg.norm(d) <= 0.05 and ws.contains(target + d):
                    break
            before = sim.ee_pos()
            samples.clear()
            try:
                sim.move(d, float(rng.integers(0, 2)))
            except EStopEngaged:
                latched += 1
                sim.safety.reset()
            for s in samples:
                jump = max(jump, float(np.linalg.norm(s - before)))
                out = max(out, float(np.linalg.norm(s - ws.clip(s))))
    finally:
        mujoco.mj_step = step
    result = {
        "steps": a.steps, "seed": a.seed, "task": a.task, "box_floor_m": ws.low[2],
        "max_jump_cm": round(jump * 100, 2), "max_outside_box_cm": round(out * 100, 2),
        "estop_latched": latched, "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
