"""The closed loop's episode log: one format, written here, read here.

The loop writes it (`LoopConfig(log_dir=...)`); the web demo, the CLI and the evaluation
all pass their log folder; the demo's History tab offers each episode's folder as a zip;
`python -m training.verbalize --format episode_log --input FOLDER` reads it back as
training data (via `trajectory`). Layout of one episode:

    <log_dir>/<YYYYmmdd-HHMMSS>_<instruction slug>/
        episode.jsonl    one JSON object per line, in order, each with "type" and "t" (s since start):
                         every policy.events event except Tokens (its dataclass fields);
                         "Observation" {image, ee_pos, gripper, stage, index?, attempt?, step?}: a frame;
                         "Segment" per executed block, the fields of a D_lan record
                         {image, instruction, subtasks, subtask, index, attempt, plan, actions,
                          state, displacement, done};
                         "Error" {traceback} when the episode ended on an exception.
        images/00000.png ...  the frames the records name (paths relative to the folder)

Worked example:

    log = EpisodeLog("runs", "pick up the carrot")      # runs/20260101-120000_pick_up_the_carrot/
    log.event(EpisodeStarted(...)); log.observation(t, obs, stage="subtasks"); ...; log.close()
    records = load_log(log.dir)                          # image paths made absolute
    traj = trajectory(records)                           # frames + states per executed step
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy.events import Event

__all__ = ["LOG_FILE", "EpisodeLog", "LoggedTrajectory", "find_logs", "load_log", "trajectory"]

LOG_FILE = "episode.jsonl"


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


class EpisodeLog:
    """Writes one episode's folder (see the module docstring); each record is flushed as written."""

    def __init__(self, root: str | Path, instruction: str) -> None:
        slug = re.sub(r"[^a-z0-9]+", "_", instruction.lower()).strip("_")[:40] or "episode"
        base = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}_{slug}"
        d, n = base, 1
        while d.exists():
            n += 1
            d = Path(f"{base}_{n}")
        (d / "images").mkdir(parents=True)
        self.dir = d
        self._f = open(d / LOG_FILE, "w", encoding="utf-8")
        self._n = 0

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(_jsonable(record)) + "\n")
        self._f.flush()

    def event(self, event: Event) -> None:
        self.write({"type": type(event).__name__, **dataclasses.asdict(event)})

    def _image(self, image: np.ndarray) -> str:
        from PIL import Image

        name = f"images/{self._n:05d}.png"
        self._n += 1
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(self.dir / name)
        return name

    def observation(self, t: float, obs: Any, **where: Any) -> None:
        self.write({"type": "Observation", "t": t, "image": self._image(obs.image), "ee_pos": obs.ee_pos,
                    "gripper": float(obs.gripper), **where})

    def segment(self, t: float, image: np.ndarray, *, instruction: str, subtasks: list[str], index: int, **rest: Any) -> None:
        self.write({
            "type": "Segment", "t": t, "image": self._image(image), "instruction": instruction, "subtasks": subtasks,
            "subtask": subtasks[index], "index": index, **rest,
        })

    def close(self) -> None:
        self._f.close()


def load_log(path: str | Path) -> list[dict[str, Any]]:
    """An episode log (its folder or its episode.jsonl) as a list of records; image paths made absolute."""
    p = Path(path)
    f = p / LOG_FILE if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"no episode log at {f}; pass a folder written by the loop's log_dir")
    records = []
    for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}:{n}: not a JSON record ({e.msg}); the log was cut off or edited") from None
        if isinstance(r.get("image"), str):
            r["image"] = str(f.parent / r["image"])
        records.append(r)
    return records


def find_logs(root: str | Path) -> list[str]:
    """Every episode folder under `root` (itself included), as paths relative to it, sorted."""
    root = Path(root)
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob(LOG_FILE))


@dataclass(frozen=True)
class LoggedTrajectory:
    """What the arm did in a logged episode, one entry per executed step (T steps, T+1 states).

    frames[t] is the camera image before step t (frames[T]: after the last); ee_pos and gripper are
    measured; gripper_command[t] is the gripper target in force during step t (1 = open).
    """

    instruction: str
    success: bool | None
    frames: list[str]
    ee_pos: np.ndarray  # (T+1, 3) metres
    gripper: np.ndarray  # (T+1,) measured opening
    gripper_command: np.ndarray  # (T,)


def trajectory(records: list[dict[str, Any]], where: str = "episode log") -> LoggedTrajectory:
    """The executed steps of a loaded log. Needs a frame after every step (the loop's default
    `observe_steps=True`); a log written with pose-only steps raises ValueError saying so."""
    started = next((r for r in records if r["type"] == "EpisodeStarted"), None)
    if started is None:
        raise ValueError(f"{where}: no EpisodeStarted record; is this a closed-loop episode log?")
    done = next((r for r in records if r["type"] == "EpisodeDone"), None)
    first = next((r for r in records if r["type"] == "Observation"), None)
    if first is None:
        raise ValueError(f"{where}: no camera frame in the log")
    frames, ee, grip, cmds = [first["image"]], [first["ee_pos"]], [first["gripper"]], []
    command = 1.0 if first["gripper"] >= 0.5 else 0.0  # before any command: what the fingers measure
    last_frame = None
    for r in records:
        if r["type"] == "Observation" and r.get("stage") == "step":
            last_frame = r
        elif r["type"] == "StepExecuted":
            if last_frame is None or (last_frame.get("index"), last_frame.get("step")) != (r["index"], r["step"]):
                raise ValueError(f"{where}: no frame after step {r['step'] + 1} of subtask {r['index'] + 1} "
                                 "(logged with pose-only steps); run the loop with observe_steps=True to log training data")
            if r.get("gripper_command") is not None:
                command = float(r["gripper_command"])
            frames.append(last_frame["image"])
            ee.append(r["ee_pos"])
            grip.append(r["gripper"])
            cmds.append(command)
            last_frame = None
    return LoggedTrajectory(
        instruction=started["instruction"], success=None if done is None else bool(done["success"]), frames=frames,
        ee_pos=np.asarray(ee, dtype=float).reshape(-1, 3), gripper=np.asarray(grip, dtype=float),
        gripper_command=np.asarray(cmds, dtype=float),
    )
