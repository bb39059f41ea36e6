"""LeRobot v3: an mp4-backed fixture written and read back (PyAV), padded 8-D and plain 7-D state."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.formats import lerobot
from training.formats.episode import EpisodeError, synthetic_episode


@pytest.fixture(scope="module")
def eps():
    return [synthetic_episode(s, steps=18 + s, image_size=64, instruction=f"put the cup {s} on the plate") for s in range(3)]


@pytest.mark.parametrize("pad", [True, False])
def test_lerobot_round_trip_multi_episode_mp4(tmp_path, eps, pad):
    root = lerobot.write_dataset(tmp_path / "ds", eps, pad_state=pad, episodes_per_file=2)
    assert sorted(p.name for p in (root / "videos" / lerobot.DEFAULT_IMAGE_KEY / "chunk-000").iterdir()) == ["file-000.mp4", "file-001.mp4"]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.state"]["shape"] == [8 if pad else 7] and info["codebase_version"] == "v3.0"
    refs = lerobot.list_episodes(root)
    assert refs == ["episode_000000", "episode_000001", "episode_000002"]
    for ref, ep in zip(refs, eps):
        got = lerobot.read_episode(root, ref)
        assert got.instruction == ep.instruction
        np.testing.assert_allclose(got.states, ep.states, atol=1e-6)  # float32 storage
        np.testing.assert_allclose(got.actions, ep.actions, atol=1e-6)
        assert len(got.images) == len(ep.images)
        for t in (0, len(ep.images) // 2, len(ep.images) - 1):  # the second episode of a file starts mid-video
            diff = np.abs(got.images[t].astype(int) - ep.images[t].astype(int)).mean()
            assert diff < 8, (ref, t, diff)


def test_lerobot_unknown_features_and_keys(tmp_path, eps):
    root = lerobot.write_dataset(tmp_path / "ds", eps[:1])
    with pytest.raises(EpisodeError, match="unknown image feature 'observation.images.wrist'.*--image-key"):
        lerobot.read_episode(root, "episode_000000", image_key="observation.images.wrist")
    # a dataset whose state has a shape we do not know
    data = root / "data" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(data)
    t = t.set_column(t.column_names.index("observation.state"), "observation.state", pa.array([[0.0] * 5] * t.num_rows))
    pq.write_table(t, data)
    lerobot._DATASETS.clear()
    with pytest.raises(EpisodeError, match="unknown observation.state with \\(5,\\) dims"):
        lerobot.read_episode(root, "episode_000000")
    with pytest.raises(FileNotFoundError, match="no meta/info.json"):
        lerobot.list_episodes(tmp_path)
