"""The micro base's vision pretraining: its SigLIP tower learns to see before the language model reads it.

Gemma 3 is built the same way: its SigLIP encoder was pretrained on images on its own, and stays
frozen while the language model learns to read its tokens. Pretrained end to end from random weights
on question answering alone, the micro base never learned where things are: asked for an object's
coordinates, it missed by more than guessing the table's mean position would (README, "The micro
model"), and a few digits of answer text are a weak signal for a tower to learn geometry from.

So the tower and the projector first learn from the simulator's ground truth directly: a probe on the
image tokens the language model will see (`get_image_features`, 16 tokens of the text width)
regresses every thing's table position, the gripper's position, whether it is open and what it holds.
Two probes (`VisionConfig.probe`): `locator`, one attention head per thing and one shared readout, and
`slots`, where image token i alone holds thing i's position and says whose it is.
The probe is thrown away; what stays is a tower whose tokens carry where things are. (That the
language model then learns to read them is a separate question: on the world corpus it has not,
asked only "where is the <thing>?" it does — `training.micro.probe --world` measures it,
`training.micro.binding` runs the second; README, "The micro model".)

As numbered steps (`pretrain_vision`):
1. every scene image (training seeds) goes through the processor once, into one tensor; the held-out
   world scenes are the probe's test set (never trained on);
2. AdamW on the tower, projector and probe (mean squared error, positions in decimetres), warm-up
   and cosine decay;
3. the held-out error in centimetres, against guessing each coordinate's training mean, is measured
   at the end and written to `vision.json`; the model (probe dropped) is saved as an ordinary folder.
No checkpoints: the stage takes minutes, and a killed run starts it again (the recipe marks it done
only after the save).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.micro.world import FLAGS, HELDOUT_SEED_BASE, PICKABLES, THINGS, SceneTruth, read_jsonl

LOCATED = THINGS + FLAGS  # whose (x, y) the probe regresses
HOLDABLE = ("nothing",) + PICKABLES


@dataclass(frozen=True)
class VisionConfig:
    """Pretraining of the vision tower and projector on the world's scene truths."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 64  # images per step
    learning_rate: float = 1e-3  # peak
    warmup_steps: int = 100
    weight_decay: float = 0.01
    eval_every: int = 250  # steps between held-out error lines (0: only at the end)
    probe: str = "locator"  # "locator" (attention finds each thing) or "slots" (image token i holds thing i)
    threads: int = 0  # torch threads (0: torch's default)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 0:
            raise ValueError("VisionConfig: steps and batch_size must be >= 1, eval_every >= 0")
        if self.probe not in PROBES:
            raise ValueError(f"VisionConfig.probe must be one of {', '.join(PROBES)}, got {self.probe!r}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"VisionConfig.learning_rate must be in (0, 1), got {self.learning_rate}")


def scene_targets(t: SceneTruth) -> np.ndarray:
    """What the probe regresses for one scene: x, y of every located thing and x, y, z of the gripper
    (decimetres), then gripper open (0/1) and a one-hot of what it holds."""
    xy = [v * 10 for n in LOCATED for v in t.positions[n][:2]]
    grip = [v * 10 for v in t.gripper_pos]
    held = [float(t.holding == h) for h in HOLDABLE]
    return np.array(xy + grip + [float(t.gripper_open)] + held, np.float32)


def locator(width: int, tokens: int, things: int, rest: int) -> Any:
    """The probe, shaped like what the language model must do with the image tokens.

    One learned query per thing attends over the tokens (a single head) and one readout, shared
    by every thing, turns the attended value into (x, y): so a token has to say what lies in it
    and where, in a form one attention head can find and one map can read — which is what a
    question "where is the carrot?" asks of the language model. The gripper's state is read from
    all tokens at once. (A linear probe on the flattened tokens fits better — 2.9 cm against 4.0 on
    held-out scenes — but says nothing about whether attention can read the tokens. Measured:
    neither tower made the language model pretrained on top answer where things are; README,
    "The micro model".)
    """
    import torch

    class _Locator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.queries = torch.nn.Parameter(torch.randn(things, width) * width**-0.5)
            self.key, self.value = torch.nn.Linear(width, width), torch.nn.Linear(width, width)
            self.xy = torch.nn.Linear(width, 2)
            self.rest = torch.nn.Linear(tokens * width, rest)

        def forward(self, feats: Any) -> Any:  # (batch, tokens, width) -> (batch, 2 * things + rest)
            scores = torch.einsum("nw,btw->bnt", self.queries, self.key(feats)) * width**-0.5
            attended = torch.einsum("bnt,btw->bnw", scores.softmax(-1), self.value(feats))
            return torch.cat([self.xy(attended).flatten(1), self.rest(feats.flatten(1))], 1)

        def extra_loss(self) -> Any:  # what the probe adds to the regression loss of its last forward
            return 0.0

    return _Locator()


def slots(width: int, tokens: int, things: int, rest: int) -> Any:
    """The probe that gives every thing its own image token: token i alone says where thing i is.

    One readout, shared by the first `things` tokens, turns token i into thing i's (x, y), and a
    classifier names each of those tokens' thing (`extra_loss`: cross-entropy against i): so the tower must
    gather thing i's position into token i and mark the token as thing i's. The language model then
    finds a named thing by a fixed key, not by searching the image for what it looks like — what a
    detector's per-class output gives a planner. The gripper's state is read from all tokens.
    """
    import torch

    if things > tokens:
        raise ValueError(f"slots: {things} things need as many image tokens, the model has {tokens} "
                         "(build it with mm_tokens_per_image >= the things, or use VisionConfig.probe='locator')")

    class _Slots(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.xy = torch.nn.Linear(width, 2)
            self.name = torch.nn.Linear(width, things)
            self.rest = torch.nn.Linear(tokens * width, rest)
            self.slot_logits: Any = None  # (batch, things, things) of the last forward

        def forward(self, feats: Any) -> Any:  # (batch, tokens, width) -> (batch, 2 * things + rest)
            self.slot_logits = self.name(feats[:, :things])
            return torch.cat([self.xy(feats[:, :things]).flatten(1), self.rest(feats.flatten(1))], 1)

        def extra_loss(self) -> Any:  # token i must say it is thing i's (weighted to stay a side task)
            logits = self.slot_logits
            return 0.1 * torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.arange(things).repeat(logits.shape[0]))

    return _Slots()


PROBES = {"locator": locator, "slots": slots}


def _images(processor: Any, world: Path, truths: list[SceneTruth]) -> Any:
    """Every scene's image as the tower sees it, one tensor (step 1)."""
    import torch
    from PIL import Image

    chunks = []
    for i in range(0, len(truths), 256):
        imgs = [Image.open(world / t.image).convert("RGB") for t in truths[i : i + 256]]
        chunks.append(processor.image_processor(imgs, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks)


def pretrain_vision(base: str | os.PathLike, world: str | os.PathLike, out: str | os.PathLike,
                    cfg: VisionConfig = VisionConfig(), progress: bool = True) -> dict[str, Any]:
    """Train the tower and projector of the model in `base` to localize; save the whole model to `out`."""
    import torch
    from tqdm import tqdm
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out, world = Path(out), Path(world)
    model = Gemma3ForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(base)

    # 1. every image once through the processor; held-out world scenes are the test set
    truths = [SceneTruth(**r) for r in read_jsonl(world / "scenes.jsonl")]
    train = [t for t in truths if t.seed < HELDOUT_SEED_BASE]
    test = [t for t in truths if t.seed >= HELDOUT_SEED_BASE]
    if not train or not test:
        raise SystemExit(f"training.micro vision: {world}/scenes.jsonl needs training and held-out scenes; run the world stage")
    x_train, x_test = _images(processor, world, train), _images(processor, world, test)
    y_train = torch.tensor(np.stack([scene_targets(t) for t in train]))
    y_test = torch.tensor(np.stack([scene_targets(t) for t in test]))

    # 2. tower + projector + the probe
    probe = PROBES[cfg.probe](model.config.text_config.hidden_size, model.config.mm_tokens_per_image, len(LOCATED),
                    y_train.shape[1] - 2 * len(LOCATED))
    params = [*model.model.vision_tower.parameters(), *model.model.multi_modal_projector.parameters(), *probe.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def predict(x: Any) -> Any:
        return probe(model.get_image_features(x).pooler_output)

    n_xy = 2 * len(LOCATED)

    def heldout_errors() -> tuple[float, float]:
        """Mean |error| in cm of the held-out things' (x, y) and of the gripper's (x, y, z)."""
        with torch.no_grad():
            pred = torch.cat([predict(x_test[i : i + 256]) for i in range(0, len(test), 256)])
        return ((pred[:, :n_xy] - y_test[:, :n_xy]).abs().mean().item() * 10,
                (pred[:, n_xy : n_xy + 3] - y_test[:, n_xy : n_xy + 3]).abs().mean().item() * 10)

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.learning_rate * (s + 1) / cfg.warmup_steps
        return cfg.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))))

    rng = np.random.default_rng(cfg.seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.steps), desc="vision", unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        idx = torch.from_numpy(rng.choice(len(train), size=min(cfg.batch_size, len(train)), replace=False))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = torch.nn.functional.mse_loss(predict(x_train[idx]), y_train[idx]) + probe.extra_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 5))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            model.eval()
            tqdm.write(f"vision step {step + 1}: held-out things {heldout_errors()[0]:.2f} cm", file=sys.stderr)
            model.train()
    seconds = time.perf_counter() - t0

    # 3. held-out error in centimetres, against the training mean
    model.eval()
    err, grip_err = heldout_errors()
    guess = (y_train[:, :n_xy].mean(0) - y_test[:, :n_xy]).abs().mean().item() * 10
    model.save_pretrained(out)
    processor.save_pretrained(out)
    summary = {"config": asdict(cfg), "train_scenes": len(train), "test_scenes": len(test),
               "seconds": round(seconds, 1), "first_loss": float(np.mean(losses[:20])), "final_loss": float(np.mean(losses[-20:])),
               "heldout_xy_error_cm": round(err, 2), "mean_guess_xy_error_cm": round(guess, 2),
               "heldout_gripper_error_cm": round(grip_err, 2), "losses": losses}
    (out / "vision.json").write_text(json.dumps(summary))
    return summary
