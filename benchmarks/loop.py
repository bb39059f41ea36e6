"""Closed-loop latency: where a cycle's time goes, and what the loop itself costs.

One cycle = one subtask attempt: stage-2 generation (prefill + decode), parsing the block,
executing its steps (safety filter + simulated arm + frames), the verdict. The model is the
tiny random Gemma 3 of `training.tiny` on the CPU (default), or any Gemma 3 VLM folder given
with `--model` -- e.g. the real Gemma 3 270M stand-in of `training.gemma270m` with Gemma's
262k-token vocabulary -- constrained to the action grammar, in the MuJoCo simulation with the
sim validator; neither model completes a subtask, so every cycle is a retry of the first
subtask (the worst case for the loop: every path runs).

Also, in the same run:
- tokens per cycle for each action codec (verbalized, reserved_tokens), over the scripted
  expert's ground-truth stage-2 answers for every sim task, with the model's tokenizer (the
  reserved tokens are `<unused0..9>` placeholders unless `--codec-file` names the chosen ones:
  an adapter's action_codec.json or `training.logprob`'s logprob.json);
- constrained (xgrammar) vs unconstrained decoding: ms per generated token, the time inside
  xgrammar's logits processor per token (accept the last token, fill the vocabulary bitmask,
  mask the logits), and the one-off costs (tokenizer info, grammar compile).
The 12B-sized GPU measurement (cycle latency vs the HBM-bandwidth bound) needs a GPU; the
JSON says so when none is present. Prints one JSON object.

    python benchmarks/loop.py [--cycles 8] [--image-size 256]
    python benchmarks/loop.py --model .cache/gemma-3-270m/vlm --codec-file out/logprob/logprob.json --cycles 2 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loop_cycles(backend, cycles: int, image_size: int, token_limits: dict | None = None) -> dict:
    from policy.events import ActionsProposed, ActionsRejected, EpisodeDone, StepExecuted, VerdictGiven
    from policy.loop import ClosedLoop, LoopConfig
    from policy.sim_episode import sim_episode
    from robot.sim.robot import SimConfig, SimRobot
    from robot.sim.tasks import make_task

    task = make_task("pick_up", seed=0)
    sim = SimRobot(SimConfig(image_size=image_size), seed=0, task=task)
    ep = sim_episode(sim, task, seed=0, backend=backend)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(max_retries=cycles - 1, **(token_limits or {})))
    cpu0 = time.process_time()
    events = list(loop.run(task.instruction(), seed=0))
    episode_cpu_s = time.process_time() - cpu0
    done = events[-1]
    assert isinstance(done, EpisodeDone)
    props = [e for e in events if isinstance(e, ActionsProposed)]
    rejected = [e for e in events if isinstance(e, ActionsRejected)]
    steps = [e for e in events if isinstance(e, StepExecuted)]
    n = len(props) + len(rejected)
    T = done.timings
    if n == 0:  # the subtask list never parsed: no cycle ran
        sim.disconnect()
        return {"cycles": 0, "reason": done.reason, "episode_cpu_s": episode_cpu_s, "timings": T}

    # the safety filter alone, on the very commands the loop executed
    f = sim.safety
    reps = 2000
    starts = [np.asarray(s.target) - np.asarray(s.executed) for s in steps] or [np.array([0.3, 0.0, 0.1])]
    deltas = [np.asarray(s.requested) for s in steps] or [np.zeros(3)]
    t = time.perf_counter()
    for k in range(reps):
        f.filter(starts[k % len(starts)], deltas[k % len(deltas)], None)
    filter_per_step = (time.perf_counter() - t) / reps

    cycle_total = T["total_s"] - T["subtasks_s"]
    per = lambda key: T[key] / n  # noqa: E731
    out = {
        "cycles": n,
        "rejected_blocks": len(rejected),
        "steps_per_cycle": len(steps) / n,
        "tokens_per_cycle": T["tokens"] / n,
        "cycle_s": cycle_total / n,
        "prefill_s": per("prefill_s"),
        "decode_s": per("decode_s"),
        "parse_s": per("parse_s"),
        "safety_filter_s": filter_per_step * len(steps) / n,
        "execute_s": per("execute_s"),
        "validate_s": per("validate_s"),
        "loop_overhead_s": per("overhead_s"),
        "loop_overhead_share": T["overhead_s"] / cycle_total,
        "loop_overhead_goal": 0.02,
        "subtask_stage_s": T["subtasks_s"],
        "decode_ms_per_token": 1000 * T["decode_s"] / max(1.0, T["tokens"] - len(props)),
        "verdict_latency_s": statistics.mean(e.latency_s for e in events if isinstance(e, VerdictGiven)),
        "episode_cpu_s": episode_cpu_s,  # this process's CPU time for the whole run (subtask stage included)
        "episode_wall_s": T["total_s"],
        "note": "execute_s includes the safety filter, the simulated physics and a camera frame per step",
    }
    sim.disconnect()
    return out


def digit_tokens_from(path: str | None) -> tuple[list[str], str]:
    """The AT codec's ten digit tokens: read by `training.logprob.read_reserved_codec` (an adapter,
    its action_codec.json or a logprob.json), or `<unused0..9>` placeholders."""
    if path is None:
        return [f"<unused{i}>" for i in range(10)], "placeholders <unused0..9>"
    from policy.model import ModelLoadError
    from training.logprob import read_reserved_codec

    try:
        return list(read_reserved_codec(path).digit_tokens), f"read from {path}"
    except (ValueError, ModelLoadError, OSError) as e:
        raise SystemExit(f"error: --codec-file: {e}") from None


def codec_tokens(tokenizer, digits: list[str]) -> dict:
    from policy.language import ReservedTokensCodec, VerbalizedCodec
    from policy.sim_episode import sim_episode
    from robot.sim.robot import SimConfig, SimRobot
    from robot.sim.tasks import TASKS, make_task

    codecs = {"verbalized": VerbalizedCodec(), "reserved_tokens": ReservedTokensCodec(digits)}
    counts: dict[str, list[int]] = {k: [] for k in codecs}
    sim = SimRobot(SimConfig(image_size=32), seed=0)
    for name in sorted(TASKS):
        for seed in range(3):
            task = make_task(name, seed=seed)
            spoken = {cname: sim_episode(sim, task, seed=seed, codec=codec).backend for cname, codec in codecs.items()}
            expert = spoken["verbalized"].expert
            for i in range(len(expert.subtasks())):
                for cname, backend in spoken.items():
                    text = backend.actions_text(i)
                    counts[cname].append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
                seg = expert.plan_segment(i)  # then carry the subtask out so the next one plans from there
                for d, g in zip(seg.deltas, seg.gripper):
                    sim.move(d, g)
    sim.disconnect()
    return {k: {"mean": statistics.mean(v), "median": statistics.median(v), "max": max(v), "cycles": len(v)} for k, v in counts.items()}


class _TimedMask:
    """Times every call of xgrammar's transformers logits processor (what the hf backend uses):
    accept the last token, fill the vocabulary bitmask, mask the logits."""

    def __init__(self) -> None:
        self.seconds, self.cpu_seconds, self.calls = 0.0, 0.0, 0

    def __enter__(self) -> "_TimedMask":
        import xgrammar as xgr

        self._cls = xgr.contrib.hf.LogitsProcessor
        self._orig = self._cls.__call__
        timer = self

        def timed(proc, input_ids, scores):
            t, c = time.perf_counter(), time.thread_time()
            out = timer._orig(proc, input_ids, scores)
            timer.seconds += time.perf_counter() - t
            timer.cpu_seconds += time.thread_time() - c  # this thread's CPU: immune to other processes' load
            timer.calls += 1
            return out

        self._cls.__call__ = timed
        return self

    def __exit__(self, *exc) -> None:
        self._cls.__call__ = self._orig


def constrained_cost(backend, reps: int, max_new_tokens: int = 64) -> dict:
    from policy.backends import bounded_block_regex
    from policy.language import ACTION_REGEX
    from policy.prompts import action_prompt, action_stage_regex, user_message

    regex = action_stage_regex(bounded_block_regex(ACTION_REGEX))
    msgs = [user_message(action_prompt("pick up the carrot", ["reach for the carrot", "grasp the carrot", "lift the carrot"], 0))]
    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    backend._grammars.pop(regex, None)  # compiled during the loop run: time it afresh
    backend._compiler = None  # and the tokenizer info (the vocabulary scan) with it
    t = time.perf_counter()
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(backend.tokenizer, vocab_size=backend._vocab_size(), stop_token_ids=backend.eos_token_ids)
    tokenizer_info_s = time.perf_counter() - t
    backend._compiler = xgr.GrammarCompiler(info)
    t = time.perf_counter()
    backend.compiled_grammar(regex)
    compile_s = time.perf_counter() - t

    def run(constraint):
        per_tok, toks, cpu = [], [], []
        with _TimedMask() as mask:
            for _ in range(reps):
                c = time.process_time()
                s = backend.generate(msgs, [img], "actions", constraint_regex=constraint, max_new_tokens=max_new_tokens)
                s.text()
                cpu.append(time.process_time() - c)
                per_tok.append(s.stats.decode_s / max(1, s.stats.tokens - 1))
                toks.append(s.stats.tokens)
        calls = max(1, mask.calls)
        return {
            "ms_per_token": 1000 * statistics.median(per_tok),
            "tokens": statistics.mean(toks),
            "cpu_s_per_generation": statistics.mean(cpu),  # prefill + decode, all threads
            "mask_ms": 1000 * mask.seconds / calls if mask.calls else 0.0,
            "mask_cpu_ms": 1000 * mask.cpu_seconds / calls if mask.calls else 0.0,
            "mask_calls": mask.calls,
        }

    unc = run(None)
    con = run(regex)
    unc_ms, con_ms, mask_ms = unc["ms_per_token"], con["ms_per_token"], con["mask_ms"]
    return {
        "vocab_size": backend._vocab_size(),
        "tokenizer_info_s": tokenizer_info_s,
        "grammar_compile_s": compile_s,
        "unconstrained_ms_per_token": unc_ms,
        "constrained_ms_per_token": con_ms,
        "constrained_over_unconstrained": con_ms / unc_ms,
        "mask_ms_per_token": mask_ms,
        "mask_cpu_ms_per_token": con["mask_cpu_ms"],
        "mask_calls": con["mask_calls"],
        "mask_share_of_constrained_token": mask_ms / con_ms if con_ms else None,
        "tokens_unconstrained": unc["tokens"],
        "tokens_constrained": con["tokens"],
        "cpu_s_per_generation_unconstrained": unc["cpu_s_per_generation"],
        "cpu_s_per_generation_constrained": con["cpu_s_per_generation"],
        "note": "ms figures are wall time (they include waiting for a busy CPU); cpu figures count only this process's CPU time",
    }


def gpu_check() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"run": False, "reason": "no GPU in this environment: the 12B-sized cycle latency against the HBM-bandwidth bound was not measured"}
    return {"run": False, "reason": "a GPU is present but the 12B-sized measurement is not implemented in this benchmark yet"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5, help="generations per decoding mode")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the tiny model's matrices are too small to split)")
    ap.add_argument("--model", default=None,
                    help="a Gemma 3 VLM folder or hub id (default: build the tiny random model); e.g. .cache/gemma-3-270m/vlm")
    ap.add_argument("--codec-file", default=None,
                    help="the AT digit tokens for the tokens-per-codec count: an action_codec.json (or its adapter folder) or a logprob.json")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens per generation in the decoding comparison")
    ap.add_argument("--subtasks-tokens", type=int, default=None, help="the loop's token limit for the subtask list (default: LoopConfig's)")
    ap.add_argument("--action-tokens", type=int, default=None, help="the loop's token limit per plan + action block (default: LoopConfig's)")
    args = ap.parse_args(argv)
    limits = {k: v for k, v in (("subtasks_tokens", args.subtasks_tokens), ("action_tokens", args.action_tokens)) if v}
    import torch

    torch.set_num_threads(args.threads)
    from policy.backends.hf import HFBackend
    from training.tiny import build_tiny

    digits, digits_from = digit_tokens_from(args.codec_file)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            log("building the tiny model ...")
            model_dir, label = str(build_tiny(Path(tmp) / "tiny")), "training.tiny (random Gemma 3, CPU, float32)"
        else:
            model_dir, label = args.model, f"{args.model} (CPU, float32)"
        log(f"loading {model_dir} ...")
        backend = HFBackend.from_pretrained(model_dir)
        log(f"closed loop, {args.cycles} cycles ...")
        result = {
            "benchmark": "loop",
            "model": label,
            "torch_threads": args.threads,
            "image_size": args.image_size,
            "loop_token_limits": limits or "LoopConfig defaults",
            "cpu_count": os.cpu_count(),
            "loadavg_1min": os.getloadavg()[0],
            "cycle": loop_cycles(backend, args.cycles, args.image_size, limits),
        }
        log("tokens per cycle per codec ...")
        result["tokens_per_cycle_by_codec"] = codec_tokens(backend.tokenizer, digits)
        result["reserved_digit_tokens"] = {"tokens": digits, "from": digits_from}
        log("constrained vs unconstrained decoding ...")
        result["decoding"] = constrained_cost(backend, args.reps, args.max_new_tokens)
        result["gpu_12b"] = gpu_check()
        result["paper_median_cycle_s"] = 6.1
        result["goal_cycle_s_on_gpu"] = 1.5
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
