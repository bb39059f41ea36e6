"""The closed loop's episode logs (`policy.episode_log`) as training episodes.

    python -m training.verbalize --format episode_log --input out/app-logs --out dlan_from_demo

Every folder under the input holding an `episode.jsonl` is one episode (the web demo's
`--logs`, `python -m policy --log-dir`, the evaluation's `logs/`). The log format itself is
defined in `policy.episode_log` — this module only maps a logged trajectory onto `Episode`:
states from the measured end effector and fingers after each executed step, the commanded
gripper as `actions[:, 6]` (so a grasp on a wide object stays a grasp), frames from the
camera after each step. Only successful episodes are demonstrations: a failed or unfinished
one is skipped with its reason, as is a log written without a frame per step.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from policy.episode_log import find_logs, load_log, trajectory
from training.formats.episode import Episode, EpisodeError, LazyImages

FORMAT = "episode_log"


def list_episodes(root: str | os.PathLike, **_options) -> list[str]:
    """Episode folders under `root` (relative paths; '.' when `root` is one episode's folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--input {root}: no such directory (give the folder the loop logged into: --logs / --log-dir)")
    return find_logs(root)


def _load_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_episode(root: str | os.PathLike, ref: str, **_options) -> Episode:
    """One logged episode as an `Episode`; raises EpisodeError (one line) when it is no demonstration."""
    folder = Path(root) / ref
    try:
        traj = trajectory(load_log(folder), where=ref)
    except (ValueError, FileNotFoundError) as e:
        raise EpisodeError(str(e)) from None
    if traj.success is not True:
        raise EpisodeError(f"{ref}: the episode did not succeed; only successful episodes are demonstrations")
    T = len(traj.gripper_command)
    if T == 0:
        raise EpisodeError(f"{ref}: no executed steps")
    states = np.zeros((T + 1, 7))
    states[:, :3], states[:, 6] = traj.ee_pos, traj.gripper
    actions = np.zeros((T, 7))
    actions[:, :3] = np.diff(traj.ee_pos, axis=0)  # achieved (what the language is written from)
    actions[:, 6] = traj.gripper_command
    images = LazyImages(T + 1, lambda i: _load_png(traj.frames[i]))
    meta = {"source": str(folder), "format": FORMAT}
    return Episode(traj.instruction, images, states, actions, meta).validate(ref)
