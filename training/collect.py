"""Collect scripted-expert episodes in the simulator, written in the BridgeData V2 raw layout.

    python -m training.collect --task pick_up --episodes 20 --seed 0 --out sim/
    python -m training.collect --task all --episodes 20 --seed 0 --out sim/

Writes OUT/<task>/traj_group0/traj<k>/ with obs_dict.pkl ('state' and 'full_state',
(T+1, 7) [x, y, z, roll, pitch, yaw, gripper]), policy_out.pkl (T dicts {'actions':
[dx, dy, dz, 0, 0, 0, gripper]}: the commanded, safety-filtered deltas), agent_data.pkl,
lang.txt (English instruction first, then the Spanish, Mandarin and Hindi variants) and
images0/im_{t}.jpg (256x256 over-the-shoulder camera), through the one Bridge raw writer
(training.formats.bridge_raw.write_episode) so the same reader serves sim and real data.
The expert's subtask phrases and their step boundaries go into the episode metadata
(agent_data.pkl['metadata']).

Episode k of a task uses seed `--seed + k`: its task parameters (which object, which
target) and its object layout both come from that seed, so a run is reproducible.
Failed expert episodes are counted and, unless --keep-failed, not written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

TASK_NAMES = ("pick_up", "pick_place_lift", "pick_and_place", "pick_up_semantic")


@dataclasses.dataclass
class CollectConfig:
    tasks: tuple[str, ...]
    episodes: int = 20
    seed: int = 0
    out: Path = Path("sim")
    noise: float = 0.002  # metres of per-step jitter in the expert's deltas
    image_size: int = 256
    keep_failed: bool = False
    overwrite: bool = False
    jpeg_quality: int = 95


@dataclasses.dataclass
class TaskSummary:
    task: str
    episodes: int
    successes: int
    written: int
    steps: int
    seconds: float


def collect_episode(sim, task, seed: int, noise: float = 0.002):
    """Run the expert once from `sim.reset(seed, task)`; return (Episode, success)."""
    from robot.sim.expert import ScriptedExpert
    from robot.sim.tasks import languages
    from training.formats.episode import Episode

    sim.reset(seed, task)
    expert = ScriptedExpert(sim, task, noise=noise, seed=seed)
    images = [sim.observe().image]
    states = [sim.state()]
    actions = []
    bounds = []
    subtasks = expert.subtasks()
    for i in range(len(subtasks)):
        seg = expert.plan_segment(i)
        start = len(actions)
        for delta, grip in zip(seg.deltas, seg.gripper):
            cmd = sim.move(delta, grip)
            g = sim.gripper_command if cmd.gripper is None else cmd.gripper
            actions.append(np.concatenate([cmd.delta, np.zeros(3), [g]]))
            images.append(sim.observe().image)
            states.append(sim.state())
        bounds.append([start, len(actions)])
    success = bool(task.success(sim))
    params = {k: v for k, v in dataclasses.asdict(task).items()}
    meta = {
        "source": "robot.sim",
        "task": task.name,
        "task_params": params,
        "seed": int(seed),
        "expert_noise": float(noise),
        "success": success,
        "subtasks": subtasks,
        "subtask_bounds": bounds,  # [start, end) step indices of each subtask
        "alt_instructions": [task.instruction(lang) for lang in languages() if lang != "en"],
        "camera": "scene (over-the-shoulder, like Bridge image_0)",
        "control_hz": sim.config.control_hz,
    }
    ep = Episode(task.instruction("en"), images, np.array(states), np.array(actions), meta)
    return ep, success


def collect(cfg: CollectConfig, progress: bool = True) -> list[TaskSummary]:
    from tqdm import tqdm

    from robot.sim import SimConfig, SimRobot, make_task
    from training.formats.bridge_raw import write_episode

    sim = SimRobot(SimConfig(image_size=cfg.image_size))
    summaries = []
    bar = tqdm(total=cfg.episodes * len(cfg.tasks), unit="ep", disable=not progress, file=sys.stderr)
    try:
        for name in cfg.tasks:
            t0 = time.perf_counter()
            s = TaskSummary(name, 0, 0, 0, 0, 0.0)
            for k in range(cfg.episodes):
                seed = cfg.seed + k
                bar.set_description(f"{name} seed {seed}")
                ep, ok = collect_episode(sim, make_task(name, seed), seed, cfg.noise)
                s.episodes += 1
                s.successes += ok
                s.steps += ep.num_steps
                if ok or cfg.keep_failed:
                    write_episode(
                        cfg.out / name / "traj_group0" / f"traj{k}",
                        ep,
                        jpeg_quality=cfg.jpeg_quality,
                        agent_data={"traj_ok": ok},
                        overwrite=cfg.overwrite,
                    )
                    s.written += 1
                bar.update(1)
                bar.set_postfix(success=f"{s.successes}/{s.episodes}")
            s.seconds = time.perf_counter() - t0
            summaries.append(s)
    finally:
        bar.close()
        sim.disconnect()
    return summaries


def main(argv: list[str] | None = None) -> int:
    from training.seeds import check_training_seeds

    ap = argparse.ArgumentParser(prog="python -m training.collect", description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=[*TASK_NAMES, "all"], help="which task, or all four")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode k uses seed+k")
    ap.add_argument("--out", type=Path, required=True, help="output folder (OUT/<task>/traj_group0/traj<k>/)")
    ap.add_argument("--noise", type=float, default=0.002, help="expert jitter per step, metres (default 0.002)")
    ap.add_argument("--image-size", type=int, default=256, help="square camera images, pixels (default 256)")
    ap.add_argument("--keep-failed", action="store_true", help="also write episodes the expert failed (traj_ok False)")
    ap.add_argument("--overwrite", action="store_true", help="replace trajectory folders that already exist")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.episodes < 1:
        ap.error("--episodes must be at least 1")
    if args.noise < 0:
        ap.error("--noise must be a non-negative number of metres")
    if args.out.exists() and not args.out.is_dir():
        ap.error(f"--out {args.out} exists and is not a folder")
    try:
        check_training_seeds(args.seed, args.episodes)  # evaluation scenes stay unseen (training/seeds.py)
    except ValueError as e:
        ap.error(str(e))
    cfg = CollectConfig(
        tasks=TASK_NAMES if args.task == "all" else (args.task,),
        episodes=args.episodes,
        seed=args.seed,
        out=args.out,
        noise=args.noise,
        image_size=args.image_size,
        keep_failed=args.keep_failed,
        overwrite=args.overwrite,
    )
    try:
        summaries = collect(cfg, progress=not args.quiet)
    except FileExistsError as e:
        print(f"error: {e}; use --overwrite or another --out", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in summaries:
        print(
            f"{s.task}: expert success {s.successes}/{s.episodes} ({100.0 * s.successes / s.episodes:.0f}%), "
            f"{s.written} written, {s.steps / max(1, s.episodes):.1f} steps/episode, "
            f"{60.0 * s.episodes / max(s.seconds, 1e-9):.0f} episodes/min"
        )
    total = sum(s.successes for s in summaries)
    n = sum(s.episodes for s in summaries)
    print(f"expert success: {total}/{n} ({100.0 * total / n:.0f}%) over {len(summaries)} task(s); wrote {sum(s.written for s in summaries)} episodes to {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
