"""VQA retention: does the tuned model still answer what its base model answered?

    # lmms-eval benchmarks (its own environment: make eval-setup), base and adapter in one process
    .venv-eval/bin/python -m evaluation.vqa lmms --model google/gemma-3-12b-it --adapter run/ \\
        --tasks mmmu_val,mmstar,mme,ocrbench,mmbench_en_dev_static,textvqa_val,docvqa_val --out results/
    # a model's own held-out VQA set: JSONL of {"image", "question", "answer"} (image relative to the file)
    .venv/bin/python -m evaluation.vqa heldout --model micro/base --adapter micro/run --adapter micro/full --data heldout.jsonl --out results/
    # an offline lmms-eval task for smoke runs (MME's scoring on generated pictures)
    .venv/bin/python -m evaluation.vqa toy-task toy/     # then: lmms ... --include-path toy/ --tasks vlm2vla_toy_mme

Both write their scores into OUT/vqa.json (one column per model, one row per benchmark);
`python -m evaluation.report OUT` turns it into the paper's table with % of base retained.
lmms-eval exits 0 even when a task fails to load, so each task's score is read from the
results file it writes (OUT/lmms/<model>/*_results.json), and a task missing there is an error.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from pathlib import Path
from typing import Any, Callable

from evaluation.vqa_table import merge_vqa, vqa_markdown


class VQAError(Exception):
    pass


# ------------------------------------------------------------------ lmms-eval


def _lmms_model_class() -> type:
    try:
        import lmms_eval.models as models
    except ImportError as e:
        raise VQAError(
            f"lmms-eval is not importable here ({e}); it lives in its own environment: "
            "make eval-setup, then run .venv-eval/bin/python -m evaluation.vqa lmms ..."
        ) from None
    if "vlm2vla" not in models.list_available_models():
        raise VQAError("lmms-eval does not know the model 'vlm2vla': the project's entry point is not installed in this "
                       "environment; make eval-setup (bash .ci/setup-eval.sh) installs it")
    return models.get_model("vlm2vla")


def primary_metric(task_results: dict[str, Any]) -> tuple[str, float] | None:
    """The first numeric metric of one task in lmms-eval's results (not its stderr, not the alias)."""
    for key, value in task_results.items():
        if key == "alias" or "_stderr" in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        return key.split(",")[0], float(value)
    return None


def _latest_results_file(folder: Path) -> Path:
    files = sorted(folder.glob("**/*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise VQAError(f"lmms-eval wrote no results file under {folder}; see its log above")
    return files[-1]


def read_lmms_results(folder: Path, tasks: list[str]) -> tuple[dict[str, tuple[str, float]], list[str]]:
    """(task -> (metric, score)) for the tasks present in the newest results file, and the tasks missing."""
    data = json.loads(_latest_results_file(folder).read_text(encoding="utf-8"))
    found, missing = {}, []
    for t in tasks:
        m = primary_metric(data.get("results", {}).get(t, {}))
        if m is None:
            missing.append(t)
        else:
            found[t] = m
    return found, missing


def run_lmms(model: str, adapter: str | None, tasks: list[str], out: Path, include_path: str | None = None,
             limit: float | None = None, base_label: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Evaluate base and adapter (the adapter toggled, not reloaded) on lmms-eval tasks; merge into OUT/vqa.json."""
    from lmms_eval import evaluator
    from lmms_eval.loggers import EvaluationTracker
    from lmms_eval.tasks import TaskManager
    from lmms_eval.utils import get_datetime_str

    cls = _lmms_model_class()
    manager = TaskManager("WARNING", include_path=include_path)
    unknown = [t for t in tasks if t not in manager.match_tasks([t])]
    if unknown:
        raise VQAError(f"lmms-eval has no task {', '.join(unknown)}" + ("" if include_path else " (local tasks need --include-path FOLDER)"))
    lm = cls(pretrained=model, adapter=adapter)
    base_label = base_label or Path(model.rstrip("/")).name
    variants = [(base_label, False)] + ([(label or Path(adapter.rstrip("/")).name, True)] if adapter else [])
    scores: dict[str, dict[str, float]] = {}
    metrics: dict[str, str] = {}
    failed = []
    for name, use_adapter in variants:
        lm.use_adapter = use_adapter
        folder = out / "lmms" / name
        tracker = EvaluationTracker(output_path=str(folder))
        stamp = get_datetime_str()
        model_args = f"pretrained={model},adapter={adapter if use_adapter else ''},use_adapter={use_adapter}"  # recorded in the results file
        results = evaluator.simple_evaluate(model=lm, model_args=model_args, tasks=tasks, limit=limit, task_manager=manager, log_samples=True,
                                            evaluation_tracker=tracker, bootstrap_iters=0, datetime_str=stamp)
        if results is not None:
            samples = results.pop("samples", None)
            # lmms-eval records the model object as the "source" and deep-copies it when saving (it fails on
            # the backend's locks, silently): record the plugin's name instead, as its CLI would
            tracker.general_config_tracker.model_source = "vlm2vla"
            tracker.save_results_aggregated(results=results, samples=samples, datetime_str=stamp)
            for task_name in results.get("configs", {}):
                if samples and task_name in samples:  # every answer, for reading what the model said
                    tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        found, missing = read_lmms_results(folder, tasks)  # the file, not the return value or an exit code
        failed += [f"{t} ({name})" for t in missing]
        for t, (metric, score) in found.items():
            scores.setdefault(t, {})[name] = score
            metrics[t] = metric
    data = merge_vqa(out, base_label, metrics, scores)
    if failed:
        raise VQAError(f"no score in lmms-eval's results file for: {', '.join(failed)} (the task failed to load or run; its log says why); "
                       f"the other scores are in {out / 'vqa.json'}")
    return data


# ------------------------------------------------------------------ held-out VQA sets (JSONL)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces — VQA's usual exact-match normalization."""
    text = text.lower().strip().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def load_heldout(path: Path) -> list[dict[str, Any]]:
    """Records {image, question, answer} from a JSONL file; image paths relative to the file."""
    from PIL import Image

    if not path.exists():
        raise VQAError(f"{path} does not exist; give a JSONL file of {{\"image\", \"question\", \"answer\"}} records")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            image = Image.open(path.parent / rec["image"]).convert("RGB") if rec.get("image") else None
            items.append({"image": image, "question": str(rec["question"]), "answer": str(rec["answer"]),
                          **{k: rec[k] for k in ("kind", "lang") if k in rec}})
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise VQAError(f"{path}:{n}: not a VQA record ({type(e).__name__}: {e}); each line needs image, question, answer") from None
    if not items:
        raise VQAError(f"{path} holds no records")
    return items


def accuracy(answer_fn: Callable[[Any, str], str], items: list[dict[str, Any]]) -> float:
    """% of items whose normalized answer equals the normalized reference."""
    return 100.0 * sum(exact_match(answer_fn(it["image"], it["question"]), it["answer"]) for it in items) / len(items)


def exact_match(answer: str, reference: str) -> bool:
    return normalize_answer(answer) == normalize_answer(reference)


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def relaxed_match(answer: str, reference: str, tolerance: float) -> bool:
    """Exact match of the words, with every number within `tolerance` of the reference's (in order).

    A held-out answer like "x 39.4 cm, y 2.2 cm, z 9.2 cm" is judged as a measurement (ChartQA's
    relaxed accuracy, in absolute units): exact match to a tenth of a centimetre asks more of a
    model than the question does. Whatever exact match accepts, this accepts too.
    """
    # normalize_answer drops the decimal point: numbers are read from the raw text, the words compared
    # normalized with every number replaced by 0
    na, nr = _NUMBER.findall(answer), _NUMBER.findall(reference)
    if len(na) != len(nr) or not exact_match(_NUMBER.sub(" 0 ", answer), _NUMBER.sub(" 0 ", reference)):
        return False
    return all(abs(float(x.replace(",", ".")) - float(y.replace(",", "."))) <= tolerance + 1e-9 for x, y in zip(na, nr))


def heldout_answers(model: str, adapters: list[str], data: Path, max_new_tokens: int = 32,
                    labels: list[str] | None = None, base_label: str | None = None,
                    base: bool = True) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The held-out items and each model's answers to them: (items, {label: answers}); the base model
    first (the first load with its adapter switched off; `base=False` skips it), then each adapter."""
    from transformers.utils import logging as hf_logging

    from policy.backends.hf import HFBackend
    from policy.vqa import VQA

    hf_logging.disable_progress_bar()  # a command's output is its table, not a loading bar per model
    items = load_heldout(data)
    labels = labels or [Path(a.rstrip("/")).name for a in adapters]
    out: dict[str, list[str]] = {}
    for i, adapter in enumerate(adapters or [None]):
        vqa = VQA(HFBackend.from_pretrained(model, adapter=adapter), max_new_tokens=max_new_tokens)
        if i == 0 and (base or adapter is None):
            out[base_label or Path(model.rstrip("/")).name] = [vqa.ask(it["image"], it["question"], adapter=False).text() for it in items]
        if adapter is not None:
            out[labels[i]] = [vqa.ask(it["image"], it["question"], adapter=True).text() for it in items]
    return items, out


def heldout_scores(items: list[dict[str, Any]], answers: list[str], tolerance: float) -> dict[str, Any]:
    """Exact and relaxed accuracy (%) of one model's answers, overall and per question kind."""
    exact = [exact_match(a, it["answer"]) for it, a in zip(items, answers)]
    relaxed = [relaxed_match(a, it["answer"], tolerance) for it, a in zip(items, answers)]
    kinds: dict[str, list[int]] = {}
    for it, e, r in zip(items, exact, relaxed):
        k = kinds.setdefault(str(it.get("kind") or "-"), [0, 0, 0])
        k[0], k[1], k[2] = k[0] + 1, k[1] + e, k[2] + r
    pct = lambda n, d: round(100.0 * n / d, 1)  # noqa: E731
    return {"exact": 100.0 * sum(exact) / len(items), "relaxed": 100.0 * sum(relaxed) / len(items),
            "by_kind": {k: {"n": n, "exact": pct(e, n), "relaxed": pct(r, n)} for k, (n, e, r) in sorted(kinds.items())}}


def write_answers(out: Path, name: str, items: list[dict[str, Any]], answers: dict[str, list[str]], tolerance: float) -> Path:
    """OUT/vqa-answers/<name>.json: every question with each model's answer, and the per-kind scores
    (what to read when a score surprises). Models another run wrote there on the same questions are
    kept (as vqa.json keeps their columns) and re-scored with this `tolerance`."""
    folder = out / "vqa-answers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))["items"]
        if [r["question"] for r in before] == [it["question"] for it in items]:
            answers = {**{label: [r["answers"][label] for r in before] for label in before[0]["answers"]}, **answers}
    rows = [{"kind": it.get("kind"), "lang": it.get("lang"), "question": it["question"], "reference": it["answer"],
             "answers": {label: said[i] for label, said in answers.items()}} for i, it in enumerate(items)]
    data = {"tolerance": tolerance, "scores": {label: heldout_scores(items, said, tolerance) for label, said in answers.items()},
            "items": rows}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.vqa", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lm = sub.add_parser("lmms", help="lmms-eval benchmarks, base and adapter in one process (eval environment)")
    lm.add_argument("--model", required=True, help="base model: hub id or folder")
    lm.add_argument("--adapter", help="LoRA folder (training.finetune --out); without it only the base is scored")
    lm.add_argument("--tasks", required=True, help="comma-separated lmms-eval tasks, e.g. mmmu_val,mmstar,mme,ocrbench,mmbench_en_dev_static,textvqa_val,docvqa_val")
    lm.add_argument("--include-path", help="a folder of local task YAMLs (e.g. from the toy-task command)")
    lm.add_argument("--limit", type=float, help="documents per task (smoke runs only)")
    lm.add_argument("--base-label", help="the base model's column name (default: the model folder's name)")
    lm.add_argument("--label", help="the adapter's column name (default: the adapter folder's name)")
    lm.add_argument("--out", type=Path, default=Path("results"))
    ho = sub.add_parser("heldout", help="accuracy on a held-out JSONL VQA set, base vs each adapter")
    ho.add_argument("--model", required=True)
    ho.add_argument("--adapter", action="append", default=[], help="a LoRA folder (repeat for several)")
    ho.add_argument("--data", type=Path, required=True, help="JSONL of {image, question, answer}")
    ho.add_argument("--name", help="the benchmark's row name (default: the data file's name)")
    ho.add_argument("--base-label")
    ho.add_argument("--tuned", action="store_true",
                    help="add tuned models to the table of the base already in OUT: --model itself (a full fine-tune; its column "
                         "is --base-label) or, with --adapter, only the adapters")
    ho.add_argument("--label", action="append", default=[], help="column name per --adapter, in order")
    ho.add_argument("--max-new-tokens", type=int, default=32)
    ho.add_argument("--tolerance", type=float, default=None,
                    help="also score with every number within this much of the reference's (a second row, 'NAME (±T)')")
    ho.add_argument("--out", type=Path, default=Path("results"))
    tt = sub.add_parser("toy-task", help="write the offline toy lmms-eval task into a folder")
    tt.add_argument("folder", type=Path)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "toy-task":
            from evaluation.toy_task import TASK, write_toy_task

            print(f"wrote {write_toy_task(args.folder)}; run: python -m evaluation.vqa lmms --include-path {args.folder} --tasks {TASK} ...")
            return 0
        if args.cmd == "lmms":
            data = run_lmms(args.model, args.adapter, [t.strip() for t in args.tasks.split(",") if t.strip()], args.out,
                            args.include_path, args.limit, args.base_label, args.label)
        else:
            if args.label and len(args.label) != len(args.adapter):
                raise VQAError("give one --label per --adapter (or none)")
            if args.tuned and not (args.out / "vqa.json").exists():  # before the answering, not after it
                raise VQAError(f"{args.out}/vqa.json does not exist yet: score the base model first (then add tuned models to it)")
            items, answers = heldout_answers(args.model, args.adapter, args.data, args.max_new_tokens, args.label or None,
                                             args.base_label, base=not args.tuned)
            base = args.base_label or Path(args.model.rstrip("/")).name
            name = args.name or re.sub(r"\.jsonl?$", "", args.data.name)
            tol = args.tolerance or 0.0
            scores = {label: heldout_scores(items, said, tol) for label, said in answers.items()}
            metrics, table = {name: "exact match, %"}, {name: {k: v["exact"] for k, v in scores.items()}}
            if args.tolerance is not None:
                relaxed = f"{name} (±{args.tolerance:g})"
                metrics[relaxed] = f"words exact, numbers within {args.tolerance:g}, %"
                table[relaxed] = {k: v["relaxed"] for k, v in scores.items()}
            try:
                data = merge_vqa(args.out, None if args.tuned else base, metrics, table)
            except ValueError as e:  # another base in OUT, or --tuned before any base
                raise VQAError(str(e)) from None
            print(f"answers and per-kind scores: {write_answers(args.out, name, items, answers, tol)}")
    except VQAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a model that does not load, a server error: one line, not a traceback
        from policy.model import ModelLoadError

        if isinstance(e, ModelLoadError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    print(vqa_markdown(data))
    print(f"\nscores in {args.out / 'vqa.json'}; the report: python -m evaluation.report {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
