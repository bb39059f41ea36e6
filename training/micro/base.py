"""The micro base model: a small Gemma 3 VLM, built here and pretrained on the world corpus.

The stand-in for Gemma's pretraining. `build_base` trains a BPE tokenizer on the world
corpus plus the project's prompts and action language (so the later LoRA stage has tokens
for it, as Gemma's 262k vocabulary does) and initialises a `Gemma3ForConditionalGeneration`
of `MICRO_SIZE`; `pretrain` trains the model on the world's conversations with the loss on
the model's turns only (every weight, or all but a tower `training.micro.vision` already
taught: `freeze_vision`), and saves an ordinary Hugging Face folder.

Pretraining, as numbered steps (`pretrain`):
1. read the conversations; split them into image and text-only batches (a batch is one or
   the other, so the vision tower runs on full batches);
2. each step renders a batch through the chat template, tokenizes it with character
   offsets and keeps the loss on the answer spans (each model turn and its <end_of_turn>);
3. AdamW with warm-up and cosine decay; a checkpoint (model, optimizer, step) every
   `save_every` steps, so a killed run resumes where it stopped;
4. the final weights and processor go to `out`, with `pretrain.json` (losses, time, tokens/s).
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

from training.micro.world import corpus_text, read_jsonl
from training.tiny import Gemma3Size, build_gemma3, tokenizer_corpus, train_tokenizer

#: ~4.5 M parameters: 4 text layers of width 256, a 3-layer SigLIP tower on 64 px images (8 px
#: patches pooled 2x2 into 16 image tokens). Sized so pretraining runs at ~1-2 s a step of 16
#: conversations on 2 CPU cores; 64 unpooled image tokens cost 3x the time for little gain.
MICRO_SIZE = Gemma3Size(
    hidden=256, intermediate=640, layers=4, heads=4, kv_heads=2, head_dim=64, sliding_window=512,
    vision_hidden=128, vision_intermediate=384, vision_layers=3, vision_heads=4,
    image_size=64, patch_size=8, mm_tokens_per_image=16,
)
MICRO_VOCAB = 3072


def build_base(world: str | os.PathLike, out: str | os.PathLike, size: Gemma3Size = MICRO_SIZE,
               vocab: int = MICRO_VOCAB, seed: int = 0, split_digits: bool = False) -> Path:
    """A randomly initialised micro Gemma 3 with a tokenizer trained on `world` and the project's prompts
    (`split_digits`: numbers one digit a token, as Gemma's; `training.tiny.train_tokenizer`)."""
    lines = list(corpus_text(world)) + tokenizer_corpus(n=1500, seed=seed)
    return build_gemma3(out, train_tokenizer(lines, vocab_size=vocab, split_digits=split_digits), size, seed=seed)


@dataclass(frozen=True)
class PretrainConfig:
    """Full-parameter pretraining on the world corpus."""

    steps: int = 1500  # optimizer steps
    batch_size: int = 16  # conversations per step
    learning_rate: float = 1e-3  # peak; a small model from scratch wants a high rate
    warmup_steps: int = 60
    weight_decay: float = 0.01
    max_length: int = 256  # tokens per conversation (longer ones are cut)
    save_every: int = 200  # checkpoint period, steps
    freeze_vision: bool = False  # keep the tower as `pretrain_vision` left it (Gemma 3 freezes SigLIP too)
    threads: int = 0  # torch threads (0: torch's default)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("PretrainConfig: steps and batch_size must be >= 1")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"PretrainConfig.learning_rate must be in (0, 1), got {self.learning_rate}")


def conversation_messages(turns: list[dict[str, str]], with_image: bool) -> list[dict[str, Any]]:
    """Chat messages of one conversation (the image, if any, opens the first user turn)."""
    from policy.prompts import assistant_message, user_message

    msgs: list[dict[str, Any]] = []
    for i, t in enumerate(turns):
        msgs.append(user_message(t["question"], images=1 if (with_image and i == 0) else 0))
        msgs.append(assistant_message(t["answer"]))
    return msgs


class Collator:
    """Conversations -> model inputs with labels on the model's turns only (step 2)."""

    MODEL_TURN = "<start_of_turn>model\n"
    END = "<end_of_turn>"

    def __init__(self, processor: Any, max_length: int) -> None:
        self.processor = processor
        self.tok = processor.tokenizer
        self.max_length = max_length
        self.image_token_id = self.tok.convert_tokens_to_ids("<image_soft_token>")

    def answer_spans(self, text: str) -> list[tuple[int, int]]:
        spans, at = [], 0
        while (i := text.find(self.MODEL_TURN, at)) >= 0:
            start = i + len(self.MODEL_TURN)
            end = text.find(self.END, start)
            end = len(text) if end < 0 else end + len(self.END)
            spans.append((start, end))
            at = end
        return spans

    def __call__(self, convs: list[dict[str, Any]], root: Path) -> dict[str, Any]:
        from PIL import Image

        with_image = convs[0]["image"] is not None
        images = [Image.open(root / c["image"]).convert("RGB") for c in convs] if with_image else None
        return self.encode([conversation_messages(c["turns"], with_image) for c in convs], images)

    def encode(self, conversations: list[list[dict[str, Any]]], images: list[Any] | None) -> dict[str, Any]:
        """Chat messages (one image each, or `images` None for text only) -> a labelled batch."""
        import torch

        texts = []
        for messages in conversations:
            text = self.processor.apply_chat_template(messages, tokenize=False)
            texts.append(text.replace("<start_of_image>", self.processor.full_image_sequence) if images else text)
        enc = self.tok(texts, return_offsets_mapping=True, add_special_tokens=False, padding=True,
                       truncation=True, max_length=self.max_length, return_tensors="pt")
        labels = torch.full_like(enc["input_ids"], -100)
        for b, text in enumerate(texts):
            spans = self.answer_spans(text)
            for j, (s, e) in enumerate(enc["offset_mapping"][b].tolist()):
                if e > s and any(a <= s < z for a, z in spans):
                    labels[b, j] = enc["input_ids"][b, j]
        labels[enc["attention_mask"] == 0] = -100
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
        if images:
            batch["pixel_values"] = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
            batch["token_type_ids"] = (enc["input_ids"] == self.image_token_id).long()
        return batch


def _batches(convs: list[dict[str, Any]], batch_size: int, rng: np.random.Generator):
    """Endless shuffled batches, each all-image or all-text (step 1)."""
    groups = [[c for c in convs if c["image"] is not None], [c for c in convs if c["image"] is None]]
    groups = [g for g in groups if g]
    weights = np.array([len(g) for g in groups], float)
    orders = [list(rng.permutation(len(g))) for g in groups]
    while True:
        k = int(rng.choice(len(groups), p=weights / weights.sum()))
        if len(orders[k]) < batch_size:
            orders[k] += list(rng.permutation(len(groups[k])))
        take, orders[k] = orders[k][:batch_size], orders[k][batch_size:]
        yield [groups[k][i] for i in take]


def pretrain(base: str | os.PathLike, world: str | os.PathLike, out: str | os.PathLike,
             cfg: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict[str, Any]:
    """Train every weight of the model in `base` on `world`/train.jsonl; save to `out` (resumable)."""
    import torch
    from tqdm import tqdm
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out, world = Path(out), Path(world)
    ckpt = out / "checkpoint"
    resume = (ckpt / "state.pt").exists()
    model = Gemma3ForConditionalGeneration.from_pretrained(ckpt if resume else base, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(base)
    model.train()
    if cfg.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    step, losses, tokens, seconds = 0, [], 0, 0.0
    if resume:
        state = torch.load(ckpt / "state.pt", weights_only=True)  # tensors and numbers only: no pickle code runs
        opt.load_state_dict(state["optimizer"])
        step, losses, tokens, seconds = state["step"], state["losses"], state["tokens"], state["seconds"]
    convs = list(read_jsonl(world / "train.jsonl"))
    rng = np.random.default_rng([cfg.seed, step])  # a resumed run draws fresh batches from where it is
    batches = _batches(convs, cfg.batch_size, rng)
    collate = Collator(processor, cfg.max_length)

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.learning_rate * (s + 1) / cfg.warmup_steps
        frac = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    bar = tqdm(total=cfg.steps, initial=step, desc="pretrain", unit="step", disable=not progress, file=sys.stderr)
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = collate(next(batches), world)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seconds += time.perf_counter() - t0
        tokens += int(batch["attention_mask"].sum())
        losses.append(round(float(loss.detach()), 4))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if step % cfg.save_every == 0 and step < cfg.steps:
            _checkpoint(model, opt, ckpt, dict(step=step, losses=losses, tokens=tokens, seconds=seconds))
    bar.close()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    summary = {
        "config": asdict(cfg), "steps": step, "seconds": round(seconds, 1), "tokens": tokens,
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1), "first_loss": float(np.mean(losses[:20])),
        "final_loss": float(np.mean(losses[-20:])), "losses": losses,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out / "pretrain.json").write_text(json.dumps(summary))
    if ckpt.exists():
        import shutil

        shutil.rmtree(ckpt)
    return summary


def _checkpoint(model: Any, opt: Any, ckpt: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint beside, then swap it in: a kill mid-write leaves the previous one whole."""
    import shutil

    import torch

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save({**state, "optimizer": opt.state_dict()}, tmp / "state.pt")
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)
