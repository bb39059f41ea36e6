"""training.finetune on two CPU processes (gloo): the same losses as one process, one writer, resume, exit codes.

Each launch starts two real `python -m training.finetune` processes on the tiny Gemma 3, one torch
thread each. One process with per-device batch 1 x accumulation 4 and two processes with 1 x 2 x 2
see the same samples per optimizer step (accelerate shards the seeded sampler's batches round-robin),
and the loss is normalised by the token count of the whole step across processes, so losses and
weights agree up to float summation order: TOLERANCE below (measured: losses bit-identical, adapter
weights within 1e-8).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from policy.model import load_model
from tests.dlan_helpers import make_dlan
from training.finetune import FinetuneConfig, finetune, main

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TOLERANCE = 1e-5  # absolute, on losses and adapter weights (|weights| ~ 0.1 after 4 steps at lr 2e-3)
# One optimizer step = 4 samples; constant lr, no dropout and no held-out split, so a run cut in two
# and resumed must retrace the straight one.
RUN = dict(batch_size=4, max_steps=4, learning_rate=2e-3, lr_scheduler="constant", lora_dropout=0.0,
           eval_fraction=0.0, save_steps=1000, seed=0)


@pytest.fixture(scope="module")
def dlan(tmp_path_factory):
    return make_dlan(tmp_path_factory.mktemp("dlan") / "d", episodes=6, steps=3)


def _flags(tiny, dlan, out, **over) -> list[str]:
    kw = {**RUN, **over}
    flags = ["--base", str(tiny), "--data", str(dlan), "--out", str(out), "--cpu-threads", "1"]
    for k, v in kw.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    return flags


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONFAULTHANDLER": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(launcher: list[str], flags: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run([*launcher, "-m", "training.finetune", *flags], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


def _losses(out: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((out / "training_config.json").read_text())["losses"]}


def test_two_processes_match_one_write_once_and_resume(tiny_model_dir, dlan, tmp_path):
    one = finetune(FinetuneConfig(base=str(tiny_model_dir), data=str(dlan), out=str(tmp_path / "one"), **RUN))
    assert one["world_size"] == 1 and one["gradient_accumulation_steps"] == 4 and one["distributed"] == "NO"

    # 1. two processes through accelerate's torchrun launcher, stopped after 2 of the 4 steps
    bin_dir = Path(sys.executable).parent
    two = tmp_path / "two"
    p = _launch([str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())],
                _flags(tiny_model_dir, dlan, two, max_steps=2))
    assert p.stdout.count("adapter written to") == 1 and p.stdout.count('"global_step": 2') == 1, p.stdout
    cfg = json.loads((two / "training_config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["gradient_accumulation_steps"] == 2 and cfg["distributed"] == "MULTI_CPU"
    assert "1 per device x 2 accumulation x 2 devices" in (two / "README.md").read_text()
    ckpt = two / "checkpoints" / "checkpoint-2"
    assert (ckpt / "rng_state_0.pth").exists() and (ckpt / "rng_state_1.pth").exists()  # the trainer's per-rank state
    assert load_model(tiny_model_dir, adapter=two).codec.name == "verbalized"

    # 2. resumed from that 2-process checkpoint with torchrun, on to step 4
    p = _launch([str(bin_dir / "torchrun"), "--nproc-per-node", "2", "--master-port", str(_free_port())],
                [*_flags(tiny_model_dir, dlan, two), "--resume"])
    assert p.stdout.count("adapter written to") == 1 and p.stdout.count('"global_step": 4') == 1, p.stdout
    losses = _losses(two)
    assert sorted(losses) == [1, 2, 3, 4]
    for step, loss in _losses(tmp_path / "one").items():
        assert loss == pytest.approx(losses[step], abs=TOLERANCE), (step, loss, losses[step])
    a, b = load_file(str(tmp_path / "one" / "adapter_model.safetensors")), load_file(str(two / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and max(a[k].abs().max().item() for k in a) > 10 * TOLERANCE  # it trained
    for k in a:
        assert torch.allclose(a[k], b[k], atol=TOLERANCE), k


# Both ranks, started by hand, must end within this (under pytest.ini's 600 s per test, so that this test's own
# message, with the ranks' output, is what a slow run reports). Measured: ~1 min on a quiet machine; ~7.5 min at
# load 14 on 2 cores (~5 min importing torch/transformers/trl, ~1.5 min of garbage collection at interpreter exit).
RANKS_TIMEOUT_S = 540


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int] | None:
    """Every process's exit code, or None when they did not all end in `timeout` seconds. Either way none is
    left running: one that outlives the test would hold its peer and the CPU for the tests after it."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(0.0, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired:
        return None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_no_rank_exits_0_when_the_main_process_fails_to_write(tiny_model_dir, dlan, tmp_path):
    """Ranks started by hand (what torchrun does) so each exit code is seen: rank 0 cannot write the
    summary (a folder is in its way), and rank 1, which trained fine, must not report success."""
    out = tmp_path / "run"
    (out / "training_config.json").mkdir(parents=True)
    port = str(_free_port())
    procs, logs = [], []
    for r in (0, 1):
        # Output to files, not pipes: a rank must never block on a pipe nobody reads while the other waits for it.
        log = (tmp_path / f"rank{r}.stdout", tmp_path / f"rank{r}.stderr")
        with open(log[0], "w") as o, open(log[1], "w") as e:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "training.finetune", *_flags(tiny_model_dir, dlan, out, max_steps=1)],
                env={**_env(), "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
                stdout=o, stderr=e, text=True))
        logs.append(log)
    codes = _wait_all(procs, RANKS_TIMEOUT_S)
    results = [(o.read_text(), e.read_text()) for o, e in logs]
    tails = "\n".join(f"--- rank {r} stdout:\n{so[-2000:]}\n--- rank {r} stderr:\n{se[-4000:]}"
                      for r, (so, se) in enumerate(results))
    assert codes is not None, f"the ranks did not end within {RANKS_TIMEOUT_S} s (killed)\n{tails}"
    assert codes == [1, 1], tails
    assert "training_config.json" in results[0][1] and "another training process failed" in results[1][1], tails
    assert "adapter written" not in results[0][0] + results[1][0], tails


def test_accelerate_cpu_flag_with_many_processes_is_refused(monkeypatch, tmp_path, capsys):
    """`accelerate launch --cpu --num_processes 2` runs one process (its simple launcher): say so, do not train."""
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["--base", "x", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "starts only one process" in err and "--multi_gpu" in err and "torchrun" in err and "\n" not in err
