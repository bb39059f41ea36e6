"""Training speed and memory: LoRA vs a full finetune of the same tiny Gemma 3, and LoRA on 1 vs 2 processes, in one run.

    .venv/bin/python benchmarks/train.py [--steps 20] [--threads 1]

Builds the tiny model (python -m training.tiny) and a small D_lan, then runs
`training.finetune` (TRL SFTTrainer, the real code path) three times -- LoRA with the default
targets, every weight trainable, and LoRA on two processes (`torchrun --nproc-per-node 2`,
gloo on a CPU; the same effective batch, so half the accumulation steps per process) -- each
in its own subprocess(es) so that peak memory is its own. Reports tokens/s (non-padding tokens
TRL counted over all processes / train runtime) and the peak resident memory of the training
phase (ru_maxrss after training minus before it; rank 0's for two processes), as JSON.
The two layouts draw LoRA dropout differently, so their losses agree only closely, not exactly
(tests/test_finetune_multiprocess.py checks equality with dropout off).
On a GPU the same command reports torch.cuda.max_memory_allocated instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worker(mode: str, base: str, data: str, out: str, steps: int, threads: int) -> dict:
    import torch

    from training.finetune import FinetuneConfig, finetune, prepare

    torch.set_num_threads(threads)
    cfg = FinetuneConfig(
        base=base, data=data, out=out, max_steps=steps, eval_fraction=0.0, save_steps=10_000,
        full_finetune=(mode == "full"), learning_rate=1e-4 if mode == "full" else 5e-5,
    )
    run = prepare(cfg)
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = finetune(run)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    logs = run.trainer.state.log_history
    tokens = max(h.get("num_tokens", 0) for h in logs)
    runtime = next(h["train_runtime"] for h in logs if "train_runtime" in h)
    return {
        "mode": mode,
        "device": "cuda" if on_gpu else "cpu",
        "processes": s["world_size"],
        "threads": threads,
        "steps": s["global_step"],
        "effective_batch": cfg.batch_size,
        "gradient_accumulation_steps": s["gradient_accumulation_steps"],
        "trainable_parameters": s["trainable_parameters"],
        "total_parameters": s["total_parameters"],
        "tokens": int(tokens),
        "train_seconds": round(runtime, 2),
        "tokens_per_s": round(tokens / runtime, 1),
        "peak_train_memory_mib": round(
            torch.cuda.max_memory_allocated() / 2**20 if on_gpu else max(0, rss_after - rss_before) / 1024, 1
        ),
        "peak_process_rss_mib": round(rss_after / 1024, 1),
        "first_loss": s["losses"][0]["loss"],
        "last_loss": s["losses"][-1]["loss"],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for the tiny model)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--base", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        result = _worker(args.worker, args.base, args.data, args.out, args.steps, args.threads)
        if int(os.environ.get("RANK", "0")) == 0:
            print("RESULT " + json.dumps(result))
        return 0

    from tests.dlan_helpers import make_dlan
    from training.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny(Path(tmp) / "tiny")
        data = make_dlan(Path(tmp) / "dlan", episodes=8, steps=3)
        results = {}
        torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc-per-node", "2", "--master-port", str(_free_port())]
        for name, mode, launcher in (("lora", "lora", [sys.executable]), ("full", "full", [sys.executable]),
                                     ("lora_2_processes", "lora", torchrun)):
            cmd = [*launcher, __file__, "--worker", mode, "--base", str(base), "--data", str(data),
                   "--out", str(Path(tmp) / name), "--steps", str(args.steps), "--threads", str(args.threads)]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
            p = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if p.returncode or line is None:
                print(p.stderr[-3000:], file=sys.stderr)
                return 1
            results[name] = json.loads(line[len("RESULT "):])
    results["lora_vs_full"] = {
        "tokens_per_s_ratio": round(results["lora"]["tokens_per_s"] / results["full"]["tokens_per_s"], 2),
        "trainable_fraction": round(results["lora"]["trainable_parameters"] / results["full"]["trainable_parameters"], 4),
    }
    one, two = results["lora"], results["lora_2_processes"]
    results["2_vs_1_processes"] = {
        "tokens_per_s_ratio": round(two["tokens_per_s"] / one["tokens_per_s"], 2),
        "same_tokens": two["tokens"] == one["tokens"],
        "last_loss_difference": abs(two["last_loss"] - one["last_loss"]),
        "cpu_cores": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps({"benchmark": "train", "model": "tiny Gemma 3 (training.tiny)", **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
