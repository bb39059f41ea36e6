"""python -m training.collect: expert episodes in sim, written in the BridgeData V2 raw layout."""

import pickle

import numpy as np
import pytest

from training.collect import main
from training.formats.bridge_raw import list_episodes, read_episode


def test_collect_writes_bridge_raw_that_the_reader_reads(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["--task", "all", "--episodes", "1", "--seed", "3", "--out", str(out), "--image-size", "64", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "expert success: 4/4 (100%)" in text
    refs = list_episodes(out)
    assert refs == sorted(f"{t}/traj_group0/traj0" for t in ("pick_and_place", "pick_place_lift", "pick_up", "pick_up_semantic"))
    for ref in refs:
        d = out / ref
        obs = pickle.load(open(d / "obs_dict.pkl", "rb"))
        pol = pickle.load(open(d / "policy_out.pkl", "rb"))
        agent = pickle.load(open(d / "agent_data.pkl", "rb"))
        T = len(pol)
        assert obs["state"].shape == obs["full_state"].shape == (T + 1, 7)
        assert all(p["actions"].shape == (7,) for p in pol)
        assert len(list((d / "images0").glob("im_*.jpg"))) == T + 1
        lines = (d / "lang.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 5 and lines[-1].startswith("confidence")  # en + es/zh/hi + metadata
        assert agent["traj_ok"] is True
        meta = agent["metadata"]
        assert meta["success"] and meta["seed"] == 3 and meta["subtasks"][0].startswith("reach for the")
        bounds = meta["subtask_bounds"]
        assert bounds[0][0] == 0 and bounds[-1][1] == T and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))

        ep = read_episode(out, ref, drop_idle_first_step=False)
        assert ep.instruction == lines[0] and ep.images[0].shape == (64, 64, 3)
        # achieved motion follows the commanded (filtered) deltas: the arm tracks within a few mm
        err = np.abs(ep.achieved_deltas() - ep.actions[:, :3])
        assert np.median(err) < 0.002 and err.max() < 0.012
        assert np.all(np.abs(ep.actions[:, 3:6]) == 0)
        assert set(np.unique(ep.actions[:, 6])) <= {0.0, 1.0}
        # the gripper state closes after the expert closes it
        closed = ep.actions[:, 6] == 0
        assert ep.states[1:, 6][closed].mean() < ep.states[1:, 6][~closed].mean()


def test_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        assert main(["--task", "pick_up", "--episodes", "1", "--seed", "5", "--out", str(tmp_path / name), "--image-size", "32", "--quiet"]) == 0
    a = tmp_path / "a/pick_up/traj_group0/traj0"
    b = tmp_path / "b/pick_up/traj_group0/traj0"
    for f in ("obs_dict.pkl", "policy_out.pkl", "lang.txt", "images0/im_0.jpg", "images0/im_10.jpg"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_existing_output_is_not_overwritten_silently(tmp_path, capsys):
    args = ["--task", "pick_up", "--episodes", "1", "--out", str(tmp_path), "--image-size", "32", "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert main(args + ["--overwrite"]) == 0


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--task", "juggle", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--task", "pick_up", "--episodes", "0", "--out", str(tmp_path)])
    assert "--episodes must be at least 1" in capsys.readouterr().err
