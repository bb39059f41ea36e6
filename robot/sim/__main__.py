"""Render the simulator's cameras to PNG files.

    python -m robot.sim --task pick_and_place --seed 1 --out assets/scene.png [--wrist wrist.png] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m robot.sim", description="Render the simulated scene camera (and wrist camera) to PNG.")
    ap.add_argument("--task", default="pick_and_place", help="task whose layout to show (default pick_and_place)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=256, help="square image size in pixels (default 256)")
    ap.add_argument("--out", type=Path, default=Path("assets/scene.png"))
    ap.add_argument("--wrist", type=Path, default=None, help="also write the wrist camera here")
    args = ap.parse_args(argv)
    from robot.sim import SimConfig, SimRobot

    try:
        sim = SimRobot(SimConfig(image_size=args.size, wrist_camera=args.wrist is not None))
        sim.reset(args.seed, args.task)
        obs = sim.observe()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(obs.image, cv2.COLOR_RGB2BGR))
    if args.wrist is not None:
        cv2.imwrite(str(args.wrist), cv2.cvtColor(obs.wrist_image, cv2.COLOR_RGB2BGR))
    print(f"{args.out}: {sim.task.instruction()} (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
