"""Simulator speed: control steps per second with a 256x256 render, physics alone, render alone,
and expert collection throughput (episodes/minute). Prints JSON.

    .venv/bin/python benchmarks/sim.py [--steps 200] [--episodes 4]

Runs on one core (torch/OpenMP/llvmpipe thread counts pinned to 1) so the figure is what one
worker gets; the goal is >= 20 control steps/s including the render, four times the arm's 5 Hz.
"""

from __future__ import annotations

import os

# One core: pin thread pools before numpy / mujoco / Mesa start them.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LP_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot.sim import SimConfig, SimRobot, _gl  # noqa: E402


def _pin_one_core() -> int | None:
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def _moves(n: int, seed: int = 0) -> np.ndarray:
    # a wandering 5 Hz trajectory of 1-3 cm steps that stays around the workspace centre
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.02, 0.02, size=(n, 3))


def _rate(n: int, wall0: float, cpu0: float) -> tuple[float, float]:
    """(per wall-clock second, per CPU second of this process): the second is what one
    uncontended core gives, even on a busy machine."""
    return n / (time.perf_counter() - wall0), n / max(time.process_time() - cpu0, 1e-9)


def bench_control(sim: SimRobot, steps: int, render: bool) -> tuple[float, float]:
    sim.reset(0, "pick_up")
    moves = _moves(steps)
    if render:
        sim.observe()  # create the GL context outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    for k, d in enumerate(moves):
        if sim.ee_pos()[2] < 0.05 or np.linalg.norm(sim.ee_pos()[:2] - [0.27, 0.05]) > 0.12:
            d = 0.5 * (np.array([0.27, 0.05, 0.12]) - sim.target)  # drift back toward the middle
        sim.move(d, float(k % 10 < 5))
        if render:
            sim.observe()
    return _rate(steps, t0, c0)


def bench_render(sim: SimRobot, frames: int) -> tuple[float, float]:
    sim.observe()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(frames):
        sim.observe()
    return _rate(frames, t0, c0)


def bench_collect(episodes: int) -> dict:
    from training.collect import CollectConfig, collect

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        summaries = collect(CollectConfig(tasks=("pick_up", "pick_and_place"), episodes=episodes, out=Path(tmp)), progress=False)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(s.episodes for s in summaries)
    return {
        "collect_episodes_per_min": round(60.0 * n / secs, 1),
        "collect_episodes_per_cpu_min": round(60.0 * n / cpu, 1),
        "collect_steps_per_episode": round(sum(s.steps for s in summaries) / n, 1),
        "collect_expert_success": f"{sum(s.successes for s in summaries)}/{n}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--episodes", type=int, default=4, help="per task, for the collection figure (pick_up and pick_and_place)")
    args = ap.parse_args()
    cpu = _pin_one_core()
    sim = SimRobot(SimConfig(image_size=256))
    with_render = bench_control(sim, args.steps, render=True)
    physics = bench_control(sim, args.steps, render=False)
    render = bench_render(sim, args.steps)
    out = {
        "benchmark": "sim",
        "gl_backend": _gl.BACKEND,
        "pinned_cpu": cpu,
        "machine": platform.processor() or platform.machine(),
        "image_size": 256,
        "physics_substeps_per_control_step": sim._substeps,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "control_steps_per_s_with_render": round(with_render[0], 1),
        "control_steps_per_s_physics_only": round(physics[0], 1),
        "renders_per_s": round(render[0], 1),
        "control_steps_per_cpu_s_with_render": round(with_render[1], 1),
        "control_steps_per_cpu_s_physics_only": round(physics[1], 1),
        "renders_per_cpu_s": round(render[1], 1),
        "goal_control_steps_per_s": 20,
    }
    out.update(bench_collect(args.episodes))
    sim.disconnect()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
