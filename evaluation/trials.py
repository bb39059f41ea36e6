"""The paper's Fig. 5 trials on the simulator (or a real arm), several policies side by side.

    python -m evaluation.trials --suite fig5 --policy scripted --trials 30 --out results/
    python -m evaluation.trials --suite fig5 --trials 30 --out results/ --workers 2 \\
        --policy scripted --policy hf:model=tiny/,adapter=run/ --policy hf:model=tiny/,adapter=run/,no_adapter=1
    python -m evaluation.trials --suite fig5 --robot widowx --policy hf:model=google/gemma-3-12b-it,adapter=run/ --trials 10

Rows (suite fig5): Pick Up, Pick Place & Lift, Pick and Place (in distribution), Pick Up-T
(the pick-up scenes with Spanish, Mandarin and Hindi instructions: 3x the trials) and
Pick Up-A (semantic). Trial k is scene seed 1,000,000 + k (training/seeds.py: disjoint from
every training seed), the same scenes for every policy. Each finished trial is one JSON file
under OUT/trials/ (written atomically) with its episode log under OUT/logs/; run the same
command again after a kill and it runs only what is missing. Ends with the table; then
`python -m evaluation.report OUT` writes report.md and the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evaluation.policies import PolicySpec, PolicySpecError, parse_policy
from evaluation.store import ResultsError, check_manifest, trial_path, write_manifest
from evaluation.suites import SUITES, Row, Trial, suite_rows, trials_for
from evaluation.tables import summarize, trials_markdown


class CLIError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.trials", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--suite", default="fig5", choices=sorted(SUITES), help="which rows (default fig5)")
    ap.add_argument("--rows", help="only these rows of the suite, comma-separated (e.g. pick_up,pick_up_semantic)")
    ap.add_argument("--policy", action="append", default=[], metavar="KIND[:key=value,...]",
                    help="a policy column (repeat for several): scripted | hf:model=M,adapter=A[,no_adapter=1][,label=L] | "
                         "openai:server=URL,model=NAME; keys also validator=sim|self|gemini|none|manual, max_retries=N")
    ap.add_argument("--trials", type=int, default=30, help="trials per row and language (default 30, the paper's)")
    ap.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    ap.add_argument("--workers", type=int, default=1, help="parallel simulator processes (default 1)")
    ap.add_argument("--robot", choices=["sim", "widowx"], default="sim", help="the simulator, or the real arm with a person recording outcomes")
    ap.add_argument("--camera", default="0", help="widowx: OpenCV camera index or URL")
    ap.add_argument("--image-size", type=int, default=256, help="sim camera size in pixels (default 256, as Bridge)")
    ap.add_argument("--pose-only-steps", action="store_true", help="sim: no camera frame after each step (faster; frames still before each block)")
    ap.add_argument("--no-logs", action="store_true", help="do not keep episode logs (only the per-trial JSON)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def plan(rows: tuple[Row, ...], specs: list[PolicySpec], n: int) -> list[tuple[PolicySpec, Trial]]:
    """Every (policy, trial) of the run, scene-major: a run stopped early has covered every row alike."""
    pairs = [(s, t) for r in rows for t in trials_for(r, n) for s in specs]
    order = {r.key: i for i, r in enumerate(rows)}
    return sorted(pairs, key=lambda p: (p[1].index, order[p[1].row]))  # stable: languages, then policies, keep their order


def _specs(args: argparse.Namespace) -> list[PolicySpec]:
    try:
        specs = [parse_policy(p) for p in (args.policy or ["scripted"])]
    except PolicySpecError as e:
        raise CLIError(str(e)) from None
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise CLIError(f"two --policy columns share a label ({', '.join(labels)}); give each its own with label=NAME")
    return specs


def _manifest(args: argparse.Namespace, rows: tuple[Row, ...], specs: list[PolicySpec]) -> dict:
    from training.seeds import EVAL_SEED_BASE

    return {
        "suite": args.suite,
        "robot": args.robot,
        "seed_base": EVAL_SEED_BASE,
        "image_size": args.image_size if args.robot == "sim" else None,
        "trials": args.trials,
        "rows": [{"key": r.key, "title": r.title, "task": r.task, "group": r.group, "langs": list(r.langs)} for r in rows],
        "policies": {s.label: s.as_dict() for s in specs},
    }


def _run_serial(worker, todo, bar) -> None:
    for spec, trial in todo:
        bar.set_description(f"{spec.label} {trial.id}")
        rec = worker.run(spec, trial)
        bar.update(1)
        bar.set_postfix_str(f"last: {'ok' if rec['success'] else 'fail'}")


def _run_parallel(settings, todo, workers: int, bar) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from evaluation.runner import init_process, run_in_process

    # spawn, not fork: each process starts its own renderer (EGL contexts do not survive a fork)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_process, initargs=(settings,)) as pool:
        pending = {pool.submit(run_in_process, s, t) for s, t in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    rec = f.result()  # a trial's exception stops the run (finished trials are kept)
                    bar.update(1)
                    bar.set_postfix_str(f"last: {rec['policy']} {rec['row']} {'ok' if rec['success'] else 'fail'}")
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _real_robot(args: argparse.Namespace):
    from robot.camera import Camera, CameraConfig
    from robot.widowx import WidowX

    camera = Camera(CameraConfig(source=int(args.camera) if args.camera.isdigit() else args.camera))
    arm = WidowX(camera=camera)
    arm.connect()  # no interbotix_xs_modules: WidowXUnavailable (an ImportError) naming what to install
    camera.start()
    return arm


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from evaluation.runner import RealSession, SimWorker, TrialError, TrialSettings

    if args.trials < 1:
        raise CLIError("--trials must be at least 1")
    if args.workers < 1:
        raise CLIError("--workers must be at least 1")
    try:
        rows = suite_rows(args.suite, args.rows.split(",") if args.rows else None)
    except ValueError as e:
        raise CLIError(str(e)) from None
    specs = _specs(args)
    if args.robot == "widowx" and args.workers != 1:
        raise CLIError("--robot widowx runs one trial at a time (one arm); drop --workers")
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} exists and is not a folder")
    try:
        manifest = check_manifest(args.out, _manifest(args, rows, specs))
    except ResultsError as e:
        raise CLIError(str(e)) from None
    write_manifest(args.out, manifest)

    pairs = plan(rows, specs, args.trials)
    todo = [(s, t) for s, t in pairs if not trial_path(args.out, s.label, t).exists()]
    settings = TrialSettings(out=args.out, image_size=args.image_size, pose_only_steps=args.pose_only_steps, keep_logs=not args.no_logs)
    print(f"{len(pairs)} trials ({len(rows)} rows x {len(specs)} policies, seeds {pairs[0][1].seed}..{max(t.seed for _, t in pairs)}); "
          f"{len(pairs) - len(todo)} already done, {len(todo)} to run", file=sys.stderr)
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), unit="trial", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    worker = None
    try:
        if args.robot == "widowx":
            worker = RealSession(_real_robot(args), settings)
            _run_serial(worker, todo, bar)
        elif args.workers == 1 or len(todo) <= 1:
            worker = SimWorker(settings)
            _run_serial(worker, todo, bar)
        else:
            _run_parallel(settings, todo, min(args.workers, len(todo)), bar)
    except TrialError as e:
        raise CLIError(str(e)) from None
    finally:
        bar.close()
        if worker is not None:
            worker.close()

    from evaluation.store import load_trials

    wanted = {(s.label, t.row, t.lang, t.seed) for s, t in pairs}
    records = [r for r in load_trials(args.out) if (r["policy"], r["row"], r["lang"], r["seed"]) in wanted]
    cells = summarize(records, [r.key for r in rows], [s.label for s in specs])
    print(trials_markdown(cells, {r.key: r.title for r in rows}))
    print(f"\n{len(records)} trials in {args.out}/trials; tables and figures: python -m evaluation.report {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in {args.out}; run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    raise SystemExit(main())
