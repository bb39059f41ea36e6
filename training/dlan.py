"""D_lan: the verbalized dataset — records, the folder writer, the card, and the chat samples.

Folder layout (loads with `datasets.load_dataset("json", data_files="DIR/data.jsonl")`):

    data.jsonl        one record per step (see RECORD_FIELDS), episodes in input order
    images/<slug>/<k>.jpg   the image at the start of step k; k = num_steps is the final frame
    progress.jsonl    one line per finished input episode (ok or skipped + reason); drives --resume
    config.json       the run's settings (a --resume must match them)
    README.md         the card: statistics, skipped episodes and why, an example record

A step is one subtask segment of an episode. Record fields:

    episode       the episode's id (its path relative to the input, or LeRobot "episode_000012")
    step          0 .. num_steps-1
    num_steps     number of steps (subtasks) in the episode
    image         relative path of the image at the step's start ("images/<slug>/<step>.jpg")
    instruction   the task
    subtasks      all subtask phrases of the episode, in order
    subtask       subtasks[step]
    plan          direction-only motion plan (policy.language.plan_phrase wording)
    actions       the action block text, computed from the numbers by policy.language.verbalize_actions
    state         [x, y, z] end-effector position at the step start, metres
    displacement  [dx, dy, dz] true net end-effector displacement of the step, metres

Faithfulness (checked for every record before it is written, `record_problems`): the
parsed action block sums to `displacement` within 0.05 cm per axis (within the chunking's
`min_move` when moves shorter than it are carried, `faithful_tol`), and the plan's
direction words agree with it (`policy.language.plan_agrees`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from policy.language import ChunkingParams, block_displacement, get_codec, parse_actions, plan_agrees, verbalize_actions
from policy.prompts import (
    action_prompt,
    chat_sample,
    format_plan_actions,
    format_subtasks,
    format_verdict,
    subtasks_prompt,
    validator_prompt,
)
from training.formats.episode import Episode, EpisodeError
from training.labelers.base import Labeling

__all__ = [
    "RECORD_FIELDS",
    "FAITHFUL_TOL",
    "faithful_tol",
    "episode_slug",
    "build_records",
    "record_problems",
    "check_labeling",
    "write_step_images",
    "end_image",
    "iter_records",
    "read_records",
    "DlanError",
    "SAMPLE_FIELDS",
    "chat_samples",
    "DlanWriter",
    "dlan_stats",
    "write_card",
]

RECORD_FIELDS = ("episode", "step", "num_steps", "image", "instruction", "subtasks", "subtask", "plan", "actions", "state", "displacement")
#: What a training sample is made from (chat_samples): a record read back without one of these is refused.
SAMPLE_FIELDS = ("episode", "step", "image", "instruction", "subtasks", "subtask", "plan", "actions")
FAITHFUL_TOL = 0.0005 + 1e-9  # metres: half a rounding unit (0.05 cm) per axis
MAX_STEP_JUMP = 0.25  # metres in one 5 Hz step: anything larger is a broken state stream, not motion


def faithful_tol(min_move: float = 0.0) -> float:
    """How far (metres, per axis) a block may sum from the true displacement: half a rounding unit,
    or what is left unwritten when moves under `min_move` are carried (ChunkingParams.min_move)."""
    return max(FAITHFUL_TOL, min_move + 1e-9)


def episode_slug(ref: str) -> str:
    """A folder name for an episode id ('traj_group0/traj3' -> 'traj_group0__traj3')."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref.strip("/").replace("/", "__")) or "episode"
    return s.lstrip(".") or "episode"


def check_labeling(labeling: Labeling, num_steps: int) -> str | None:
    """None if the segments cover [0, num_steps) in order with one non-empty phrase each, else why not."""
    segs = labeling.segments
    if not segs:
        return "no segments"
    pos = 0
    for i, s in enumerate(segs):
        if s.start != pos:
            return f"segment {i} starts at step {s.start}, expected {pos} (boundaries must be contiguous and increasing)"
        if s.end <= s.start:
            return f"segment {i} is empty or reversed ({s.start}..{s.end})"
        if not str(s.subtask).strip() or not str(s.plan).strip():
            return f"segment {i} has an empty subtask or plan"
        pos = s.end
    if pos != num_steps:
        return f"segments end at step {pos}, the episode has {num_steps}"
    return None


def build_records(
    ep: Episode, labeling: Labeling, ref: str, chunking: ChunkingParams = ChunkingParams()
) -> list[dict[str, Any]]:
    """The D_lan records of one episode (action text always from the numbers, never from a labeler)."""
    T = ep.num_steps
    if (why := check_labeling(labeling, T)) is not None:
        raise EpisodeError(f"{ref}: labeling is invalid: {why}")
    deltas = ep.achieved_deltas()
    big = np.abs(deltas).max(axis=1) > MAX_STEP_JUMP
    if big.any():
        t = int(np.argmax(big))
        raise EpisodeError(f"{ref}: the end effector jumps {np.abs(deltas[t]).max() * 100:.0f} cm in step {t} (broken state stream)")
    grip, grip0, _ = ep.gripper_signal()
    slug = episode_slug(ref)
    subtasks = [" ".join(s.subtask.split()) for s in labeling.segments]
    n = len(labeling.segments)
    records = []
    for k, seg in enumerate(labeling.segments):
        a, b = seg.start, seg.end
        before = grip0 if a == 0 else grip[a - 1]  # the gripper in force when the step starts
        actions = verbalize_actions(deltas[a:b], grip[a:b], chunking, initial_gripper=float(before))
        records.append(
            {
                "episode": ref,
                "step": k,
                "num_steps": n,
                "image": f"images/{slug}/{k}.jpg",
                "instruction": " ".join(ep.instruction.split()),
                "subtasks": subtasks,
                "subtask": subtasks[k],
                "plan": " ".join(seg.plan.split()),
                "actions": actions,
                "state": [float(v) for v in ep.states[a, :3]],
                "displacement": [float(v) for v in ep.states[b, :3] - ep.states[a, :3]],
            }
        )
    return records


def record_problems(record: dict[str, Any], tol: float = FAITHFUL_TOL) -> list[str]:
    """Faithfulness problems of one record (empty list = faithful)."""
    problems = []
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        return [f"missing fields {missing}"]
    disp = np.asarray(record["displacement"], dtype=float)
    try:
        total = block_displacement(parse_actions(record["actions"]))
    except ValueError as e:
        return [f"actions do not parse: {e}"]
    err = np.abs(total - disp)
    if np.any(err > tol):
        problems.append(f"actions sum to {np.round(total * 100, 2).tolist()} cm, displacement is {np.round(disp * 100, 2).tolist()} cm")
    if not plan_agrees(record["plan"], disp):
        problems.append(f"plan {record['plan']!r} disagrees with displacement {np.round(disp * 100, 1).tolist()} cm")
    if record["subtasks"][record["step"]] != record["subtask"]:
        problems.append("subtask is not subtasks[step]")
    return problems


# --------------------------------------------------------------------------- images


def write_step_images(out_dir: str | os.PathLike, ep: Episode, ref: str, starts: Sequence[int], quality: int = 95) -> None:
    """images/<slug>/<k>.jpg = the frame at state index starts[k]; pass the final index last (num_steps).

    Copies the source JPEG bytes when the reader offers them, else encodes. Each file is
    written to a temporary name and renamed, so a crash never leaves a torn image.
    """
    import cv2

    d = Path(out_dir) / "images" / episode_slug(ref)
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.iterdir():  # left by a run killed while writing this episode, or a longer earlier labeling
        if stale.name.startswith(".") or (stale.suffix == ".jpg" and stale.stem.isdigit() and int(stale.stem) >= len(starts)):
            stale.unlink(missing_ok=True)
    raw = getattr(ep.images, "raw", None)
    for k, t in enumerate(starts):
        if raw is not None:
            data = raw(t)
        else:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(ep.images[t]), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise EpisodeError(f"{ref}: frame {t} could not be encoded as JPEG")
            data = buf.tobytes()
        tmp = d / f".{k}.jpg.tmp{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, d / f"{k}.jpg")


def end_image(record: dict[str, Any]) -> str:
    """Relative path of the image at the step's end: the next step's image, or the final frame."""
    head, _, _ = record["image"].rpartition("/")
    return f"{head}/{int(record['step']) + 1}.jpg"


# --------------------------------------------------------------------------- reading D_lan


class DlanError(ValueError):
    """A D_lan folder that cannot be read back; the message names the file (and line) and the fix."""


def iter_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Records of a D_lan folder (or a data.jsonl file), streamed; a line that is not JSON or lacks
    one of SAMPLE_FIELDS raises DlanError naming the file and line."""
    p = Path(path)
    f = p / "data.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no D_lan data.jsonl here (write one with python -m training.verbalize)")
    with open(f, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise DlanError(f"{f}:{n}: not valid JSON ({e.msg})") from None
            missing = [k for k in SAMPLE_FIELDS if not isinstance(r, dict) or k not in r]
            if missing:
                raise DlanError(f"{f}:{n}: missing field(s) {', '.join(missing)}")
            yield r


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a D_lan folder (image paths stay relative to it), for training: the folder,
    its data.jsonl, at least one record and the first record's image must exist (DlanError otherwise)."""
    root = Path(path)
    if not root.is_dir():
        raise DlanError(f"D_lan folder {root} does not exist; build one with python -m training.verbalize")
    if not (root / "data.jsonl").is_file():
        raise DlanError(f"{root} has no data.jsonl; point at a D_lan folder written by python -m training.verbalize")
    records = list(iter_records(root))
    if not records:
        raise DlanError(f"{root / 'data.jsonl'} is empty")
    first = root / records[0]["image"]
    if not first.exists():
        raise DlanError(f"{root / 'data.jsonl'}: image {first} does not exist")
    return records


def chat_samples(
    source: str | os.PathLike | dict[str, Any] | Iterable[dict[str, Any]],
    *,
    codec: Any = None,
    root: str | os.PathLike | None = None,
    kinds: Sequence[str] = ("subtasks", "actions", "validator"),
    load_image: Callable[[str], Any] | None = None,
    with_meta: bool = False,
) -> Iterator[dict[str, Any]]:
    """The chat-format training samples of D_lan records, built only through policy.prompts.

    source      a D_lan folder, one record, or an iterable of records
    codec       an ActionCodec (policy.language.get_codec(...)) or a codec name; default "verbalized".
                The canonical action text is passed through `codec.encode`.
    root        the D_lan folder the records' image paths are relative to (defaults to `source`
                when it is a folder; else paths stay relative)
    kinds       which samples to make:
                  "subtasks"  at step 0: subtasks_prompt(instruction) -> format_subtasks(subtasks)
                  "actions"   every step: action_prompt(instruction, subtasks, step, ee=state) -> format_plan_actions(plan, actions)
                  "validator" every step: validator_prompt(subtask) with the image at the step's end -> "yes: ..."
                              and with the image at its start -> "no: ..."
    load_image  maps an image path to what the sample should hold (e.g. PIL.Image.open);
                default: the path as a string
    with_meta   add "kind", "episode" and "step" keys to each sample

    Yields dicts {"messages": [user, assistant], "images": [image]} (policy.prompts.chat_sample).
    """
    if codec is None or isinstance(codec, str):
        codec = get_codec(codec or "verbalized")
    if isinstance(source, dict):
        records: Iterable[dict[str, Any]] = [source]
    elif isinstance(source, (str, os.PathLike)):
        root = source if root is None else root
        records = iter_records(source)
    else:
        records = source
    base = Path(root) if root is not None else None
    load = load_image or (lambda p: p)

    def image(rel: str) -> Any:
        return load(str(base / rel) if base is not None else rel)

    def emit(kind: str, r: dict, sample: dict) -> dict:
        if with_meta:
            sample.update(kind=kind, episode=r["episode"], step=r["step"])
        return sample

    for r in records:
        if "subtasks" in kinds and r["step"] == 0:
            yield emit("subtasks", r, chat_sample(subtasks_prompt(r["instruction"]), format_subtasks(r["subtasks"]), image(r["image"])))
        if "actions" in kinds:
            answer = format_plan_actions(r["plan"], codec.encode(r["actions"]))
            prompt = action_prompt(r["instruction"], r["subtasks"], r["step"], ee=r.get("state"))
            yield emit("actions", r, chat_sample(prompt, answer, image(r["image"])))
        if "validator" in kinds:
            prompt = validator_prompt(r["subtask"])
            yield emit("validator_done", r, chat_sample(prompt, format_verdict(True, f"the arm has finished: {r['subtask']}"), image(end_image(r))))
            yield emit("validator_not_done", r, chat_sample(prompt, format_verdict(False, f"this has not been done yet: {r['subtask']}"), image(r["image"])))


# --------------------------------------------------------------------------- the folder writer


class DlanWriter:
    """Appends each episode's records as one chunk (write + flush + fsync), then its progress line.

    Episodes are added in input order, so the finished episodes are always a prefix and
    `--resume` (drop any torn tail, continue with the rest) yields exactly the bytes of an
    uninterrupted run.
    """

    def __init__(self, out_dir: str | os.PathLike, config: dict[str, Any], resume: bool = False, fsync: bool = True) -> None:
        self.dir = Path(out_dir)
        self.fsync = fsync
        self.data_path, self.progress_path, self.config_path = self.dir / "data.jsonl", self.dir / "progress.jsonl", self.dir / "config.json"
        self.done: dict[str, dict[str, Any]] = {}
        existing = self.progress_path.exists() or self.data_path.exists()
        if existing and not resume:
            raise FileExistsError(f"--out {self.dir} already holds a D_lan; pass --resume to continue it, or choose a new --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        if existing:
            old = json.loads(self.config_path.read_text()) if self.config_path.exists() else None
            if old is not None and old != config:
                diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise ValueError(f"--resume: {self.dir} was written with different settings ({', '.join(diff)}); rerun with the same ones or a new --out")
            self._recover()
        _atomic_write(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
        self._data = open(self.data_path, "ab")
        self._progress = open(self.progress_path, "ab")

    def _recover(self) -> None:
        """Keep the complete progress lines and the data of those episodes; cut any torn tail."""
        good = 0
        if self.progress_path.exists():
            with open(self.progress_path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break
                    self.done[entry["episode"]] = entry
                    good += len(line)
            _truncate(self.progress_path, good)
        ok = {e: v for e, v in self.done.items() if v["status"] == "ok"}
        seen: Counter = Counter()
        good = 0
        if self.data_path.exists():
            with open(self.data_path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        ep = json.loads(line)["episode"]
                    except (ValueError, KeyError):
                        break
                    if ep not in ok or seen[ep] >= ok[ep]["num_steps"]:
                        break
                    seen[ep] += 1
                    good += len(line)
            _truncate(self.data_path, good)
        short = [e for e, v in ok.items() if seen[e] != v["num_steps"]]
        for e in short:  # progress says done but its records are not all there: redo it
            del self.done[e]
        if short:
            self._drop_records(set(short))

    def _drop_records(self, episodes: set[str]) -> None:
        tmp = self.data_path.with_suffix(".jsonl.tmp")
        with open(self.data_path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                if json.loads(line)["episode"] not in episodes:
                    dst.write(line)
        os.replace(tmp, self.data_path)
        tmp = self.progress_path.with_suffix(".jsonl.tmp")
        with open(self.progress_path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                if json.loads(line)["episode"] not in episodes:
                    dst.write(line)
        os.replace(tmp, self.progress_path)

    def _append(self, f, data: bytes) -> None:
        f.write(data)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    def add(self, episode: str, records: list[dict[str, Any]] | None, entry: dict[str, Any]) -> None:
        """Add one finished episode: its records (None when skipped) and its progress entry."""
        if records:
            self._append(self._data, b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records))
        self._append(self._progress, json.dumps({"episode": episode, **entry}, ensure_ascii=False).encode() + b"\n")
        self.done[episode] = {"episode": episode, **entry}

    def close(self) -> None:
        self._data.close()
        self._progress.close()


def _truncate(path: Path, size: int) -> None:
    if path.stat().st_size != size:
        with open(path, "r+b") as f:
            f.truncate(size)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- statistics and card

_MAG_BINS_CM = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, math.inf]


def dlan_stats(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Statistics of a D_lan folder, streamed (memory does not grow with the number of records):
    of its records (data.jsonl) and of how they were made (progress.jsonl)."""
    d = Path(out_dir)
    records = _record_stats(d)
    last = {k: records.pop(k) for k in ("unfaithful_records", "example")}  # these two last, as the card and summary read
    return {**records, **_progress_stats(d), **last}


def _record_stats(d: Path) -> dict[str, Any]:
    """Episodes, records, subtask phrases, commands and their sizes, faithfulness, an example record."""
    steps_per_ep: Counter = Counter()
    vocab: Counter = Counter()
    mags = [0] * (len(_MAG_BINS_CM) - 1)
    n_records = n_commands = n_gripper = unfaithful = 0
    example = None
    config = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
    tol = faithful_tol(config.get("chunking", {}).get("min_move", 0.0))
    for r in iter_records(d):
        n_records += 1
        example = example or r
        if r["step"] == 0:
            steps_per_ep[r["num_steps"]] += 1
        vocab[r["subtask"]] += 1
        if record_problems(r, tol):
            unfaithful += 1
        for step in parse_actions(r["actions"]):
            for c in step:
                if c.gripper:
                    n_gripper += 1
                    continue
                n_commands += 1
                v = max(abs(x) for x in c.delta) * 100
                mags[next(i for i in range(len(mags)) if v < _MAG_BINS_CM[i + 1])] += 1
    return {
        "episodes": sum(steps_per_ep.values()),
        "records": n_records,
        "steps_per_episode": dict(sorted(steps_per_ep.items())),
        "subtask_vocabulary": len(vocab),
        "top_subtasks": vocab.most_common(30),
        "action_commands": n_commands,
        "gripper_commands": n_gripper,
        "action_magnitude_cm": {f"{lo:g}-{hi:g}" if hi != math.inf else f">={lo:g}": n for lo, hi, n in zip(_MAG_BINS_CM, _MAG_BINS_CM[1:], mags)},
        "unfaithful_records": unfaithful,
        "example": example,
    }


def _progress_stats(d: Path) -> dict[str, Any]:
    """Episodes and records per labeler, fallbacks to rules, generic phrasing, labeler calls, skipped episodes."""
    labelers: Counter = Counter()
    records_by_labeler: Counter = Counter()
    skipped, fallbacks, generic = [], [], 0
    calls = Counter()
    if (d / "progress.jsonl").exists():
        for line in open(d / "progress.jsonl", encoding="utf-8"):
            e = json.loads(line)
            if e["status"] == "skipped":
                skipped.append((e["episode"], e["reason"]))
                continue
            labelers[e["labeler"]] += 1
            records_by_labeler[e["labeler"]] += e["num_steps"]
            generic += bool(e.get("generic"))
            if e.get("fallback_reason"):
                fallbacks.append((e["episode"], e["fallback_reason"]))
            for k, v in (e.get("stats") or {}).items():
                calls[k] += v
    return {
        "episodes_by_labeler": dict(labelers),
        "records_by_labeler": dict(records_by_labeler),
        "fallbacks": fallbacks,
        "generic_phrasing": generic,
        "labeler_calls": dict(calls),
        "skipped": skipped,
    }


def write_card(out_dir: str | os.PathLike, stats: dict[str, Any], config: dict[str, Any]) -> Path:
    """README.md: what is in the folder, how it was made, its statistics, and what was skipped."""
    lines = _card_intro(config) + _card_statistics(stats) + _card_provenance(stats)
    path = Path(out_dir) / "README.md"
    _atomic_write(path, "\n".join(lines) + "\n")
    return path


def _card_intro(config: dict[str, Any]) -> list[str]:
    """The card's front matter (the datasets config) and how the folder was made and is loaded."""
    return [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files: data.jsonl",
        "---",
        "",
        "# D_lan: verbalized robot trajectories (VLM2VLA)",
        "",
        f"Made by `python -m training.verbalize` from `{config.get('input')}` (format `{config.get('format')}`, "
        f"labeler `{config.get('labeler')}`). One record per step (subtask segment); the action text is computed "
        "from the achieved end-effector motion by `policy.language`.",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("json", data_files="data.jsonl", split="train")',
        "```",
        "",
    ]


def _card_statistics(s: dict[str, Any]) -> list[str]:
    """The statistics table, steps and labelers, the action magnitude histogram, the common subtasks."""
    return [
        "## Statistics",
        "",
        "| | |",
        "|---|---|",
        f"| episodes | {s['episodes']} |",
        f"| records (steps) | {s['records']} |",
        f"| skipped episodes | {len(s['skipped'])} |",
        f"| subtask vocabulary | {s['subtask_vocabulary']} distinct phrases |",
        f"| move commands / gripper commands | {s['action_commands']} / {s['gripper_commands']} |",
        f"| records failing the faithfulness check | {s['unfaithful_records']} |",
        f"| episodes with generic phrasing (instruction not recognised) | {s['generic_phrasing']} |",
        f"| labeler fallbacks to rules | {len(s['fallbacks'])} |",
        "",
        "Steps per episode: " + (", ".join(f"{k}: {v}" for k, v in s["steps_per_episode"].items()) or "none"),
        "",
        "Episodes / records per labeler: "
        + (", ".join(f"{k}: {v} / {s['records_by_labeler'].get(k, 0)}" for k, v in s["episodes_by_labeler"].items()) or "none"),
        "",
        "### Action magnitude histogram (largest axis per move command, cm)",
        "",
        "| cm | commands |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in s["action_magnitude_cm"].items()],
        "",
        "### Most common subtasks",
        "",
        *[f"- {n} × {t}" for t, n in s["top_subtasks"]],
        "",
    ]


def _card_provenance(s: dict[str, Any]) -> list[str]:
    """Labeler calls and fallbacks, the skipped episodes with their reasons, an example record."""
    lines: list[str] = []
    if s["labeler_calls"]:
        lines += ["### Labeler calls", "", *[f"- {k}: {v:g}" for k, v in s["labeler_calls"].items()], ""]
    if s["fallbacks"]:
        lines += ["### Labeler fallbacks (rules used instead)", "", *[f"- `{e}`: {r}" for e, r in s["fallbacks"][:500]], ""]
    lines += ["## Skipped episodes", ""]
    lines += [f"- `{e}`: {r}" for e, r in s["skipped"][:1000]] or ["None."]
    if len(s["skipped"]) > 1000:
        lines.append(f"- ... and {len(s['skipped']) - 1000} more (see progress.jsonl)")
    if s["example"]:
        lines += ["", "## Example record", "", "```json", json.dumps(s["example"], indent=1, ensure_ascii=False), "```"]
    return lines
