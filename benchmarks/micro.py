"""The micro model's costs: training speed and memory per stage, and policy cycle latency.

1. Training (toy scale, so the benchmark runs in minutes; `--scale micro` for the real one):
   each stage of `python -m training.micro` in its own process, with its wall time, peak
   memory (max RSS of the process) and the training tokens/s it reports.
2. Policy cycles: one closed-loop sim episode per backend on the same scene, the micro model
   (`assets/micro` or --model/--adapter) and the scripted expert as the baseline in the same
   run: stage-2 prefill and decode seconds, tokens per cycle, seconds per cycle.

    python benchmarks/micro.py                          # toy-scale training + shipped model cycles
    python benchmarks/micro.py --skip-training --model assets/micro/base --adapter assets/micro/lora

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def stage_costs(scale: str, threads: int) -> dict:
    """Run each recipe stage in a child process; wall time, peak RSS and tokens/s per stage."""
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("world", "base", "data", "finetune"):
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "training.micro", stage, "--out", tmp, "--scale", scale, "--quiet",
                   "--threads", str(threads)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-2000:]}")
            # ru_maxrss of the children waited for so far: the largest, i.e. this stage's when it is the largest
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            out[stage] = {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb_so_far": round(peak_mb)}
        pre = json.loads((Path(tmp) / "base" / "pretrain.json").read_text())
        out["base"]["tokens_per_s"] = pre["tokens_per_s"]
        out["base"]["parameters"] = pre["parameters"]
        summary = Path(tmp) / "lora" / "training_config.json"
        if summary.exists():
            s = json.loads(summary.read_text())
            out["finetune"]["train_seconds"] = s.get("seconds")
            out["finetune"]["steps"] = s.get("global_step")
    return out


def cycle_latency(backend, seed: int = 1_000_007) -> dict:
    from policy.events import EpisodeDone
    from policy.loop import ClosedLoop, LoopConfig
    from policy.sim_episode import sim_episode
    from robot.sim.robot import SimRobot
    from robot.sim.tasks import make_task

    task = make_task("pick_up", seed=seed)
    sim = SimRobot(seed=seed, task=task)
    ep = sim_episode(sim, task, seed=seed, backend=backend)
    t0 = time.perf_counter()
    events = list(ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(max_retries=1)).run(task.instruction(), seed=seed))
    wall = time.perf_counter() - t0
    done = next(e for e in reversed(events) if isinstance(e, EpisodeDone))
    cycles = max(1, sum(type(e).__name__ == "ActionsProposed" for e in events))
    t = done.timings
    sim.disconnect()
    return {
        "success": done.success, "cycles": cycles, "seconds_per_cycle": round(wall / cycles, 3),
        "prefill_s_per_cycle": round(t.get("prefill_s", 0.0) / cycles, 4),
        "decode_s_per_cycle": round(t.get("decode_s", 0.0) / cycles, 4),
        "tokens_per_cycle": round(t.get("tokens", 0) / cycles, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="toy", help="training.micro scale for the training figures (default toy)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--model", default=str(ROOT / "assets" / "micro" / "base"))
    ap.add_argument("--adapter", default=str(ROOT / "assets" / "micro" / "lora"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    result: dict = {"threads": a.threads}
    if not a.skip_training:
        result["training"] = stage_costs(a.scale, a.threads)
    from policy.backends import make_backend

    result["cycles"] = {"scripted": cycle_latency(None)}
    if Path(a.model).exists():
        backend = make_backend("hf", model=a.model, adapter=a.adapter if Path(a.adapter).exists() else None)
        result["cycles"]["micro"] = cycle_latency(backend)
    else:
        result["cycles"]["micro"] = f"no model at {a.model}: build it with python -m training.micro all --out micro/"
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
