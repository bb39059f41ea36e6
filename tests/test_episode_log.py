"""The closed loop's episode log read back as training data: python -m training.verbalize --format episode_log."""

from __future__ import annotations

import pytest

from policy.__main__ import main as cli_main
from policy.episode_log import find_logs, load_log, trajectory
from policy.language import parse_actions
from training.dlan import iter_records, record_problems
from training.verbalize import main as verbalize_main

pytest.importorskip("robot.sim.robot")


def test_a_logged_sim_episode_becomes_faithful_dlan_records(tmp_path, capsys):
    logs = tmp_path / "logs"
    # a demonstration (the eggplant: a wide object, the measured fingers read "open" while holding it) ...
    assert cli_main(["--task", "pick_up", "--seed", "2", "--image-size", "64", "--quiet", "--log-dir", str(logs)]) == 0
    # ... and a log without a frame per step, which cannot be training data
    assert cli_main(["--task", "pick_up", "--seed", "0", "--image-size", "64", "--quiet", "--pose-only-steps",
                     "--log-dir", str(logs / "fast")]) == 0
    (good,) = [ref for ref in find_logs(logs) if not ref.startswith("fast")]
    traj = trajectory(load_log(logs / good))
    assert traj.success and "eggplant" in traj.instruction
    assert len(traj.frames) == len(traj.ee_pos) == len(traj.gripper_command) + 1
    assert traj.gripper_command[-1] == 0.0 and traj.gripper[-1] > 0.5  # closed on the eggplant, measuring open

    capsys.readouterr()
    rc = verbalize_main(["--input", str(logs), "--format", "episode_log", "--out", str(tmp_path / "dlan")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "skipped: 1 episode" in out and "pose-only steps" in (tmp_path / "dlan" / "README.md").read_text()
    recs = list(iter_records(tmp_path / "dlan"))
    assert recs and {r["episode"] for r in recs} == {good}
    assert all(r["instruction"] == traj.instruction and not record_problems(r) for r in recs)
    grips = [c.gripper for r in recs for step in parse_actions(r["actions"]) for c in step if c.gripper]
    assert grips == ["close"]  # the one grasp, from the commanded gripper
    assert (tmp_path / "dlan" / recs[0]["image"]).is_file()
