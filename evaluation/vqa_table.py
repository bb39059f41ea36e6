"""The VQA retention table (the paper's shape): one row per benchmark, one column per model, and
each tuned model's score as a % of the base model's.

The scores live in OUT/vqa.json, written by `python -m evaluation.vqa` (lmms-eval benchmarks
and held-out VQA sets alike):

    {"base": "base",                                 which column is the base model
     "models": ["base", "run"],                      column order
     "scores": {"mme": {"base": 1201.3, "run": 1180.0}, "micro_vqa": {"base": 71.0, "run": 69.5}},
     "metrics": {"mme": "mme_perception_score", "micro_vqa": "exact match, %"}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.store import atomic_write_text


def load_vqa(out: Path) -> dict[str, Any] | None:
    path = Path(out) / "vqa.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def merge_vqa(out: Path, base: str | None, metrics: dict[str, str], scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Add scores (benchmark -> model -> score) to OUT/vqa.json, keeping what other runs wrote.
    `base=None`: these are tuned models only (e.g. a full fine-tune), compared with the file's base."""
    data = load_vqa(out)
    if data is None and base is None:
        raise ValueError(f"{out}/vqa.json does not exist yet: score the base model first (then add tuned models to it)")
    data = data or {"base": base, "models": [], "scores": {}, "metrics": {}}
    if base is not None and data["base"] != base:
        raise ValueError(f"{out}/vqa.json compares against base {data['base']!r}, this run against {base!r}; use another --out")
    for bench, per_model in scores.items():
        data["scores"].setdefault(bench, {}).update(per_model)
        data["metrics"][bench] = metrics.get(bench, data["metrics"].get(bench, ""))
        for m in per_model:
            if m not in data["models"]:
                data["models"].append(m)
    data["models"].sort(key=lambda m: (m != base,))  # the base column first, others as added
    atomic_write_text(Path(out) / "vqa.json", json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return data


def retained(data: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """benchmark -> tuned model -> its score as % of the base's (None where either is missing or base is 0)."""
    base = data["base"]
    out: dict[str, dict[str, float | None]] = {}
    for bench, per_model in data["scores"].items():
        b = per_model.get(base)
        out[bench] = {
            m: (100.0 * per_model[m] / b if b and per_model.get(m) is not None else None)
            for m in data["models"] if m != base
        }
    return out


def vqa_markdown(data: dict[str, Any]) -> str:
    """| benchmark | base | run | run: % of base |, one line per benchmark, then the mean retention."""
    base, models = data["base"], data["models"]
    tuned = [m for m in models if m != base]
    ret = retained(data)
    header = ["benchmark", *models, *[f"{m}: % of base" for m in tuned]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def fmt(x: float | None, pct: bool = False) -> str:
        return "—" if x is None else (f"{x:.1f}%" if pct else f"{x:.2f}")

    for bench, per_model in data["scores"].items():
        cells = [fmt(per_model.get(m)) for m in models] + [fmt(ret[bench][m], True) for m in tuned]
        lines.append(f"| {bench} | " + " | ".join(cells) + " |")
    means = []
    for m in tuned:
        vals = [ret[b][m] for b in ret if ret[b][m] is not None]
        means.append(fmt(sum(vals) / len(vals), True) if vals else "—")
    lines.append("| **mean retained** | " + " | ".join([""] * len(models) + means) + " |")
    return "\n".join(lines)
