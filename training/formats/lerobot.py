"""LeRobot v3 datasets: reader, and a small writer (used to build test fixtures).

Layout (LeRobot `codebase_version` v3.0):

    meta/info.json                                  fps, features, data_path / video_path templates
    meta/tasks.parquet                              task strings and their task_index
    meta/episodes/chunk-XXX/file-XXX.parquet        one row per episode: length, data file, video files and time ranges
    data/chunk-XXX/file-XXX.parquet                 one row per frame: observation.state, action, timestamp,
                                                    frame_index, episode_index, index, task_index
    videos/<image key>/chunk-XXX/file-XXX.mp4       frames of many episodes, one after another

`observation.state` is 8-D with a pad at index 6 as in the community Bridge copy
([x, y, z, roll, pitch, yaw, pad, gripper]) or plain 7-D; `action` is 7-D. An episode
of L frames gives L states, L images and the first L-1 actions. The camera is chosen by
`image_key` (default: the first video/image feature in info.json). Frames are decoded
with PyAV on first access to an episode's images.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from training.formats.episode import STATE_DIM, Episode, EpisodeError, LazyImages

__all__ = ["list_episodes", "read_episode", "write_dataset", "episode_ref", "FORMAT"]

FORMAT = "lerobot"
DEFAULT_IMAGE_KEY = "observation.images.image_0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def episode_ref(index: int) -> str:
    return f"episode_{int(index):06d}"


def _ref_index(ref: str) -> int:
    try:
        return int(ref.rsplit("_", 1)[-1])
    except ValueError:
        raise EpisodeError(f"{ref}: not a LeRobot episode id (expected episode_000123)") from None


# --------------------------------------------------------------------------- reader


class _Dataset:
    """The metadata of one LeRobot root, loaded once per process; the last data file is cached."""

    def __init__(self, root: Path) -> None:
        import pyarrow.parquet as pq

        self.root = root
        info_path = root / "meta" / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"--input {root}: no meta/info.json (is this a LeRobot v3 dataset? for Bridge raw folders use --format bridge_raw)")
        self.info = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if version and not version.startswith("v3"):
            raise ValueError(f"--input {root}: LeRobot {version} dataset; this reader reads v3.x (convert it with lerobot's v3 conversion script)")
        self.fps = float(self.info.get("fps", 5))
        self.features: dict[str, Any] = self.info.get("features", {})
        self.data_path = self.info.get("data_path", DATA_PATH)
        self.video_path = self.info.get("video_path", VIDEO_PATH)
        self.cameras = [k for k, v in self.features.items() if v.get("dtype") in ("video", "image")]
        files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        self.episodes: dict[int, dict[str, Any]] = {}
        for f in files:
            names = pq.read_schema(f).names
            keep = [c for c in names if c in ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index") or c.startswith(("data/", "videos/"))]
            for row in pq.read_table(f, columns=keep).to_pylist():
                self.episodes[int(row["episode_index"])] = row
        if not files:  # older exports without per-episode metadata: group the data files
            for f in sorted(root.glob("data/chunk-*/file-*.parquet")):
                chunk, file = int(f.parent.name.split("-")[1]), int(f.stem.split("-")[1])
                col = pq.read_table(f, columns=["episode_index"]).column("episode_index").to_numpy()
                for e in np.unique(col):
                    self.episodes[int(e)] = {"episode_index": int(e), "data/chunk_index": chunk, "data/file_index": file, "length": int((col == e).sum())}
        self.tasks: dict[int, str] = {}
        tp = root / "meta" / "tasks.parquet"
        if tp.is_file():
            df = pq.read_table(tp).to_pandas()
            if "task" not in df.columns:
                df = df.reset_index().rename(columns={df.index.name or "index": "task"})
            self.tasks = {int(i): str(t) for i, t in zip(df["task_index"], df["task"])}
        self._cache: tuple[Path, Any] | None = None

    def frames_table(self, path: Path):
        import pyarrow.parquet as pq

        if self._cache is None or self._cache[0] != path:
            self._cache = (path, pq.read_table(path))
        return self._cache[1]


_DATASETS: dict[str, _Dataset] = {}


def _open(root: str | os.PathLike) -> _Dataset:
    key = str(Path(root).resolve())
    if key not in _DATASETS:
        _DATASETS[key] = _Dataset(Path(root))
    return _DATASETS[key]


def list_episodes(root: str | os.PathLike, **_options) -> list[str]:
    """Episode ids ('episode_000012') in index order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--input {root}: no such directory (give the LeRobot dataset folder holding meta/info.json)")
    return [episode_ref(i) for i in sorted(_open(root).episodes)]


def _state7(raw: np.ndarray, where: str) -> np.ndarray:
    if raw.ndim != 2 or raw.shape[1] not in (7, 8):
        raise EpisodeError(f"{where}: unknown observation.state with {raw.shape[1:] or 'no'} dims; expected 7 or 8 (Bridge copy: pad at index 6)")
    return np.delete(raw, 6, axis=1) if raw.shape[1] == 8 else raw


def read_episode(root: str | os.PathLike, ref: str, image_key: str | None = None, **_options) -> Episode:
    """Read one episode; raises EpisodeError (one line) if it is unusable."""
    ds = _open(root)
    idx = _ref_index(ref)
    row = ds.episodes.get(idx)
    if row is None:
        raise EpisodeError(f"{ref}: not in {ds.root}/meta/episodes")
    key = image_key or (ds.cameras[0] if ds.cameras else None)
    if key is None or key not in ds.features:
        raise EpisodeError(f"{ref}: unknown image feature {key!r}; the dataset has {ds.cameras or 'no cameras'} (choose with --image-key)")
    for feat in ("observation.state", "action"):
        if feat not in ds.features:
            raise EpisodeError(f"{ref}: the dataset has no {feat!r} feature (features: {sorted(ds.features)[:10]})")
    data_file = ds.root / ds.data_path.format(chunk_index=int(row.get("data/chunk_index", 0)), file_index=int(row.get("data/file_index", 0)))
    if not data_file.is_file():
        raise EpisodeError(f"{ref}: missing data file {data_file}")
    try:
        table = ds.frames_table(data_file)
        ep_col = table.column("episode_index").to_numpy()
        sel = np.flatnonzero(ep_col == idx)
        rows = table.take(sel)
        order = np.argsort(rows.column("frame_index").to_numpy()) if "frame_index" in rows.column_names else np.arange(len(sel))
        states = np.asarray(rows.column("observation.state").to_pylist(), dtype=np.float64)[order]
        actions = np.asarray(rows.column("action").to_pylist(), dtype=np.float64)[order]
        ts = np.asarray(rows.column("timestamp").to_numpy(), dtype=np.float64)[order] if "timestamp" in rows.column_names else np.arange(len(sel)) / ds.fps
        task_index = int(rows.column("task_index")[0].as_py()) if "task_index" in rows.column_names and len(sel) else None
    except EpisodeError:
        raise
    except Exception as e:
        raise EpisodeError(f"{ref}: unreadable frames in {data_file} ({type(e).__name__}: {str(e)[:80]})") from None
    if len(states) == 0:
        raise EpisodeError(f"{ref}: no frames in {data_file}")
    states = _state7(states.reshape(len(states), -1), ref)
    actions = actions.reshape(len(actions), -1)
    if actions.shape[1] != STATE_DIM:
        raise EpisodeError(f"{ref}: unknown action with {actions.shape[1]} dims; expected 7")
    instruction = ds.tasks.get(task_index, "") if task_index is not None else ""
    if not instruction and row.get("tasks"):
        instruction = str(list(row["tasks"])[0])

    feat = ds.features[key]
    if feat.get("dtype") == "video":
        vfile = ds.root / ds.video_path.format(
            video_key=key, chunk_index=int(row.get(f"videos/{key}/chunk_index", 0)), file_index=int(row.get(f"videos/{key}/file_index", 0))
        )
        if not vfile.is_file():
            raise EpisodeError(f"{ref}: missing video {vfile}")
        start = float(row.get(f"videos/{key}/from_timestamp", 0.0))
        images = _VideoFrames(vfile, start + ts, ds.fps, ref)
    else:
        cols = rows.column(key).to_pylist() if key in rows.column_names else None
        if cols is None:
            raise EpisodeError(f"{ref}: image feature {key!r} has no column in {data_file}")
        images = LazyImages(len(cols), lambda i: _decode_image_cell(cols[order[i]], ref, i))
    ep = Episode(instruction, images, states, actions[:-1], {"source": f"{ds.root}#{ref}", "format": FORMAT, "image_key": key, "fps": ds.fps})
    return ep.validate(ref)


def _decode_image_cell(cell: Any, ref: str, i: int) -> np.ndarray:
    import cv2

    data = cell.get("bytes") if isinstance(cell, dict) else cell
    img = cv2.imdecode(np.frombuffer(data or b"", np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise EpisodeError(f"{ref}: image {i} cannot be decoded")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class _VideoFrames(LazyImages):
    """An episode's frames from a (multi-episode) mp4, decoded together on first access."""

    def __init__(self, path: Path, times: np.ndarray, fps: float, ref: str) -> None:
        self.path, self.times, self.fps, self.ref = path, np.asarray(times, dtype=float), fps, ref
        self._frames: list[np.ndarray] | None = None
        super().__init__(len(self.times), self._get)

    def _get(self, i: int) -> np.ndarray:
        if self._frames is None:
            self._frames = self._decode()
        return self._frames[i]

    def _decode(self) -> list[np.ndarray]:
        import av

        tol = 0.5 / self.fps
        out: list[np.ndarray | None] = [None] * len(self.times)
        try:
            with av.open(str(self.path)) as c:
                stream = c.streams.video[0]
                c.seek(max(0, int((self.times.min() - 1.0) / stream.time_base)), stream=stream, backward=True, any_frame=False)
                j = 0
                for frame in c.decode(stream):
                    t = float(frame.pts * stream.time_base) if frame.pts is not None else None
                    if t is None:
                        continue
                    while j < len(self.times) and t > self.times[j] + tol:
                        j += 1  # a frame we never saw: stays None and is reported below
                    if j >= len(self.times):
                        break
                    if abs(t - self.times[j]) <= tol:
                        out[j] = frame.to_ndarray(format="rgb24")
                        j += 1
                        if j >= len(self.times):
                            break
        except av.error.FFmpegError as e:
            raise EpisodeError(f"{self.ref}: video {self.path} cannot be decoded ({str(e)[:80]})") from None
        missing = [k for k, f in enumerate(out) if f is None]
        if missing:
            raise EpisodeError(f"{self.ref}: video {self.path} has no frame at {self.times[missing[0]]:.2f} s ({len(missing)} frames missing)")
        return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- writer (fixtures)


def write_dataset(
    root: str | os.PathLike,
    episodes: Sequence[Episode],
    *,
    fps: int = 5,
    image_key: str = DEFAULT_IMAGE_KEY,
    pad_state: bool = True,
    codec: str = "libx264",
    episodes_per_file: int = 1000,
) -> Path:
    """Write `episodes` as a LeRobot v3 dataset at `root` (mp4 video per file, as the community Bridge copy).

    `pad_state` writes the 8-D state with a zero pad at index 6; else 7-D. Each episode's
    L = T+1 frames carry states[t] and actions[t] (the last frame repeats the last action).
    Episodes are packed `episodes_per_file` to a data/video file.
    """
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    tasks: dict[str, int] = {}
    ep_rows: list[dict[str, Any]] = []
    h = w = None
    global_index = 0
    for f0 in range(0, len(episodes), episodes_per_file):
        file_index = f0 // episodes_per_file
        frames_rows: dict[str, list] = {k: [] for k in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index")}
        vpath = root / VIDEO_PATH.format(video_key=image_key, chunk_index=0, file_index=file_index)
        vpath.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(vpath), "w") as c:
            stream = None
            t_file = 0
            for e_i, ep in enumerate(episodes[f0 : f0 + episodes_per_file], start=f0):
                L = len(ep.states)
                task = tasks.setdefault(ep.instruction, len(tasks))
                start = t_file / fps
                for t in range(L):
                    img = np.ascontiguousarray(np.asarray(ep.images[t], dtype=np.uint8))
                    if stream is None:
                        h, w = img.shape[:2]
                        stream = c.add_stream(codec, rate=Fraction(fps))
                        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                        stream.time_base = Fraction(1, fps)
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts = t_file
                    for p in stream.encode(frame):
                        c.mux(p)
                    t_file += 1
                    s = np.asarray(ep.states[t], dtype=np.float32)
                    frames_rows["observation.state"].append((np.insert(s, 6, 0.0) if pad_state else s).tolist())
                    frames_rows["action"].append(np.asarray(ep.actions[min(t, L - 2)], dtype=np.float32).tolist())
                    frames_rows["timestamp"].append(t / fps)
                    frames_rows["frame_index"].append(t)
                    frames_rows["episode_index"].append(e_i)
                    frames_rows["index"].append(global_index)
                    frames_rows["task_index"].append(task)
                    global_index += 1
                ep_rows.append({
                    "episode_index": e_i, "tasks": [ep.instruction], "length": L,
                    "data/chunk_index": 0, "data/file_index": file_index,
                    "dataset_from_index": global_index - L, "dataset_to_index": global_index,
                    f"videos/{image_key}/chunk_index": 0, f"videos/{image_key}/file_index": file_index,
                    f"videos/{image_key}/from_timestamp": start, f"videos/{image_key}/to_timestamp": t_file / fps,
                })
            if stream is not None:
                for p in stream.encode():
                    c.mux(p)
        dpath = root / DATA_PATH.format(chunk_index=0, file_index=file_index)
        dpath.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(frames_rows), dpath)
    pq.write_table(pa.Table.from_pylist(ep_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task": list(tasks), "task_index": list(tasks.values())}), root / "meta" / "tasks.parquet")
    sdim = 8 if pad_state else 7
    info = {
        "codebase_version": "v3.0",
        "robot_type": "widowx",
        "fps": fps,
        "total_episodes": len(episodes),
        "total_frames": global_index,
        "total_tasks": len(tasks),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": {
            image_key: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channel"],
                        "info": {"video.fps": fps, "video.codec": codec, "video.pix_fmt": "yuv420p"}},
            "observation.state": {"dtype": "float32", "shape": [sdim], "names": ["x", "y", "z", "roll", "pitch", "yaw", "pad", "gripper"][: sdim] if pad_state else ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
            "action": {"dtype": "float32", "shape": [7], "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
            "timestamp": {"dtype": "float32", "shape": [1]},
            "frame_index": {"dtype": "int64", "shape": [1]},
            "episode_index": {"dtype": "int64", "shape": [1]},
            "index": {"dtype": "int64", "shape": [1]},
            "task_index": {"dtype": "int64", "shape": [1]},
        },
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return root
