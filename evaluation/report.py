"""One report from a results folder: Markdown tables (trials, VQA) and plotly figures (HTML + PNG).

    python -m evaluation.report results/
    # -> results/report.md, results/figures/{trials,vqa}.{html,png}

The trials table comes from results/trials/ (python -m evaluation.trials), the VQA table from
results/vqa.json (python -m evaluation.vqa); either may be missing. The Markdown names the
PNGs by relative path, so the README (or any page) can embed it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from evaluation.figures import save, trials_figure, vqa_figure
from evaluation.store import ResultsError, atomic_write_text, load_trials
from evaluation.tables import summarize, trials_markdown
from evaluation.vqa_table import load_vqa, retained, vqa_markdown


def _manifest(out: Path) -> dict:
    p = out / "manifest.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def build_report(out: Path, png: bool = True) -> Path:
    """Write out/report.md and out/figures/; returns the report's path."""
    manifest = _manifest(out)
    records = load_trials(out)
    vqa = load_vqa(out)
    if not records and vqa is None:
        raise ResultsError(f"{out} has no trials (trials/) and no vqa.json: run python -m evaluation.trials --out {out} or python -m evaluation.vqa --out {out} first")
    titles = {r["key"]: r["title"] for r in manifest.get("rows", [])}
    parts = [f"# Evaluation report\n\n*{out} — written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m evaluation.report`*\n"]
    figs, figures = out / "figures", []
    if records:
        cells = summarize(records, [r["key"] for r in manifest.get("rows", [])], list(manifest.get("policies", {})))
        seeds = sorted({r["seed"] for r in records})
        robot = ", ".join(sorted({r["robot"] for r in records}))
        parts.append(
            f"## Trials (Fig. 5)\n\n{len(records)} trials on {robot}; scene seeds {seeds[0]}–{seeds[-1]} "
            f"(evaluation seeds start at {manifest.get('seed_base', 1_000_000):,}, disjoint from training's); "
            f"success is {'the simulator’s ground truth' if robot == 'sim' else 'recorded by a person'}. "
            f"95 % CI: Wilson score interval.\n\n{trials_markdown(cells, titles)}\n\n![success by task](figures/trials.png)\n"
        )
        figures.append((trials_figure(cells, titles), figs / "trials.html"))
    if vqa is not None:
        parts.append(
            "## VQA retained\n\nScores per benchmark (metric: "
            + "; ".join(f"{b}: {m}" for b, m in vqa["metrics"].items() if m)
            + f"); each tuned model's score as % of the base model ({vqa['base']}).\n\n{vqa_markdown(vqa)}\n\n![VQA retained](figures/vqa.png)\n"
        )
        figures.append((vqa_figure(vqa, retained(vqa)), figs / "vqa.html"))
    save(figures, png=png)
    path = out / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evaluation.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("results"), help="the results folder (default results/)")
    ap.add_argument("--no-png", action="store_true", help="HTML figures only (no Chromium needed)")
    args = ap.parse_args(argv)
    if not args.out.is_dir():
        print(f"error: {args.out} is not a folder; run python -m evaluation.trials --out {args.out} first", file=sys.stderr)
        return 2
    try:
        path = build_report(args.out, png=not args.no_png)
    except (ResultsError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path.read_text(encoding="utf-8"))
    print(f"wrote {path} and {args.out / 'figures'}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
