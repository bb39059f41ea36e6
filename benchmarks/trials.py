"""Evaluation throughput: Fig. 5 trials per minute (scripted expert, 256x256 sim, episode logs on)
with 1 worker and with 2 worker processes, in one run, on the same trial set. Prints JSON.

    .venv/bin/python benchmarks/trials.py [--trials 4] [--rows pick_up,pick_up_semantic]

Each setting is `python -m evaluation.trials` in-process on a fresh results folder, timed
wall-clock from the call to the table (so the 2-worker figure pays for starting its processes,
as a user does). The baseline is the 1-worker run; `speedup` = rate(2) / rate(1). With N cores
free, 2 workers should approach 2x; on a shared machine the load average says how many were.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.trials import main as trials  # noqa: E402


def run(workers: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-trials-") as out:
        argv = ["--suite", "fig5", "--rows", args.rows, "--policy", "scripted", "--trials", str(args.trials),
                "--out", out, "--workers", str(workers), "--quiet"]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = trials(argv)
        secs = time.perf_counter() - t0
        n = len(list(Path(out).glob("trials/*/*/*.json")))
        ok = sum(json.loads(p.read_text())["success"] for p in Path(out).glob("trials/*/*/*.json"))
    if rc != 0:
        raise SystemExit(f"evaluation.trials exited {rc} with {workers} worker(s)")
    return {"workers": workers, "trials": n, "successes": ok, "seconds": round(secs, 1),
            "trials_per_min": round(60.0 * n / secs, 2), "load_average_1min_before": round(load0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=4, help="trials per row and language (default 4)")
    ap.add_argument("--rows", default="pick_up,pick_up_semantic", help="fig5 rows to run (default pick_up,pick_up_semantic)")
    args = ap.parse_args()
    one = run(1, args)
    two = run(2, args)
    print(json.dumps({
        "benchmark": "trials",
        "cpu_count": os.cpu_count(),
        "rows": args.rows,
        "one_worker": one,
        "two_workers": two,
        "speedup_2_vs_1": round(two["trials_per_min"] / one["trials_per_min"], 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
