"""Dataset formats: Bridge raw reader/writer round trip, bad input, and the episode helpers."""

import pickle

import numpy as np
import pytest

from training.formats import Reader
from training.formats.bridge_raw import list_episodes, read_episode, write_episode
from training.formats.episode import Episode, EpisodeError, synthetic_episode


def test_bridge_raw_round_trip_any_depth(tmp_path):
    ep = synthetic_episode(1, steps=20, image_size=48)
    ep.metadata["alt_instructions"] = ["place the carrot onto the plate"]
    write_episode(tmp_path / "lab/2023-01-01/raw/traj_group0/traj0", ep)
    write_episode(tmp_path / "lab/2023-01-01/raw/traj_group0/traj10", synthetic_episode(2, steps=20, image_size=48))
    write_episode(tmp_path / "lab/2023-01-01/raw/traj_group0/traj2", synthetic_episode(3, steps=20, image_size=48))
    refs = list_episodes(tmp_path)
    assert refs == [f"lab/2023-01-01/raw/traj_group0/traj{i}" for i in (0, 2, 10)]  # natural order
    back = read_episode(tmp_path, refs[0], drop_idle_first_step=False)
    assert back.instruction == ep.instruction
    assert back.metadata["alt_instructions"] == ["place the carrot onto the plate"]
    assert back.metadata["lang_metadata"] == ["confidence: 1"]
    np.testing.assert_array_equal(back.states, ep.states)
    np.testing.assert_array_equal(back.actions, ep.actions)
    assert len(back.images) == len(ep.images) == ep.num_steps + 1
    for t in (0, 7, ep.num_steps):
        assert back.images[t].shape == (48, 48, 3) and back.images[t].dtype == np.uint8
        assert np.abs(back.images[t].astype(int) - ep.images[t].astype(int)).mean() < 4  # JPEG, RGB order kept
    # Bridge's all-zero first action is dropped by default, with its state and image
    trimmed = read_episode(tmp_path, refs[0])
    assert trimmed.num_steps == ep.num_steps - 1 and trimmed.metadata["dropped_first_step"]
    np.testing.assert_array_equal(trimmed.states, ep.states[1:])
    np.testing.assert_array_equal(trimmed.images[0], back.images[1])
    assert trimmed.images.raw(0) == (tmp_path / refs[0] / "images0" / "im_1.jpg").read_bytes()


def test_write_episode_is_atomic_and_refuses_to_clobber(tmp_path):
    ep = synthetic_episode(0, steps=16, image_size=32)
    out = write_episode(tmp_path / "traj_group0" / "traj0", ep)
    assert sorted(p.name for p in out.iterdir()) == ["agent_data.pkl", "images0", "lang.txt", "obs_dict.pkl", "policy_out.pkl"]
    obs = pickle.loads((out / "obs_dict.pkl").read_bytes())
    assert obs["state"].shape == obs["full_state"].shape == (17, 7)
    pol = pickle.loads((out / "policy_out.pkl").read_bytes())
    assert len(pol) == 16 and pol[3]["actions"].shape == (7,)
    assert (out / "lang.txt").read_text().splitlines()[0] == ep.instruction
    with pytest.raises(FileExistsError, match="already exists"):
        write_episode(out, ep)
    bad = Episode("x", ep.images[:-1], ep.states, ep.actions)
    with pytest.raises(ValueError, match="T\\+1"):
        write_episode(tmp_path / "traj_group0" / "traj1", bad)
    assert not (tmp_path / "traj_group0" / "traj1").exists()
    assert [p.name for p in (tmp_path / "traj_group0").iterdir()] == ["traj0"]  # no temp folders left behind


def _bad(tmp_path, name, damage):
    d = write_episode(tmp_path / "traj_group0" / name, synthetic_episode(0, steps=16, image_size=32))
    damage(d)
    with pytest.raises(EpisodeError) as e:
        ep = read_episode(tmp_path, f"traj_group0/{name}")
        for i in range(len(ep.images)):
            ep.images[i]
    msg = str(e.value)
    assert "\n" not in msg and name in msg
    return msg


def test_bad_bridge_episodes_give_one_line_reasons(tmp_path):
    def nan_state(d):
        obs = pickle.loads((d / "obs_dict.pkl").read_bytes())
        obs["state"][5, 1] = np.nan
        obs["full_state"] = obs["state"]
        (d / "obs_dict.pkl").write_bytes(pickle.dumps(obs))

    def no_steps(d):
        obs = pickle.loads((d / "obs_dict.pkl").read_bytes())
        (d / "obs_dict.pkl").write_bytes(pickle.dumps({"state": obs["state"][:1], "full_state": obs["state"][:1]}))
        (d / "policy_out.pkl").write_bytes(pickle.dumps([]))

    assert "missing obs_dict.pkl" in _bad(tmp_path, "a", lambda d: (d / "obs_dict.pkl").unlink())
    assert "unreadable policy_out.pkl" in _bad(tmp_path, "b", lambda d: (d / "policy_out.pkl").write_bytes((d / "policy_out.pkl").read_bytes()[:40]))
    assert "not finite" in _bad(tmp_path, "c", nan_state)
    assert "no instruction" in _bad(tmp_path, "d", lambda d: (d / "lang.txt").write_text("confidence: 1\n"))
    assert "missing (no language" in _bad(tmp_path, "e", lambda d: (d / "lang.txt").unlink())
    assert "corrupt" in _bad(tmp_path, "f", lambda d: (d / "images0" / "im_9.jpg").write_bytes((d / "images0" / "im_9.jpg").read_bytes()[:300]))
    assert "missing image im_4.jpg" in _bad(tmp_path, "g", lambda d: (d / "images0" / "im_4.jpg").unlink())
    assert "no steps" in _bad(tmp_path, "h", no_steps)


def test_reader_and_episode_helpers(tmp_path):
    ep = synthetic_episode(5, steps=24, image_size=32)
    write_episode(tmp_path / "t" / "traj0", ep)
    r = Reader("bridge_raw", str(tmp_path))
    (ref,) = r.refs()
    got = r.read(ref)
    np.testing.assert_allclose(got.achieved_deltas(), np.diff(ep.states[1:, :3], axis=0))
    assert got.gripper_open().dtype == bool and not got.gripper_open().all() and got.gripper_open()[-1]
    g, g0, source = got.gripper_signal()
    assert source == "action" and g0 == 1.0
    np.testing.assert_array_equal(g, ep.actions[1:, 6])  # the commanded gripper, after the idle first step
    with pytest.raises(ValueError, match="unknown --format"):
        Reader("rlds", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Reader("bridge_raw", str(tmp_path / "nope")).refs()


class _RunsAShellCommand:
    """What a hostile dataset file holds: unpickling it runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", ["obs_dict.pkl", "policy_out.pkl", "agent_data.pkl"])
def test_a_pickle_that_runs_code_is_refused_and_the_episode_skipped(tmp_path, name):
    marker = tmp_path / "pwned"

    def plant(d):  # the payload sits where the reader expects data, as in a real attack
        (d / name).write_bytes(pickle.dumps({"state": _RunsAShellCommand(marker), "x": [_RunsAShellCommand(marker)]}))

    msg = _bad(tmp_path, "evil", plant)
    assert not marker.exists(), "the pickle's code ran"
    assert name in msg and "refused" in msg and "'posix.system'" in msg


def test_bridge_pickles_of_every_protocol_and_numpy_1_still_load(tmp_path):
    from training.formats.safe_pickle import load_restricted

    obs = {"state": np.arange(14.0).reshape(2, 7), "flag": np.bool_(True), "t": np.float64(0.2), "n": np.int64(3),
           "names": np.array(["a", "b"]), "objs": np.array([{"k": 1}], dtype=object), "col": np.zeros((3, 3))[:, 1],
           "meta": {"traj_ok": True, "tuple": (1, 2.0, "x", None), "set": {1, 2}, "bytes": b"\x00\xff"}}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(obs, protocol=protocol)
        numpy_1 = data.replace(b"numpy._core", b"numpy.core") if protocol < 4 else data  # how numpy 1 names it
        for variant in {data, numpy_1}:  # (GLOBAL opcodes are newline-ended text up to protocol 3)
            (tmp_path / "o.pkl").write_bytes(variant)
            back = load_restricted(tmp_path / "o.pkl")
            np.testing.assert_array_equal(back["state"], obs["state"])
            assert back["meta"] == obs["meta"] and back["objs"][0] == {"k": 1} and back["t"] == 0.2, protocol


def test_lang_txt_must_be_utf8_plain_text(tmp_path):
    msg = _bad(tmp_path, "u", lambda d: (d / "lang.txt").write_bytes(b"pick up the carrot \xff\xfe\x00\n"))
    assert "lang.txt: not valid UTF-8 (byte 19" in msg and "re-save" in msg
    msg = _bad(tmp_path, "n", lambda d: (d / "lang.txt").write_bytes(b"pick up\x00 the carrot\n"))
    assert "control character U+0000 at character 7" in msg
    assert "U+001B" in _bad(tmp_path, "e", lambda d: (d / "lang.txt").write_text("ok\n\x1b[31mred\n"))  # alternative lines too
    # a BOM, CRLF line ends, tabs and any script are fine
    d = write_episode(tmp_path / "traj_group0" / "ok", synthetic_episode(0, steps=16, image_size=32))
    (d / "lang.txt").write_bytes("\ufeffponer la zanahoria\tsobre el plato\r\n把胡萝卜放在盘子上\r\nconfidence: 1\r\n".encode())
    ep = read_episode(tmp_path, "traj_group0/ok")
    assert ep.instruction == "poner la zanahoria\tsobre el plato" and ep.metadata["alt_instructions"] == ["把胡萝卜放在盘子上"]


def test_every_reader_refuses_control_characters_in_the_instruction():
    ep = synthetic_episode(0, steps=16, image_size=8, instruction="pick up\x85 the carrot")
    with pytest.raises(EpisodeError, match=r"lerobot#3: instruction: control character U\+0085"):
        ep.validate("lerobot#3")
