"""Split an episode into subtask segments at gripper events and motion phases.

A segment is a half-open range of steps [start, end) (step t moves the arm from
state t to state t+1) with a phase name:

    reach      gripper open, moving toward the object (everything before a grasp's descent)
    grasp      the final approach (the descent right before the gripper closes) and the close
    transport  gripper closed: lift and carry (everything between a grasp and a place)
    place      the final descent right before the gripper opens, and the release
    retreat    gripper open after a release: moving away
    move       episodes without gripper events: runs of one dominant motion direction

How boundaries are found (all thresholds are fields of `SegmentParams`):
  * gripper events (binarized at 0.5) end the segment that contains them;
  * before each close/open event the segment boundary is moved back over the run of
    steps that descend (z delta below -`descend_eps`) or barely move (norm under
    `still_eps`): that run is the grasp / place approach, at least `min_len` steps when
    the episode has room for it;
  * without gripper events the motion is cut where the dominant axis or its sign
    changes and the new direction persists for `smooth` steps (still steps don't count);
  * segments shorter than `min_len` are merged into the following segment (the last one
    into the one before), and at most `max_segments` are kept (the shortest merged first).
The result always covers every step exactly once, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.language import gripper_events

__all__ = ["Segment", "SegmentParams", "segment_episode", "segment_motion"]


@dataclass(frozen=True)
class SegmentParams:
    min_len: int = 2  # steps; shorter segments are merged into a neighbour
    max_segments: int = 8
    descend_eps: float = 0.002  # m per step: a z delta below -descend_eps is a descent
    still_eps: float = 0.003  # m per step: motion under this counts as still
    max_approach: int = 6  # the grasp/place approach covers at most this many steps before the event
    smooth: int = 3  # a new direction must persist this many steps to cut gripper-free motion
    gripper_threshold: float = 0.5


@dataclass(frozen=True)
class Segment:
    start: int  # first step (inclusive)
    end: int  # last step + 1
    phase: str  # reach | grasp | transport | place | retreat | move
    gripper: str | None = None  # "open"/"close": the last gripper event inside the segment

    @property
    def length(self) -> int:
        return self.end - self.start


def _approach_start(deltas: np.ndarray, event: int, lo: int, p: SegmentParams) -> int:
    """First step of the approach run that ends with the event step `event` (inclusive), not before `lo`."""
    s = event  # the event step itself belongs to the approach
    while s - 1 >= lo and event - (s - 1) < p.max_approach:
        d = deltas[s - 1]
        if d[2] < -p.descend_eps or np.linalg.norm(d) < p.still_eps:
            s -= 1
        else:
            break
    # give the approach at least min_len steps when there is room
    return max(lo, min(s, event + 1 - p.min_len))


def segment_motion(deltas: np.ndarray, p: SegmentParams = SegmentParams()) -> list[tuple[int, int]]:
    """Cut gripper-free motion where the smoothed dominant direction (axis and sign) changes."""
    T = len(deltas)
    if T == 0:
        return []
    k = max(1, p.smooth)
    norm = np.linalg.norm(deltas, axis=1)
    dom = np.argmax(np.abs(deltas), axis=1)
    label = np.where(norm < p.still_eps, -1, dom * 2 + (deltas[np.arange(T), dom] > 0))
    cuts, current = [0], -1
    for t in range(T):
        if label[t] == -1 or label[t] == current:
            continue  # still steps join the running segment
        if current == -1:
            current = int(label[t])
            continue
        ahead = label[t : t + k]
        if np.all((ahead == label[t]) | (ahead == -1)):  # a new direction that persists for `smooth` steps
            cuts.append(t)
            current = int(label[t])
    return [(a, b) for a, b in zip(cuts, cuts[1:] + [T])]


def segment_episode(
    states: np.ndarray, p: SegmentParams = SegmentParams(), gripper: np.ndarray | None = None, initial_gripper: float | None = None
) -> list[Segment]:
    """Segments of an episode from its (T+1, 7) states (achieved motion).

    `gripper` (T,) is the gripper during each step (1 = open) and `initial_gripper` the value
    before step 0 (`Episode.gripper_signal()`); by default the measured state[t+1, 6] and state[0, 6].
    """
    states = np.asarray(states, dtype=float)
    deltas = np.diff(states[:, :3], axis=0)
    T = len(deltas)
    if T == 0:
        return []
    g = states[1:, 6] if gripper is None else np.asarray(gripper, dtype=float).reshape(T)
    g0 = (states[0, 6] if gripper is None else g[0]) if initial_gripper is None else initial_gripper
    open_ = g >= p.gripper_threshold
    initial_open = bool(g0 >= p.gripper_threshold)
    events = gripper_events(open_, initial_open)
    if not events:
        spans = segment_motion(deltas, p)
        segs = [Segment(a, b, "move") for a, b in spans]
        return _finish(segs, deltas, p)

    segs: list[Segment] = []
    pos = 0
    holding = not initial_open
    for t, kind in events:
        lo = pos
        a = _approach_start(deltas, t, lo, p)
        if a > pos:
            phase = "transport" if holding else ("reach" if kind == "close" else "retreat")
            segs.append(Segment(pos, a, phase))
        segs.append(Segment(a, t + 1, "grasp" if kind == "close" else "place", kind))
        pos = t + 1
        holding = kind == "close"
    if pos < T:
        segs.append(Segment(pos, T, "transport" if holding else "retreat"))
    return _finish(segs, deltas, p)


def _merge(segs: list[Segment], i: int, j: int) -> list[Segment]:
    """Merge neighbours i < j = i + 1; the phase of the one carrying a gripper event (else the longer) wins."""
    a, b = segs[i], segs[j]
    keep = b if b.gripper or (not a.gripper and b.length >= a.length) else a
    grip = b.gripper or a.gripper
    return segs[:i] + [Segment(a.start, b.end, keep.phase, grip)] + segs[j + 1 :]


def _finish(segs: list[Segment], deltas: np.ndarray, p: SegmentParams) -> list[Segment]:
    segs = [s for s in segs if s.length > 0]
    # merge short segments forward (the last one backward)
    i = 0
    while len(segs) > 1 and i < len(segs):
        if segs[i].length < p.min_len:
            segs = _merge(segs, i, i + 1) if i + 1 < len(segs) else _merge(segs, i - 1, i)
            i = max(0, i - 1)
        else:
            i += 1
    while len(segs) > max(1, p.max_segments):
        k = min(range(len(segs)), key=lambda n: (segs[n].length, n))
        segs = _merge(segs, k, k + 1) if k + 1 < len(segs) else _merge(segs, k - 1, k)
    assert segs[0].start == 0 and segs[-1].end == len(deltas) and all(x.end == y.start for x, y in zip(segs, segs[1:]))
    return segs
