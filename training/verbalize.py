"""Verbalize robot trajectories into D_lan: subtask, plan and action text per step.

    python -m training.verbalize --input DIR --format bridge_raw|lerobot|episode_log --labeler rules|gemini \\
        --out DIR [--workers N] [--limit K] [--resume] [--strict]

Reads every episode, segments it into subtasks, labels the segments (rules by default,
or Gemini), writes the action text from the achieved motion with `policy.language`,
checks every record's faithfulness, and appends the episode's records to DIR/data.jsonl
as one chunk. Unusable episodes are skipped with a one-line reason (in the summary and
the card); `--strict` makes the first skip an error exit instead. A crash or Ctrl-C
followed by the same command with `--resume` gives exactly the records of an
uninterrupted run. See training/dlan.py for the folder layout and record fields.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from policy.language import ChunkingParams
from training.dlan import DlanWriter, build_records, dlan_stats, faithful_tol, record_problems, write_card, write_step_images
from training.formats import FORMATS, Reader
from training.formats.episode import EpisodeError
from training.segment import SegmentParams

__all__ = ["main", "run", "Job"]

VERSION = 1  # bump when the records a given input produces change


@dataclasses.dataclass
class Job:
    """Everything a worker needs to turn one episode reference into its records (picklable)."""

    reader: Reader
    out: str
    labeler: str = "rules"
    labeler_options: dict = dataclasses.field(default_factory=dict)
    segment: SegmentParams = SegmentParams()
    chunking: ChunkingParams = ChunkingParams()


_STATE: dict[str, Any] = {}


def _labeler(job: Job):
    key = (job.labeler, json.dumps(job.labeler_options, sort_keys=True, default=str))
    if _STATE.get("key") != key:
        from training.labelers import get_labeler

        _STATE["key"], _STATE["labeler"] = key, get_labeler(job.labeler, params=job.segment, **job.labeler_options)
    return _STATE["labeler"]


def process_episode(job: Job, ref: str) -> tuple[str, list[dict] | None, dict[str, Any]]:
    """(ref, records or None, progress entry). Never raises for bad data: the entry says why it was skipped."""
    try:
        ep = job.reader.read(ref)
        for i in range(len(ep.images)):  # decode every frame: a corrupt one makes the episode unusable
            ep.images[i]
        labeling = _labeler(job).label(ep, ref)
        records = build_records(ep, labeling, ref, job.chunking)
        for r in records:
            if problems := record_problems(r, faithful_tol(job.chunking.min_move)):
                raise EpisodeError(f"{ref}: step {r['step']} fails the faithfulness check: {problems[0]}")
        write_step_images(job.out, ep, ref, [s.start for s in labeling.segments] + [ep.num_steps])
        entry = {
            "status": "ok",
            "num_steps": len(records),
            "labeler": labeling.labeler,
            "fallback_reason": labeling.fallback_reason,
            "generic": labeling.generic,
            "stats": labeling.stats,
        }
        return ref, records, entry
    except EpisodeError as e:
        return ref, None, {"status": "skipped", "reason": str(e)}
    except Exception as e:  # anything else the data can trigger: skip, name it
        return ref, None, {"status": "skipped", "reason": f"{ref}: {type(e).__name__}: {str(e)[:200]}"}


def _worker(args: tuple[Job, str]):
    return process_episode(*args)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops cleanly and keeps the finished episodes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(fn: Callable, items: Iterable, executor: cf.Executor | None, window: int) -> Iterator:
    """fn over items, results in input order, at most `window` in flight (bounded memory)."""
    if executor is None:
        for it in items:
            yield fn(it)
        return
    pending: list[cf.Future] = []
    it = iter(items)
    for x in it:
        pending.append(executor.submit(fn, x))
        if len(pending) >= window:
            break
    while pending:
        yield pending.pop(0).result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(executor.submit(fn, nxt))


class StrictSkip(Exception):
    pass


def run(
    job: Job,
    *,
    workers: int = 1,
    limit: int | None = None,
    resume: bool = False,
    strict: bool = False,
    progress: bool = True,
    fsync: bool = True,
    config_extra: dict | None = None,
) -> dict[str, Any]:
    """Verbalize `job.reader`'s episodes into `job.out`. Returns the run summary (also the card's statistics)."""
    t0 = time.perf_counter()
    refs = job.reader.refs()
    if limit is not None:
        refs = refs[:limit]
    config = {
        "version": VERSION,
        "input": str(Path(job.reader.root).resolve()),
        "format": job.reader.fmt,
        "format_options": job.reader.options,
        "labeler": job.labeler,
        "labeler_options": {k: v for k, v in job.labeler_options.items() if k in ("model", "frames")},
        "segment": dataclasses.asdict(job.segment),
        "chunking": dataclasses.asdict(job.chunking),
        **(config_extra or {}),
    }
    writer = DlanWriter(job.out, config, resume=resume, fsync=fsync)
    todo = [r for r in refs if r not in writer.done]
    done_before = len(refs) - len(todo)
    executor: cf.Executor | None = None
    if workers > 1 or job.labeler == "gemini":
        if job.labeler == "gemini":  # network-bound: threads, bounded by --workers
            executor = cf.ThreadPoolExecutor(max_workers=max(1, workers))
        else:
            executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(refs), initial=done_before, unit="ep", desc="verbalize", file=sys.stderr, dynamic_ncols=True)
    n_new = n_skipped_new = 0
    interrupted = False
    try:
        for ref, records, entry in ordered_map(_worker, ((job, r) for r in todo), executor, window=max(4, 4 * workers)):
            if entry["status"] == "skipped" and strict:
                raise StrictSkip(entry["reason"])
            writer.add(ref, records, entry)
            n_new += 1
            n_skipped_new += entry["status"] == "skipped"
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if executor is not None:
            executor.shutdown(wait=not interrupted, cancel_futures=True)
        writer.close()
        if bar is not None:
            bar.close()
    if interrupted:
        raise KeyboardInterrupt
    stats = dlan_stats(job.out)
    write_card(job.out, stats, config)
    elapsed = time.perf_counter() - t0
    stats.update(
        elapsed_s=round(elapsed, 3),
        processed_this_run=n_new,
        resumed_from=done_before,
        episodes_per_s=round(n_new / elapsed, 2) if elapsed > 0 else None,
    )
    return stats


def format_summary(s: dict[str, Any], out: str) -> str:
    lines = [
        f"D_lan written to {out}: {s['episodes']} episodes, {s['records']} records"
        f" ({s['processed_this_run']} episodes this run, {s['resumed_from']} from before; {s['elapsed_s']:.1f} s)",
        "labelers: " + (", ".join(f"{k} {v} episodes" for k, v in s["episodes_by_labeler"].items()) or "none"),
        f"subtask vocabulary: {s['subtask_vocabulary']} phrases; generic phrasing (instruction not recognised): {s['generic_phrasing']} episodes",
        f"faithfulness: {s['unfaithful_records']} of {s['records']} records fail",
    ]
    if s["labeler_calls"]:
        lines.append("labeler calls: " + ", ".join(f"{k} {v:g}" for k, v in s["labeler_calls"].items()))
    for e, r in s["fallbacks"][:50]:
        lines.append(f"fallback to rules: {e}: {r}")
    lines.append(f"skipped: {len(s['skipped'])} episodes")
    for _, r in s["skipped"][:200]:
        lines.append(f"  skipped {r}")
    if len(s["skipped"]) > 200:
        lines.append(f"  ... and {len(s['skipped']) - 200} more (see the card, README.md)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.verbalize", description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="dataset folder (Bridge raw: holds traj_group*/traj*/; LeRobot v3: holds meta/info.json; episode_log: the loop's log folder)")
    ap.add_argument("--format", default="bridge_raw", choices=FORMATS)
    ap.add_argument("--labeler", default="rules", choices=("rules", "gemini"))
    ap.add_argument("--out", required=True, help="D_lan output folder")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (rules) or concurrent Gemini requests (gemini)")
    ap.add_argument("--limit", type=int, default=None, help="only the first K episodes")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    ap.add_argument("--strict", action="store_true", help="stop with an error at the first unusable episode instead of skipping it")
    ap.add_argument("--image-key", default=None, help="LeRobot camera feature (default: the first camera in meta/info.json)")
    ap.add_argument("--model", default="gemini-2.5-flash", help="Gemini model (labeler gemini)")
    ap.add_argument("--cache-dir", default=None, help="Gemini reply cache (default ~/.cache/vlm2vla/gemini)")
    ap.add_argument("--gemini-base-url", default=None, help="Gemini API endpoint (default Google's; e.g. a proxy)")
    ap.add_argument("--min-segment-len", type=int, default=SegmentParams.min_len, help="shortest subtask segment, steps")
    ap.add_argument("--max-step-axis-cm", type=float, default=ChunkingParams.max_axis * 100,
                    help="chunking: no axis of a merged step exceeds this (default 2.5 cm)")
    ap.add_argument("--max-step-norm-cm", type=float, default=ChunkingParams.max_norm * 100,
                    help="chunking: a merged step's length stays under this (default 5 cm, the safety filter's step limit)")
    ap.add_argument("--min-move-cm", type=float, default=ChunkingParams.min_move * 100,
                    help="chunking: shorter axis moves are not written but carried into the next step (default 0: all)")
    ap.add_argument("--max-segments", type=int, default=SegmentParams.max_segments)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)

    def fail(msg: str, code: int = 2) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return code

    if a.workers < 1:
        return fail("--workers must be at least 1")
    if a.limit is not None and a.limit < 0:
        return fail("--limit must be 0 or more")
    options = {"image_key": a.image_key} if a.format == "lerobot" and a.image_key else {}
    labeler_options: dict[str, Any] = {}
    if a.labeler == "gemini":
        labeler_options = {"model": a.model, "cache_dir": a.cache_dir, "base_url": a.gemini_base_url}
        if not os.environ.get("GEMINI_API_KEY") and not os.environ.get("GOOGLE_API_KEY"):
            return fail("--labeler gemini needs an API key: export GEMINI_API_KEY=... (or use --labeler rules, offline)")
    try:
        chunking = ChunkingParams(max_axis=a.max_step_axis_cm / 100, max_norm=a.max_step_norm_cm / 100,
                                  min_move=a.min_move_cm / 100)
    except ValueError as e:
        return fail(f"{e} (set by --max-step-axis-cm, --max-step-norm-cm and --min-move-cm, in cm)")
    job = Job(
        reader=Reader(a.format, a.input, **options),
        out=a.out,
        labeler=a.labeler,
        labeler_options=labeler_options,
        segment=dataclasses.replace(SegmentParams(), min_len=a.min_segment_len, max_segments=a.max_segments),
        chunking=chunking,
    )
    try:
        summary = run(job, workers=a.workers, limit=a.limit, resume=a.resume, strict=a.strict, progress=not a.no_progress)
    except StrictSkip as e:
        return fail(f"--strict: {e} (the records so far are kept; fix the episode or drop --strict, then --resume)")
    except KeyboardInterrupt:
        print("\ninterrupted; the finished episodes are kept. Continue with the same command plus --resume.", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        return fail(str(e))
    print(format_summary(summary, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
