"""Does the micro language model learn to read a *named* thing's place from the image tokens?

The experiment behind README "Teaching the base where things are": on a base whose tower is already
taught (`--scale micro-slots`: image token i holds thing i), language training asks one question,
"What are the coordinates of the <thing>?", single turn, in English, about every training scene, and
`training.micro.probe.probe_locations` measures the answers on held-out scenes.

    python -m training.micro.binding --base slots/base --world slots/world --out binding/ --first-steps 300 --all-steps 600
    python -m training.micro.binding ... --first-steps 0 --all-steps 900      # the same steps, all things from the start
    python -m training.micro all --out bound/ --scale micro-bound              # the phases as a stage of the recipe

Trained on the world corpus, where a coordinate question is one turn among several, about any of nine
things in four languages, the slots bases answer one place per scene whatever thing is named. Trained
on this question alone, the same base learns within 900 steps to choose the token by the name (its x
answers follow each thing); `--first-steps` asks about the first pickable alone before that, to tell
reading a fixed token (learned at once) from choosing one by name; `--world-steps` then goes back to
the world corpus, to see whether the base keeps what it learned. (Figures in the README.) The recipe's
`--scale micro-bound` runs these phases (`BindingConfig`) after the world pretraining.

As numbered steps (`run`):
1. the corpus: one question per thing per training scene (held-out scenes never), written as two
   world folders under `out` (`first/`: the first pickable only; `all/`: every thing), images by
   absolute path;
2. `pretrain` with the tower frozen: `first_steps` on `first/`, then `all_steps` on `all/`, then
   `world_steps` on the world's own corpus (each phase resumes, and is skipped once its
   `pretrain.json` exists);
3. `probe_locations` on the world's training and held-out scenes -> `out/binding.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.micro.base import PretrainConfig, pretrain
from training.micro.world import HELDOUT_SEED_BASE, PICKABLES, THINGS, SceneTruth, coords_qa, read_jsonl, write_jsonl


def coordinate_questions(world: Path, things: tuple[str, ...]) -> list[dict[str, Any]]:
    """One single-turn English coordinate question per thing per training scene of `world`."""
    rows = []
    for r in read_jsonl(world / "scenes.jsonl"):
        t = SceneTruth(**r)
        if t.seed >= HELDOUT_SEED_BASE:
            continue
        for o in things:
            question, answer = coords_qa(o, t, "en")
            rows.append({"image": str((world / t.image).resolve()),
                         "turns": [{"kind": "coords", "lang": "en", "question": question, "answer": answer}]})
    return rows


@dataclass(frozen=True)
class BindingConfig:
    """The phases after the world pretraining, on a base whose tower stays frozen (defaults: the run
    whose base both locates named things and answers the world's questions; README)."""

    first_steps: int = 300  # the first pickable alone: reading one fixed image token, learned at once
    all_steps: int = 1500  # every thing: choosing the token by the name takes hundreds of steps of this alone
    world_steps: int = 600  # back on the world corpus, which the coordinate phase made the model forget
    learning_rate: float = 1e-3
    probe_scenes: int = 60  # training and held-out world scenes each for the closing location probe

    def __post_init__(self) -> None:
        if self.first_steps < 0 or self.all_steps < 1 or self.world_steps < 0:
            raise ValueError("BindingConfig: first_steps and world_steps must be >= 0, all_steps >= 1")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"BindingConfig.learning_rate must be in (0, 1), got {self.learning_rate}")


def run(base: Path, world: Path, out: Path, cfg: BindingConfig = BindingConfig(), threads: int = 0,
        progress: bool = True) -> dict[str, Any]:
    """The phases of `cfg` from `base`; returns (and writes to out/binding.json) each phase's losses, the
    location probe's figures and `model`, the folder of the last phase's weights."""
    from policy.backends.hf import HFBackend
    from training.micro.probe import probe_locations

    # 1.-2. each phase's corpus, then its training, from the last phase's weights
    model, losses = Path(base), {}
    phases = [("first", PICKABLES[:1], cfg.first_steps), ("all", THINGS, cfg.all_steps), ("world", None, cfg.world_steps)]
    for name, things, steps in phases:
        if steps == 0:
            continue
        data = world if things is None else out / name  # the world phase trains on the world's own corpus
        if things is not None and not (data / "train.jsonl").exists():
            data.mkdir(parents=True, exist_ok=True)
            write_jsonl(data / "train.jsonl", coordinate_questions(world, things))
        target = out / f"model-{name}"
        if not (target / "pretrain.json").exists():
            pcfg = PretrainConfig(steps=steps, batch_size=16, learning_rate=cfg.learning_rate, warmup_steps=20,
                                  freeze_vision=True, threads=threads)
            pretrain(model, data, target, pcfg, progress=progress)
        s = json.loads((target / "pretrain.json").read_text())
        losses[name] = {"steps": s["steps"], "first_loss": round(s["first_loss"], 3), "final_loss": round(s["final_loss"], 3),
                        "minutes": round(s["seconds"] / 60, 1)}
        model = target
    # 3. where the answers put things, against the simulator
    result = {"base": str(base), **asdict(cfg), "phases": losses, "model": str(model),
              "locations": probe_locations(HFBackend.from_pretrained(str(model)), world, cfg.probe_scenes)}
    tmp = out / "binding.json.tmp"  # written beside, then renamed: a kill leaves no half file
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out / "binding.json")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.micro.binding", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--base", type=Path, required=True, help="a pretrained micro base (its tower is kept frozen)")
    ap.add_argument("--world", type=Path, required=True, help="the base's world folder (scenes.jsonl, images/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--first-steps", type=int, default=300, help="steps asking only about the first pickable (0: none)")
    ap.add_argument("--all-steps", type=int, default=600, help="steps asking about every thing")
    ap.add_argument("--world-steps", type=int, default=0, help="then steps on the world's own corpus (does the base keep it?)")
    ap.add_argument("--scenes", type=int, default=60, help="training and held-out scenes each for the probe")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = BindingConfig(a.first_steps, a.all_steps, a.world_steps, a.learning_rate, a.scenes)
    except ValueError as e:
        ap.error(str(e))
    if not (a.world / "scenes.jsonl").exists():
        ap.error(f"{a.world} has no scenes.jsonl; pass the world folder the base was trained on (training.micro world)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    r = run(a.base, a.world, a.out, cfg, a.threads, progress=not a.quiet)
    held = r["locations"]["heldout"]
    print(f"held-out scenes: error x/y {held['error_xy_cm']} cm (guessing the mean {held['mean_guess_error_xy_cm']}), "
          f"correlation {held['correlation_xy']} -> {a.out / 'binding.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
