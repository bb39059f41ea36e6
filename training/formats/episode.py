"""The one episode type every dataset reader yields and every writer takes.

Units are SI: positions in metres in the robot base frame (+x forward, +y left, +z up),
angles in radians, the gripper a float in [0, 1] (1 = open).

    instruction  the task in words ("put the carrot on the plate")
    images       T+1 frames, (H, W, 3) uint8 RGB; may be a lazy sequence (decoded on access)
    states       (T+1, 7) [x, y, z, roll, pitch, yaw, gripper]: the state before each step and after the last
    actions      (T, 7) the commanded actions as the dataset stores them
    metadata     free-form dict (source path, alternative instructions, camera, ...)

Language is written from *achieved* motion, not from the commanded actions:
`achieved_deltas()` is state[t+1, :3] - state[t, :3] and `gripper_open()` the
binarized gripper after each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Episode", "EpisodeError", "LazyImages", "GRIPPER_THRESHOLD", "STATE_DIM"]

STATE_DIM = 7
GRIPPER_THRESHOLD = 0.5


class EpisodeError(ValueError):
    """An episode that cannot be used; the message is one line naming what is wrong and where."""


class LazyImages(Sequence[np.ndarray]):
    """A sequence of frames decoded on access by `load(i)`; nothing is held in memory.

    `raw(i)`, when the source stores encoded JPEG frames, returns frame i's file bytes
    (so a writer can copy them without re-encoding); None otherwise.
    """

    def __init__(self, n: int, load: Callable[[int], np.ndarray], raw: Callable[[int], bytes] | None = None) -> None:
        self._n, self._load, self.raw = int(n), load, raw

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame {i} is outside the {self._n} frames")
        return self._load(i)


@dataclass
class Episode:
    instruction: str
    images: Sequence[np.ndarray]
    states: np.ndarray
    actions: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float64)
        self.actions = np.asarray(self.actions, dtype=np.float64)

    @property
    def num_steps(self) -> int:
        return len(self.states) - 1

    def validate(self, where: str = "episode") -> "Episode":
        """Raise EpisodeError (one line) unless shapes, numbers and the instruction are usable."""
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise EpisodeError(f"{where}: no instruction (empty or missing language annotation)")
        s, a = self.states, self.actions
        if s.ndim != 2 or s.shape[1] != STATE_DIM:
            raise EpisodeError(f"{where}: states must be (T+1, 7) [x,y,z,roll,pitch,yaw,gripper], got shape {s.shape}")
        if len(s) < 2:
            raise EpisodeError(f"{where}: no steps (only {len(s)} state{'s' if len(s) != 1 else ''})")
        if a.ndim != 2 or a.shape[1] != STATE_DIM or len(a) != len(s) - 1:
            raise EpisodeError(f"{where}: actions must be (T, 7) with T = {len(s) - 1} (one fewer than states), got shape {a.shape}")
        if not np.all(np.isfinite(s)):
            t = int(np.argwhere(~np.isfinite(s))[0][0])
            raise EpisodeError(f"{where}: state {t} is not finite (NaN or inf)")
        if not np.all(np.isfinite(a)):
            t = int(np.argwhere(~np.isfinite(a))[0][0])
            raise EpisodeError(f"{where}: action {t} is not finite (NaN or inf)")
        if len(self.images) != len(s):
            raise EpisodeError(f"{where}: {len(self.images)} images for {len(s)} states; need one image per state (T+1)")
        return self

    # ------------------------------------------------------------------ achieved motion

    def achieved_deltas(self) -> np.ndarray:
        """(T, 3) metres: state[t+1, :3] - state[t, :3]."""
        return np.diff(self.states[:, :3], axis=0)

    def gripper_open(self, threshold: float = GRIPPER_THRESHOLD) -> np.ndarray:
        """(T,) bool: the gripper is open after step t (state[t+1, 6] >= threshold)."""
        return self.states[1:, 6] >= threshold

    def initial_gripper_open(self, threshold: float = GRIPPER_THRESHOLD) -> bool:
        return bool(self.states[0, 6] >= threshold)

    def drop_idle_first_step(self, tol: float = 1e-9) -> "Episode":
        """Bridge's first commanded action is often all zeros (the arm had not started).

        When actions[0] is all zero, return the episode without step 0 (its first state,
        image and action) and note it in metadata['dropped_first_step']; else return self.
        """
        if self.num_steps >= 2 and np.all(np.abs(self.actions[0]) <= tol):
            images = self.images
            rest = _Shifted(images, 1) if isinstance(images, LazyImages) else list(images)[1:]
            return Episode(self.instruction, rest, self.states[1:], self.actions[1:], {**self.metadata, "dropped_first_step": True})
        return self


class _Shifted(LazyImages):
    def __init__(self, base: LazyImages, offset: int) -> None:
        raw = None if base.raw is None else (lambda i: base.raw(i + offset))  # type: ignore[misc]
        super().__init__(len(base) - offset, lambda i: base[i + offset], raw)
