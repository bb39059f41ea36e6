"""The results folder: one JSON per finished trial, written atomically, and the run's manifest.

    results/
      manifest.json                                  suite, rows, trials per row, policies, seeds
      trials/<policy>/<row>/<lang>-<seed>.json       one finished trial (what the report reads)
      logs/<policy>/<row>/<lang>-<seed>/...          its episode log (policy.loop's format)
      report.md, figures/                            written by python -m evaluation.report

A trial's JSON appears only once the trial has finished (temporary file + os.replace), so
after a kill the folder holds finished trials and nothing half-written; a re-run skips them
and runs the rest (a killed trial's partial log is removed and the trial run again).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from evaluation.suites import Trial


class ResultsError(ValueError):
    pass


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trial_path(out: Path, policy: str, trial: Trial) -> Path:
    return out / "trials" / policy / trial.row / f"{trial.lang}-{trial.seed}.json"


def log_dir(out: Path, policy: str, trial: Trial) -> Path:
    return out / "logs" / policy / trial.row / f"{trial.lang}-{trial.seed}"


def write_trial(out: Path, policy: str, trial: Trial, record: dict[str, Any]) -> Path:
    path = trial_path(out, policy, trial)
    atomic_write_text(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return path


def load_trials(out: Path) -> list[dict[str, Any]]:
    """Every finished trial under out/trials (temporary files of a killed write are ignored)."""
    records = []
    for p in sorted((Path(out) / "trials").glob("*/*/*.json")):
        try:
            records.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise ResultsError(f"{p}: not a readable trial record ({e}); delete it and re-run evaluation.trials to redo that trial") from None
    return records


def iter_temporary(out: Path) -> Iterator[Path]:
    yield from Path(out).glob("**/.*.tmp")


def check_manifest(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Merge this run's manifest with the folder's: the same suite and robot, the same settings per
    policy label (more policies or more trials may be added). Returns the merged manifest."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        return manifest
    old = json.loads(path.read_text(encoding="utf-8"))
    for key in ("suite", "robot", "seed_base", "image_size"):
        if old.get(key) != manifest.get(key):
            raise ResultsError(
                f"{out} holds a run with {key}={old.get(key)!r}, this one has {manifest.get(key)!r}; "
                f"use another --out (or the same settings to resume)"
            )
    merged = dict(old)
    policies = dict(old.get("policies", {}))
    for label, spec in manifest["policies"].items():
        if label in policies and policies[label] != spec:
            raise ResultsError(
                f"{out} already has policy {label!r} with other settings ({policies[label]}); "
                f"give this one another label (label=NAME) or use another --out"
            )
        policies[label] = spec
    merged["policies"] = policies
    merged["rows"] = old.get("rows", []) + [r for r in manifest["rows"] if r not in old.get("rows", [])]
    merged["trials"] = max(int(old.get("trials", 0)), int(manifest["trials"]))
    return merged


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(Path(out) / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
