"""The one episode type every dataset reader yields and every writer takes.

Units are SI: positions in metres in the robot base frame (+x forward, +y left, +z up),
angles in radians, the gripper a float in [0, 1] (1 = open).

    instruction  the task in words ("put the carrot on the plate")
    images       T+1 frames, (H, W, 3) uint8 RGB; may be a lazy sequence (decoded on access)
    states       (T+1, 7) [x, y, z, roll, pitch, yaw, gripper]: the state before each step and after the last
    actions      (T, 7) the commanded actions as the dataset stores them
    metadata     free-form dict (source path, alternative instructions, camera, ...)

Language is written from *achieved* motion, not from the commanded translation:
`achieved_deltas()` is state[t+1, :3] - state[t, :3]. The gripper is the one exception:
`gripper_signal()` takes the *commanded* gripper (actions[:, 6], 1 = open) when the
actions carry one in [0, 1], because the measured opening of a gripper closed on a wide
object (an eggplant, a pot handle) stays above 0.5 and would hide the grasp; otherwise
the measured state[t+1, 6]. Either is binarized at 0.5 by the action language.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Episode", "EpisodeError", "LazyImages", "GRIPPER_THRESHOLD", "STATE_DIM", "synthetic_episode", "check_text"]

STATE_DIM = 7
GRIPPER_THRESHOLD = 0.5


class EpisodeError(ValueError):
    """An episode that cannot be used; the message is one line naming what is wrong and where."""


_LINE_BREAKS = "\t\n\r"


def check_text(text: str, where: str) -> str:
    """Return `text` unchanged, or raise EpisodeError if it holds a control character.

    Control characters (Unicode category Cc: NUL, ESC, DEL, the C1 range) other than tab
    and line breaks are never part of an instruction; they come from a damaged or hostile
    file and would be copied into the training data and every prompt built from it.
    """
    for i, ch in enumerate(text):
        if ch not in _LINE_BREAKS and unicodedata.category(ch) == "Cc":
            raise EpisodeError(f"{where}: control character U+{ord(ch):04X} at character {i} of the text; "
                               "an instruction is plain text (fix or re-save the file)")
    return text


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
        check_text(self.instruction, f"{where}: instruction")
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

    def gripper_signal(self) -> tuple[np.ndarray, float, str]:
        """(g, initial, source): g (T,) the gripper value in force during step t (1 = open), the value
        before step 0, and "action" or "state" (see the module doc). With "action" the value before
        step 0 is taken to be the first command's, so no gripper event is made up at the start."""
        g = self.actions[:, 6] if self.actions.ndim == 2 and self.actions.shape[1] > 6 else np.empty(0)
        if len(g) == self.num_steps and len(g) and np.all(np.isfinite(g)) and np.all((g >= -1e-6) & (g <= 1 + 1e-6)):
            return g.astype(np.float64), float(g[0]), "action"
        return self.states[1:, 6].astype(np.float64), float(self.states[0, 6]), "state"

    def gripper_open(self, threshold: float = GRIPPER_THRESHOLD) -> np.ndarray:
        """(T,) bool: the gripper is open during step t (`gripper_signal` binarized)."""
        return self.gripper_signal()[0] >= threshold

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


def synthetic_episode(
    seed: int = 0,
    steps: int = 40,
    image_size: int = 64,
    instruction: str = "put the carrot on the plate",
    noise: float = 0.0005,
) -> Episode:
    """A scripted Bridge-like pick-and-place episode (for tests and benchmarks, not for training).

    Reach the object, descend, close, lift, carry to the target, descend, open, retreat;
    `steps` 5 Hz steps (at least 16), Gaussian jitter of `noise` metres per axis, a frame
    per state drawn as a smooth tabletop with the gripper as a square, (size, size, 3) uint8.
    The first action is all zeros, as in Bridge.
    """
    rng = np.random.default_rng(seed)
    steps = max(16, int(steps))
    home = np.array([0.25, 0.0, 0.15])
    obj = np.array([rng.uniform(0.25, 0.40), rng.uniform(-0.12, 0.05), 0.02])
    tgt = np.array([rng.uniform(0.20, 0.40), rng.uniform(0.05, 0.20), 0.04])
    # waypoints with their share of the steps and the gripper after them
    plan = [
        (obj + [0, 0, 0.08], 0.25, 1.0),
        (obj, 0.15, 1.0),
        (obj, 0.05, 0.0),  # close
        (obj + [0, 0, 0.10], 0.12, 0.0),
        (tgt + [0, 0, 0.08], 0.18, 0.0),
        (tgt, 0.10, 0.0),
        (tgt, 0.05, 1.0),  # open
        (tgt + [0, 0, 0.08], 0.10, 1.0),
    ]
    counts = np.maximum(1, np.round(np.array([p[1] for p in plan]) * steps).astype(int))
    counts[0] += steps - counts.sum()
    pos, grip = [home], [1.0]
    cur = home
    for (wp, _, g), n in zip(plan, counts):
        for k in range(1, n + 1):
            pos.append(cur + (wp - cur) * k / n)
            grip.append(g if k == n or g == grip[-1] else grip[-1])
        cur = wp
    pos = np.array(pos)
    pos[1:] += rng.normal(0, noise, pos[1:].shape)
    states = np.zeros((len(pos), 7))
    states[:, :3] = pos
    states[:, 3:6] = rng.normal(0, 0.01, (len(pos), 3))
    states[:, 6] = grip
    actions = np.zeros((len(pos) - 1, 7))
    actions[:, :3] = np.diff(pos, axis=0)
    actions[:, 6] = states[1:, 6]
    actions[0] = 0.0  # Bridge's idle first action
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    base = np.stack([xx * 200 // image_size, yy * 200 // image_size, np.full_like(xx, 90)], axis=-1).astype(np.uint8)

    def frame(t: int) -> np.ndarray:
        img = base.copy()
        u = int(np.clip((pos[t, 1] + 0.15) / 0.40 * image_size, 0, image_size - 1))
        v = int(np.clip((0.45 - pos[t, 0]) / 0.35 * image_size, 0, image_size - 1))
        r = max(2, image_size // 16)
        img[max(0, v - r) : v + r, max(0, u - r) : u + r] = (255, 255, 255) if states[t, 6] > 0.5 else (40, 40, 40)
        return img

    images = [frame(t) for t in range(len(pos))]
    return Episode(instruction, images, states, actions, {"synthetic_seed": seed})
