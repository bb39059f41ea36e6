"""Verbalize throughput vs the bare read cost, and peak memory vs the number of episodes.

    .venv/bin/python benchmarks/verbalize.py [--episodes 120] [--workers 2]

Writes Bridge raw episodes of 40 steps with 256x256 JPEG frames (textured, ~Bridge-sized
files), then in the same run measures with the same number of worker processes:
  read      reading every episode (pickles, lang.txt) and decoding every frame — what any
            consumer of the reader pays;
  pipeline  `training.verbalize.run` with the rules labeler: read + decode + segment + label +
            verbalize + faithfulness check + image copy + fsync'd append;
and the peak RSS (parent and largest worker) of the pipeline as a subprocess over a small
and a large number of episodes. Prints JSON; the goal is pipeline within 1.5x of read.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.formats import Reader  # noqa: E402
from training.formats.bridge_raw import write_episode  # noqa: E402
from training.formats.episode import Episode, synthetic_episode  # noqa: E402
from training.verbalize import Job, run  # noqa: E402

STEPS, SIZE = 40, 256


def make_data(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(-24, 24, (SIZE, SIZE, 3))
    for i in range(n):
        ep = synthetic_episode(i, steps=STEPS, image_size=SIZE)
        imgs = [np.clip(im.astype(int) + np.roll(texture, i * 7, axis=1), 0, 255).astype(np.uint8) for im in ep.images]
        write_episode(root / f"traj_group{i // 100}" / f"traj{i % 100}", Episode(ep.instruction, imgs, ep.states, ep.actions, ep.metadata))


def _read_one(args: tuple[Reader, str]) -> int:
    reader, ref = args
    ep = reader.read(ref)
    return sum(int(ep.images[i].shape[0]) for i in range(len(ep.images)))


def bare_read(reader: Reader, refs: list[str], workers: int) -> float:
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
        list(ex.map(_read_one, [(reader, r) for r in refs], chunksize=1))
    return time.perf_counter() - t0


def measure_memory(data: Path, n: int, workers: int) -> dict:
    """Run the pipeline in a fresh process over n episodes; its peak RSS and its largest worker's."""
    with tempfile.TemporaryDirectory() as out:
        code = (
            "import json, resource, sys; sys.path.insert(0, %r)\n"
            "from training.formats import Reader\nfrom training.verbalize import Job, run\n"
            "run(Job(reader=Reader('bridge_raw', %r), out=%r), workers=%d, limit=%d, progress=False)\n"
            "print(json.dumps({'self_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " 'worker_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
        ) % (str(ROOT), str(data), out + "/d", workers, n)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        m = json.loads(r.stdout.strip().splitlines()[-1])
    return {"episodes": n, "peak_rss_mb": round(m["self_kb"] / 1024, 1), "peak_worker_rss_mb": round(m["worker_kb"] / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bridge"
        t0 = time.perf_counter()
        make_data(data, a.episodes)
        make_s = time.perf_counter() - t0
        reader = Reader("bridge_raw", str(data))
        refs = reader.refs()
        jpeg_kb = np.mean([p.stat().st_size for p in (data / "traj_group0" / "traj0" / "images0").iterdir()]) / 1024
        bare_read(reader, refs[: 2 * a.workers], a.workers)  # warm the page cache and imports
        read_s = bare_read(reader, refs, a.workers)
        t0 = time.perf_counter()
        s = run(Job(reader=reader, out=str(Path(tmp) / "dlan")), workers=a.workers, progress=False)
        pipe_s = time.perf_counter() - t0
        read_again_s = bare_read(reader, refs, a.workers)  # read cost measured on both sides of the pipeline run
        read_s = min(read_s, read_again_s)
        mem = [measure_memory(data, n, a.workers) for n in (max(10, a.episodes // 4), a.episodes)]
    result = {
        "benchmark": "verbalize",
        "episodes": a.episodes,
        "steps_per_episode": STEPS,
        "image": f"{SIZE}x{SIZE} JPEG, mean {jpeg_kb:.1f} KiB",
        "workers": a.workers,
        "records": s["records"],
        "read_episodes_per_s": round(a.episodes / read_s, 1),
        "pipeline_episodes_per_s": round(a.episodes / pipe_s, 1),
        "pipeline_over_read": round(pipe_s / read_s, 2),
        "goal_pipeline_over_read": 1.5,
        "memory": mem,
        "peak_rss_growth": round(mem[1]["peak_rss_mb"] / mem[0]["peak_rss_mb"], 3),
        "fixture_write_s": round(make_s, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
