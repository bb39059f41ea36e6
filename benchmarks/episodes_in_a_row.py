"""Episodes in a row as a person types them on the page (issue 13's before -> after figure).

Through the demo's own Runtime (simulated arm paced at 5 Hz, scripted policy streaming at its page
speed, sim validator): Reset scene (a random seed, as the button), then "pick up the banana",
"pick up the eggplant", "put the carrot on the plate" on the same table; `--rounds` times. Prints
each episode and then one JSON object with the failures.

    .venv/bin/python benchmarks/episodes_in_a_row.py --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

SEQUENCE = ("pick up the banana", "pick up the eggplant", "put the carrot on the plate")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args(argv)

    from app.build import build_runtime
    from app.config import from_args
    from app.runtime import wait_until

    cfg = from_args(["--policy", "scripted", "--logs", tempfile.mkdtemp()], env={})
    rt = build_runtime(cfg, camera_fps=10).start_camera()
    fails, n, t0 = [], 0, time.perf_counter()
    try:
        for _ in range(a.rounds):
            seed = rt.reset("bench")
            for instruction in SEQUENCE:
                rt.start(instruction, "bench")
                if not wait_until(lambda: not rt.running, 600):
                    raise SystemExit(f"{instruction!r} did not end in 10 minutes")
                view, n = rt.snapshot(), n + 1
                if not view.success:
                    fails.append({"seed": seed, "instruction": instruction, "reason": view.reason})
                print(f"seed {seed}: {instruction!r}: {'ok' if view.success else 'FAILED: ' + view.reason}", flush=True)
    finally:
        rt.close()
    result = {"episodes": n, "failed": len(fails), "fails": fails, "seconds": round(time.perf_counter() - t0)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
