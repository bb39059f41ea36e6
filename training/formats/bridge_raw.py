"""BridgeData V2 raw layout: reader and writer (the one definition of this format here).

Layout of one trajectory folder (any directory depth above it, typically
`.../traj_group<k>/traj<n>/`):

    obs_dict.pkl     dict; 'full_state' and/or 'state': (T+1, 7) [x, y, z, roll, pitch, yaw, gripper 0..1]
    policy_out.pkl   list of T dicts, each with 'actions': a 7-vector
    agent_data.pkl   dict of recording metadata
    lang.txt         first line the instruction; lines containing "confidence" are metadata;
                     further lines are alternative instructions
    images0/im_{t}.jpg   T+1 RGB frames of the main camera, t = 0..T

Reader: `list_episodes(root)` finds the trajectory folders (sorted, relative paths);
`read_episode(root, ref)` returns an `Episode` with lazily decoded images or raises
`EpisodeError` with a one-line reason. Writer: `write_episode(out_dir, episode)`.
"""

from __future__ import annotations

import os
import pickle  # writing only; reading goes through safe_pickle
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.formats.episode import STATE_DIM, Episode, EpisodeError, LazyImages, check_text
from training.formats.safe_pickle import ForbiddenGlobalError, load_restricted

__all__ = ["list_episodes", "read_episode", "write_episode", "read_jpeg", "FORMAT"]

FORMAT = "bridge_raw"
_MARKERS = ("obs_dict.pkl", "policy_out.pkl", "lang.txt", "images0")
_IM_RE = re.compile(r"^im_(\d+)\.jpg$")


# --------------------------------------------------------------------------- reader


def list_episodes(root: str | os.PathLike, **_options) -> list[str]:
    """Relative paths ('traj_group0/traj3') of every trajectory folder under `root`, sorted.

    A trajectory folder is any directory holding one of obs_dict.pkl, policy_out.pkl,
    lang.txt or images0/ (so a folder with some files missing is still found, and then
    skipped with its reason by `read_episode`).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--input {root}: no such directory (give the folder holding traj_group*/traj*/)")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        names = set(filenames) | set(dirnames)
        if any(m in names for m in _MARKERS):
            found.append(Path(dirpath).relative_to(root).as_posix() or ".")
            dirnames[:] = []  # do not descend into a trajectory
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found, key=_natural_key)


def _natural_key(s: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def _load_pickle(path: Path, what: str) -> Any:
    if not path.is_file():
        raise EpisodeError(f"{path}: missing {what}")
    try:
        return load_restricted(path)
    except ForbiddenGlobalError as e:  # a pickle that would run code (or hold foreign objects)
        raise EpisodeError(
            f"{path}: refused {what}: it calls '{e.name}', which Bridge raw data never holds "
            "(only dicts, lists, numbers, strings and numpy arrays are loaded; a pickle may run code)"
        ) from None
    except Exception as e:  # truncated, not a pickle
        raise EpisodeError(f"{path}: unreadable {what} ({type(e).__name__}: {str(e)[:80]})") from None


def _read_lang(path: Path) -> str:
    """lang.txt as text: UTF-8 (a leading BOM is allowed), no control characters but line breaks."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise EpisodeError(f"{path}: not valid UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); "
                           "re-save it as UTF-8") from None
    return check_text(text, str(path))


def read_jpeg(path: Path) -> np.ndarray:
    """Decode one JPEG to (H, W, 3) uint8 RGB; EpisodeError if it is missing, truncated or corrupt."""
    try:
        data = path.read_bytes()
    except OSError:
        raise EpisodeError(f"{path}: missing image") from None
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise EpisodeError(f"{path}: corrupt or truncated JPEG")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EpisodeError(f"{path}: corrupt JPEG (cannot be decoded)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_episode(root: str | os.PathLike, ref: str, drop_idle_first_step: bool = True, **_options) -> Episode:
    """Read one trajectory folder `root/ref`. Raises EpisodeError (one line) if it is unusable.

    Images are decoded on access (a missing or corrupt frame raises EpisodeError then);
    the frame files are checked to exist here. With `drop_idle_first_step`, Bridge's
    all-zero first action is dropped (see `Episode.drop_idle_first_step`).
    """
    d = Path(root) / ref
    obs = _load_pickle(d / "obs_dict.pkl", "obs_dict.pkl")
    if not isinstance(obs, dict):
        raise EpisodeError(f"{d / 'obs_dict.pkl'}: expected a dict, found {type(obs).__name__}")
    key = next((k for k in ("full_state", "state") if k in obs and np.ndim(obs[k]) == 2 and np.shape(obs[k])[1] == STATE_DIM), None)
    if key is None:
        raise EpisodeError(f"{d / 'obs_dict.pkl'}: no 'full_state' or 'state' of shape (T+1, 7); keys are {sorted(map(str, obs))[:8]}")
    try:
        states = np.asarray(obs[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise EpisodeError(f"{d / 'obs_dict.pkl'}: '{key}' is not numeric") from None

    pol = _load_pickle(d / "policy_out.pkl", "policy_out.pkl")
    try:
        actions = np.asarray([p["actions"] for p in pol], dtype=np.float64).reshape(len(pol), -1) if len(pol) else np.zeros((0, STATE_DIM))
    except (TypeError, KeyError, IndexError, ValueError):
        raise EpisodeError(f"{d / 'policy_out.pkl'}: expected a list of dicts with 'actions' (7 numbers each)") from None
    if actions.shape[1:] != (STATE_DIM,) and len(actions):
        raise EpisodeError(f"{d / 'policy_out.pkl'}: actions have {actions.shape[1]} numbers, expected 7")
    if len(actions) == len(states):  # some recordings log one action past the last state
        actions = actions[:-1]

    lang = d / "lang.txt"
    if not lang.is_file():
        raise EpisodeError(f"{lang}: missing (no language annotation)")
    lines = [ln.strip() for ln in _read_lang(lang).splitlines()]
    texts = [ln for ln in lines if ln and "confidence" not in ln.lower()]
    meta_lines = [ln for ln in lines if "confidence" in ln.lower()]

    img_dir = d / "images0"
    frames = sorted(int(m.group(1)) for f in (os.listdir(img_dir) if img_dir.is_dir() else ()) if (m := _IM_RE.match(f)))
    n = len(states)
    if frames[:n] != list(range(min(n, len(frames)))) or len(frames) < n:
        missing = next((t for t in range(n) if t not in set(frames)), n)
        raise EpisodeError(f"{img_dir}: missing image im_{missing}.jpg ({len(frames)} frames for {n} states)")
    paths = [img_dir / f"im_{t}.jpg" for t in range(n)]
    images = LazyImages(n, lambda i: read_jpeg(paths[i]), raw=lambda i: paths[i].read_bytes())

    agent: dict[str, Any] = {}
    if (d / "agent_data.pkl").is_file():
        a = _load_pickle(d / "agent_data.pkl", "agent_data.pkl")
        agent = a if isinstance(a, dict) else {}
    meta = {"source": str(d), "format": FORMAT, "state_key": key, "lang_metadata": meta_lines,
            "alt_instructions": texts[1:], "agent_data_keys": sorted(map(str, agent))}
    ep = Episode(texts[0] if texts else "", images, states, actions, meta).validate(str(d))
    return ep.drop_idle_first_step() if drop_idle_first_step else ep


# --------------------------------------------------------------------------- writer


def write_episode(
    out_dir: str | os.PathLike,
    episode: Episode,
    *,
    jpeg_quality: int = 95,
    agent_data: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `episode` as one Bridge raw trajectory folder at `out_dir` (e.g. root/traj_group0/traj7).

    Writes obs_dict.pkl ('state' and 'full_state', both (T+1, 7) float64), policy_out.pkl
    (list of T dicts {'actions': (7,) float64}), agent_data.pkl (`agent_data` merged over
    {'traj_ok': True, 'metadata': episode.metadata}), lang.txt (instruction on the first
    line, then metadata['alt_instructions'], then 'confidence: 1') and images0/im_{t}.jpg
    for t = 0..T (RGB input, JPEG at `jpeg_quality`).

    Atomic: everything goes to a hidden sibling folder first and is renamed into place,
    so a crash never leaves a half-written trajectory. An existing `out_dir` raises
    FileExistsError unless `overwrite`. Returns `out_dir` as a Path.
    """
    out = Path(out_dir)
    states = np.asarray(episode.states, dtype=np.float64)
    actions = np.asarray(episode.actions, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != STATE_DIM or actions.shape != (len(states) - 1, STATE_DIM):
        raise ValueError(f"write_episode: states must be (T+1, 7) and actions (T, 7); got {states.shape} and {actions.shape}")
    if len(episode.images) != len(states):
        raise ValueError(f"write_episode: need T+1 = {len(states)} images, got {len(episode.images)}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"write_episode: {out} already exists (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images0").mkdir(parents=True)
    try:
        for t, img in enumerate(episode.images):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"write_episode: image {t} must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            if not ok:
                raise ValueError(f"write_episode: image {t} could not be encoded as JPEG")
            (tmp / "images0" / f"im_{t}.jpg").write_bytes(buf.tobytes())
        with open(tmp / "obs_dict.pkl", "wb") as f:
            pickle.dump({"state": states, "full_state": states.copy()}, f)
        with open(tmp / "policy_out.pkl", "wb") as f:
            pickle.dump([{"actions": a.copy()} for a in actions], f)
        with open(tmp / "agent_data.pkl", "wb") as f:
            pickle.dump({"traj_ok": True, "metadata": dict(episode.metadata), **(agent_data or {})}, f)
        alt = [str(s) for s in episode.metadata.get("alt_instructions", [])]
        (tmp / "lang.txt").write_text("\n".join([" ".join(episode.instruction.split()), *alt, "confidence: 1"]) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
