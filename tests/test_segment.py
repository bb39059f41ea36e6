"""Segmentation: phases of a pick-and-place, coverage and minimum length on generated episodes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from training.formats.episode import synthetic_episode
from training.segment import SegmentParams, segment_episode


def test_pick_and_place_phases():
    ep = synthetic_episode(3, steps=40).drop_idle_first_step()
    segs = segment_episode(ep.states)
    assert [s.phase for s in segs] == ["reach", "grasp", "transport", "place", "retreat"]
    assert [s.gripper for s in segs] == [None, "close", None, "open", None]
    g = ep.states[:, 6] >= 0.5
    for s in segs:  # a gripper event ends its segment
        if s.gripper:
            assert g[s.end] != g[s.end - 1] and (g[s.end] == (s.gripper == "open"))
    grasp = segs[1]
    assert np.all(np.diff(ep.states[grasp.start : grasp.end, 2]) < 0.005)  # the approach descends (or holds)


def test_gripper_free_motion_is_cut_by_direction():
    d = np.array([[0.02, 0, 0]] * 6 + [[0, 0.02, 0]] * 6 + [[0, 0, -0.01]] * 4)
    states = np.zeros((len(d) + 1, 7))
    states[1:, :3] = np.cumsum(d, axis=0)
    states[:, 6] = 1.0
    segs = segment_episode(states)
    assert [(s.start, s.end, s.phase) for s in segs] == [(0, 6, "move"), (6, 12, "move"), (12, 16, "move")]


@settings(max_examples=60, deadline=None)
@given(
    deltas=st.lists(st.tuples(*[st.floats(-0.03, 0.03)] * 3), min_size=1, max_size=60),
    grip=st.lists(st.booleans(), min_size=61, max_size=61),
    min_len=st.integers(1, 4),
    max_segments=st.integers(1, 8),
)
def test_segments_cover_every_step_once(deltas, grip, min_len, max_segments):
    d = np.array(deltas)
    states = np.zeros((len(d) + 1, 7))
    states[1:, :3] = np.cumsum(d, axis=0)
    states[:, 6] = np.array(grip[: len(d) + 1], dtype=float)
    p = SegmentParams(min_len=min_len, max_segments=max_segments)
    segs = segment_episode(states, p)
    assert segs[0].start == 0 and segs[-1].end == len(d)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert 1 <= len(segs) <= max_segments
    if len(segs) > 1:
        assert all(s.length >= min_len for s in segs)
