"""How close a model's action blocks are to the expert's, on D_lan records (no simulator), and
whether its subtask lists name the right task on fresh sim scenes.

For each record the model answers the stage-2 prompt exactly as the policy loop asks it
(same prompt with the gripper position, same grammar constraint, greedy); the block's
commands are summed and compared with the record's true net displacement:

    error_cm = |sum of the block's moves - displacement| (Euclidean, centimetres)

A model that learned nothing writes grammatical blocks of arbitrary length and direction;
one that learned writes the expert's. `ActionProbe.mean_error_cm` is what the micro recipe's
test asserts on, and what its card reports.

`probe_subtasks` asks stage 1 (instruction + first image -> numbered subtasks, the loop's grammar)
on scenes the simulator arranges from seeds the caller picks, in any of the sim's languages, and
compares the list with the expert's: a model trained on English instructions only shows here
whether its knowledge of Spanish, Mandarin and Hindi reaches the plan.

`probe_locations` asks "What are the coordinates of the <thing>?" (the world's trained English
phrasing) about the world's own scenes, training and held-out, and compares the answers with the
simulator's positions: the mean error against always guessing the mean position, and the
correlation (0: the answers do not depend on where the thing is).

`probe_image_use` asks whether a model's answers depend on the image at all: the teacher-forced
loss of the true answers with each sample's own image, and with another scene's image in its
place. A model that reads the scene loses more with the wrong image (gap > 0); one that writes
the average answer loses the same (gap ~ 0), however low its loss.

    python -m training.micro.probe --model micro/base --adapter micro/lora --dlan micro/dlan
    python -m training.micro.probe --model micro/base --world micro/world --tasks ""   # locations only
    python -m training.micro.probe --model micro/base --adapter micro/lora --dlan micro/dlan --records 200 --image-use --tasks ""
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np

from policy.backends import bounded_block_regex
from policy.language import ActionParseError
from policy.prompts import (
    PromptFormatError,
    action_prompt,
    action_stage_regex,
    parse_plan_actions,
    parse_subtasks,
    subtasks_prompt,
    subtasks_regex,
    user_message,
)


@dataclass(frozen=True)
class ActionProbe:
    """Per-record results of `probe_actions`."""

    errors_cm: tuple[float, ...]  # NaN where the answer did not parse
    texts: tuple[str, ...]

    @property
    def parse_rate(self) -> float:
        return float(np.mean([not np.isnan(e) for e in self.errors_cm])) if self.errors_cm else 0.0

    @property
    def mean_error_cm(self) -> float:
        ok = [e for e in self.errors_cm if not np.isnan(e)]
        return float(np.mean(ok)) if ok else float("inf")


def probe_actions(backend: Any, records: Sequence[dict], root: str | Path, adapter: bool = True,
                  max_steps: int = 8, max_new_tokens: int = 400) -> ActionProbe:
    """Ask `backend` (policy.backends.hf.HFBackend) for each record's block; compare with the record."""
    from PIL import Image

    codec = backend.codec
    regex = action_stage_regex(bounded_block_regex(codec.regex, max_steps))
    errors, texts = [], []
    for r in records:
        prompt = action_prompt(r["instruction"], r["subtasks"], r["step"], ee=r.get("state"))
        image = Image.open(Path(root) / r["image"]).convert("RGB")
        text = backend.generate([user_message(prompt)], [image], "actions", constraint_regex=regex,
                                adapter=adapter, max_new_tokens=max_new_tokens).text()
        texts.append(text)
        try:
            steps = codec.decode(parse_plan_actions(text).actions)
        except (ActionParseError, PromptFormatError):
            errors.append(float("nan"))
            continue
        total = np.sum([c.delta for step in steps for c in step], axis=0) if steps else np.zeros(3)
        errors.append(float(np.linalg.norm(np.asarray(total) - np.asarray(r["displacement"])) * 100.0))
    return ActionProbe(tuple(errors), tuple(texts))


def probe_subtasks(backend: Any, tasks: Sequence[str], langs: Sequence[str], seeds: Sequence[int], adapter: bool = True,
                   max_new_tokens: int = 120) -> list[dict]:
    """Stage 1 on fresh sim scenes: one row per (task, lang, seed) with the instruction, the simulator's
    subtasks, the model's, and `exact` (the same list) / `first` (the same first subtask: the right object).

    `first` is the figure to read: the rules labeler that wrote the model's training data words the
    later subtasks of a put-task its own way ("move the banana over the plate", "place ...", "move the
    arm away" where the simulator's phases say "move the banana above the plate", "release ..."), so
    `exact` can only hold for pick-up tasks."""
    from robot.sim.robot import SimConfig, SimRobot
    from robot.sim.tasks import make_task

    sim = SimRobot(SimConfig(image_size=256))  # the camera the loop sees; the processor resizes it
    sim.connect()
    rows = []
    try:
        for name in tasks:
            for seed in seeds:
                task = make_task(name, seed=seed)
                sim.reset(seed, task=task)
                image, expected = sim.observe().image, task.subtasks(sim)
                for lang in langs:
                    instruction = task.instruction(lang)
                    text = backend.generate([user_message(subtasks_prompt(instruction))], [image], "subtasks",
                                            constraint_regex=subtasks_regex(), adapter=adapter, max_new_tokens=max_new_tokens).text()
                    try:
                        said = parse_subtasks(text)
                    except PromptFormatError:
                        said = []
                    rows.append({"task": name, "lang": lang, "seed": seed, "instruction": instruction, "expected": expected,
                                 "said": said, "exact": said == expected, "first": bool(said) and said[0] == expected[0]})
    finally:
        sim.disconnect()
    return rows


def probe_locations(backend: Any, world: str | Path, scenes: int = 60, adapter: bool = False) -> dict[str, Any]:
    """Coordinate answers about the first `scenes` training and held-out world scenes (3 pickables each)."""
    import re

    from PIL import Image

    from policy.vqa import VQA
    from training.micro.world import HELDOUT_SEED_BASE, NAMES, PICKABLES, QUESTIONS, SceneTruth, read_jsonl

    world = Path(world)
    truths = [SceneTruth(**r) for r in read_jsonl(world / "scenes.jsonl")]
    everywhere = np.array([t.positions[o][:2] for t in truths for o in PICKABLES]) * 100
    vqa = VQA(backend, max_new_tokens=24)
    number = re.compile(r"-?\d+(?:\.\d+)?")
    out: dict[str, Any] = {}
    for split, group in (("train", [t for t in truths if t.seed < HELDOUT_SEED_BASE][:scenes]),
                         ("heldout", [t for t in truths if t.seed >= HELDOUT_SEED_BASE][:scenes])):
        said, true = [], []
        for t in group:
            image = Image.open(world / t.image).convert("RGB")
            for o in PICKABLES:
                answer = vqa.ask(image, QUESTIONS["coords"]["en"][0].format(a=NAMES[o]["en"]), adapter=adapter).text()
                xy = [float(v) for v in number.findall(answer)][:2]
                if len(xy) == 2:
                    said.append(xy)
                    true.append(np.array(t.positions[o][:2]) * 100)
        said_a, true_a = np.array(said).reshape(-1, 2), np.array(true).reshape(-1, 2)
        out[split] = {
            "asked": len(group) * len(PICKABLES), "parsed": len(said),
            "error_xy_cm": np.abs(said_a - true_a).mean(0).round(2).tolist() if said else None,
            "mean_guess_error_xy_cm": np.abs(everywhere.mean(0) - true_a).mean(0).round(2).tolist() if said else None,
            # None where the answers never change (a constant has no correlation)
            "correlation_xy": [round(float(np.corrcoef(said_a[:, i], true_a[:, i])[0, 1]), 2) if said_a[:, i].std() > 0 else None
                               for i in (0, 1)] if len(said) > 2 else None,
        }
    return out


@dataclass(frozen=True)
class ImageUse:
    """Per-sample answer loss (nats summed over each sample's answer tokens) with its own image and
    with another scene's; the figures are per answer token, as a training loss is."""

    own_nll: tuple[float, ...]
    other_nll: tuple[float, ...]
    answer_tokens: tuple[int, ...]  # per sample

    @property
    def tokens(self) -> int:
        return sum(self.answer_tokens)

    @property
    def own(self) -> float:
        return sum(self.own_nll) / self.tokens

    @property
    def other(self) -> float:
        return sum(self.other_nll) / self.tokens

    @property
    def gap(self) -> float:
        return self.other - self.own

    @property
    def gap_se(self) -> float:
        """Standard error of `gap` from the paired per-sample differences: |gap| under ~2 of these is noise."""
        d = np.subtract(self.other_nll, self.own_nll)
        return float(d.std(ddof=1) * np.sqrt(len(d)) / self.tokens) if len(d) > 1 else float("nan")

    def select(self, indices: Sequence[int]) -> "ImageUse":
        """The same scores for a subset of the samples (e.g. one kind of question)."""
        return ImageUse(*(tuple(v[i] for i in indices) for v in (self.own_nll, self.other_nll, self.answer_tokens)))

    def as_dict(self) -> dict[str, Any]:
        return {"own_image_loss": round(self.own, 4), "other_image_loss": round(self.other, 4),
                "gap": round(self.gap, 4), "gap_se": round(self.gap_se, 4), "samples": len(self.own_nll),
                "answer_tokens": self.tokens}


def other_scene_order(scenes: Sequence[Hashable]) -> list[int]:
    """For each sample i, the index of a sample from another scene: the first one from i + n//2 onward
    (cyclic), so that the swapped images are spread over the set rather than a neighbour's."""
    n = len(scenes)
    if len(set(scenes)) < 2:
        raise ValueError(f"image use needs samples from at least two scenes; all {n} come from one "
                         "(pass records from several episodes)")
    order = []
    for i in range(n):
        j = (i + n // 2) % n
        while scenes[j] == scenes[i]:
            j = (j + 1) % n
        order.append(j)
    return order


def probe_image_use(backend: Any, conversations: Sequence[list[dict]], images: Sequence[Any], scenes: Sequence[Hashable],
                    adapter: bool = True, batch_size: int = 8, max_length: int = 1024) -> ImageUse:
    """Teacher-forced loss on the assistant turns of `conversations` (chat messages, one image placeholder
    in the first user turn), once with `images[i]` and once with the image of `other_scene_order(scenes)[i]`.
    `backend` is a policy.backends.hf.HFBackend; `adapter=False` scores its base model."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from training.micro.base import Collator

    collate = Collator(backend.processor, max_length)
    model = backend.model
    swapped = [images[j] for j in other_scene_order(scenes)]
    nll: dict[str, list[float]] = {"own": [], "other": []}
    tokens: list[int] = []
    ctx = model.disable_adapter() if (not adapter and backend.has_adapter) else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        for name, imgs in (("own", list(images)), ("other", swapped)):
            for at in range(0, len(conversations), batch_size):
                batch = collate.encode(list(conversations[at:at + batch_size]), imgs[at:at + batch_size])
                target = batch.pop("labels")[:, 1:]
                logits = model(**batch).logits[:, :-1].float()
                per_token = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
                nll[name] += per_token.sum(1).tolist()
                if name == "own":
                    tokens += (target != -100).sum(1).tolist()
    return ImageUse(tuple(nll["own"]), tuple(nll["other"]), tuple(tokens))


def dlan_image_use(backend: Any, records: Sequence[dict], root: str | Path, adapter: bool = True,
                   stage: str = "actions") -> ImageUse:
    """`probe_image_use` on D_lan `records`' samples of one stage, in the backend's codec: "actions"
    (plan + action block, every record) or "subtasks" (the subtask list, each episode's first record)."""
    from PIL import Image

    from training.dlan import chat_samples

    if stage not in ("actions", "subtasks"):
        raise ValueError(f"dlan_image_use: stage must be 'actions' or 'subtasks', not {stage!r}")
    samples = list(chat_samples(records, codec=backend.codec, root=root, kinds=(stage,), with_meta=True,
                                load_image=lambda p: Image.open(p).convert("RGB")))
    return probe_image_use(backend, [s["messages"] for s in samples], [s["images"][0] for s in samples],
                           [s["episode"] for s in samples], adapter=adapter)


def world_image_use(backend: Any, world: str | Path, questions: int | None = None, adapter: bool = False) -> dict[str, ImageUse]:
    """`probe_image_use` on a world's held-out image questions (the first `questions`; default all), for
    each kind of question and for all of them ("all"): which parts of a scene the model reads. The
    shipped base, for one, reads the gripper (its coordinates, open or not, what it holds) and not
    where named things are (README, "The micro model")."""
    from PIL import Image

    from training.micro.base import conversation_messages
    from training.micro.world import read_jsonl

    world = Path(world)
    rows = [c for c in read_jsonl(world / "heldout.jsonl") if c["image"]][:questions]
    images = {p: Image.open(world / p).convert("RGB") for p in {c["image"] for c in rows}}
    scored = probe_image_use(backend, [conversation_messages([c], True) for c in rows], [images[c["image"]] for c in rows],
                             [c["image"] for c in rows], adapter=adapter)
    out = {"all": scored}
    for kind in sorted({c["kind"] for c in rows}):  # each sample keeps its swap partner from the whole set
        out[kind] = scored.select([i for i, c in enumerate(rows) if c["kind"] == kind])
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    ap = argparse.ArgumentParser(prog="python -m training.micro.probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--adapter", help="LoRA folder (without it: the model as it is)")
    ap.add_argument("--dlan", help="D_lan folder for the action probe (omit to skip it)")
    ap.add_argument("--records", type=int, default=10, help="D_lan records for the action probe (every k-th, spread over the set)")
    ap.add_argument("--tasks", default="pick_up,pick_and_place,pick_place_lift,pick_up_semantic")
    ap.add_argument("--langs", default="en,es,zh,hi")
    ap.add_argument("--seeds", default="2000000,2000001,2000002", help="scene seeds for the subtask probe (disjoint from training's)")
    ap.add_argument("--base-too", action="store_true", help="also probe with the adapter switched off")
    ap.add_argument("--world", help="a training.micro world folder: also ask where things are in its scenes")
    ap.add_argument("--world-scenes", type=int, default=60, help="training and held-out scenes each for --world")
    ap.add_argument("--image-use", action="store_true",
                    help="also score the true answers with each sample's own image and another scene's "
                         "(--dlan: the picked records' action samples and every episode's subtask list; "
                         "--world: its held-out image questions, kind by kind)")
    a = ap.parse_args(argv)
    if a.image_use and not (a.dlan or a.world):
        ap.error("--image-use scores D_lan samples or world questions: give --dlan DIR or --world DIR")
    from transformers.utils import logging as hf_logging

    from policy.backends.hf import HFBackend
    from training.dlan import read_records

    hf_logging.disable_progress_bar()
    backend = HFBackend.from_pretrained(a.model, adapter=a.adapter)
    out: dict[str, Any] = {"model": a.model, "adapter": a.adapter}
    for label, on in [("adapter", True)] + ([("base", False)] if a.base_too and a.adapter else []):
        res: dict[str, Any] = {}
        if a.dlan:
            records = read_records(a.dlan)
            picked = records[:: max(1, len(records) // a.records)][: a.records]
            probe = probe_actions(backend, picked, a.dlan, adapter=on)
            res["actions"] = {"records": len(picked), "parse_rate": probe.parse_rate, "mean_error_cm": probe.mean_error_cm}
            if a.image_use:
                res["actions"]["image_use"] = dlan_image_use(backend, picked, a.dlan, adapter=on).as_dict()
                res["subtasks_image_use"] = dlan_image_use(backend, records, a.dlan, adapter=on, stage="subtasks").as_dict()
        if a.world:
            res["locations"] = probe_locations(backend, a.world, a.world_scenes, adapter=on and bool(a.adapter))
            if a.image_use:
                res["world_image_use"] = {k: u.as_dict() for k, u in world_image_use(backend, a.world, adapter=on and bool(a.adapter)).items()}
        if not a.tasks:
            out[label] = res
            continue
        rows = probe_subtasks(backend, a.tasks.split(","), a.langs.split(","), [int(s) for s in a.seeds.split(",")], adapter=on)
        res["subtasks"] = {lang: {"exact": float(np.mean([r["exact"] for r in rows if r["lang"] == lang])),
                                  "first": float(np.mean([r["first"] for r in rows if r["lang"] == lang])),
                                  "n": sum(r["lang"] == lang for r in rows)} for lang in a.langs.split(",")}
        res["subtask_examples"] = [{k: r[k] for k in ("instruction", "expected", "said")} for r in rows[:: max(1, len(rows) // 6)]]
        out[label] = res
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
