"""LoRA fine-tuning of a Gemma 3 VLM on a verbalized dataset (D_lan), with TRL's SFTTrainer + PEFT.

    python -m training.finetune --base google/gemma-3-12b-it --data dlan --out run
    python -m training.finetune --base tiny --data dlan --out run --max-steps 30        # CPU smoke run
    accelerate launch --config_file training/configs/accelerate_zero2.yaml \\
        -m training.finetune --base google/gemma-3-12b-it --data dlan --out run     # many GPUs

Each D_lan step becomes chat samples built by `training.dlan.chat_samples` (through
`policy/prompts.py` only): stage 1 (first image + instruction -> numbered subtasks, once per
episode), stage 2 (current image + subtask -> plan + action block) and the validator
(image after / before the step -> yes / no). The loss is on the
assistant tokens only (TRL's `assistant_only_loss`, with its training variant of the
Gemma 3 chat template that wraps the model turn in `{% generation %}`). A held-out split
by episode gives the eval loss.

Defaults follow the paper: LoRA r=16, alpha=32, dropout 0.05 on the language model's
q/k/v/o/gate/up/down projections (what vLLM serves; `--lora-targets all-linear` adds the
SigLIP tower), lr 5e-5, effective batch 8, max length 1024, 1 epoch; bf16 and gradient
checkpointing on GPU.

`--action-codec reserved_tokens` is the VLM2VLA-AT ablation: action digits spelled with
the base model's 10 least-likely tokens (`select_reserved_tokens`); the mapping is saved
with the adapter as action_codec.json. Nothing else changes.

The output folder holds the adapter (PEFT format), action_codec.json, training_config.json,
a README.md card (data, hyperparameters, losses, time) and checkpoints/ for `--resume`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NoReturn, Sequence

from policy.prompts import ACTIONS_PREFIX, PLAN_PREFIX

__all__ = [
    "FinetuneConfig",
    "LANGUAGE_MODEL_TARGETS",
    "FinetuneError",
    "split_by_episode",
    "build_samples",
    "select_reserved_tokens",
    "lora_config",
    "finetune",
    "prepare",
    "PreparedRun",
    "main",
]

#: PEFT `target_modules` regex (full match on module names): the language model's projections only.
LANGUAGE_MODEL_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
CHECKPOINTS = "checkpoints"
STAGES = ("subtasks", "actions", "validator")


class FinetuneError(ValueError):
    """A mistake in the inputs of a training run (bad path, malformed data, bad option)."""


@dataclass
class FinetuneConfig:
    """Configuration of `training.finetune` (every field is a CLI flag: --base, --max-steps, ...)."""

    base: str = field(metadata={"help": "base Gemma 3 VLM: hub id or local folder (python -m training.tiny builds one)"})
    data: str = field(metadata={"help": "D_lan folder (data.jsonl + images/) written by the verbalize CLI"})
    out: str = field(metadata={"help": "output folder: adapter, card, checkpoints"})
    action_codec: str = field(default="verbalized", metadata={"help": "verbalized | reserved_tokens (VLM2VLA-AT)"})
    lora_targets: str = field(default="default", metadata={"help": "default (language model q/k/v/o/gate/up/down) | all-linear"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="linear", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    batch_size: int = field(default=8, metadata={"help": "effective batch size (per-device x accumulation x devices)"})
    per_device_batch_size: int = field(default=1, metadata={"help": "micro-batch per device"})
    max_length: int = field(default=1024, metadata={"help": "max tokens per sample (longer ones are truncated)"})
    epochs: float = field(default=1.0, metadata={"help": "epochs over the training split"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: use --epochs)"})
    eval_fraction: float = field(default=0.1, metadata={"help": "fraction of episodes held out for the eval loss"})
    eval_steps: int = field(default=0, metadata={"help": "evaluate every N steps (0: at the end only)"})
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps (a final one is always written)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    logging_steps: int = field(default=1, metadata={"help": "log the loss every N steps"})
    stages: str = field(default="subtasks,actions,validator", metadata={"help": "samples to train on (training.dlan.chat_samples kinds)"})
    subtasks_repeat: int = field(default=1, metadata={"help": "train on each episode's subtask-list sample N times (it has one "
                                                          "sample per episode, the action stage one per step)"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --out"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision (default: on GPU)"})
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "gradient checkpointing (default: on GPU)"})
    reference_samples: int = field(default=32, metadata={"help": "samples of reference text for choosing reserved tokens"})
    num_workers: int = field(default=0, metadata={"help": "data loader workers"})
    report_to: str = field(default="none", metadata={"help": "none | tensorboard | wandb ..."})
    full_finetune: bool = field(default=False, metadata={"help": "train every weight instead of LoRA (for comparison; writes a full model)"})
    cpu_threads: int = field(default=0, metadata={"help": "torch threads on CPU (0: torch's default; 1 is fastest for tiny models on busy machines)"})


# --------------------------------------------------------------------------- data


def _episode_key(ep: Any) -> str:
    return hashlib.sha1(str(ep).encode()).hexdigest()


def split_by_episode(records: Sequence[dict], eval_fraction: float) -> tuple[list[dict], list[dict]]:
    """Deterministic train/eval split by whole episodes (ordered by a hash of the episode id)."""
    episodes = sorted({str(r["episode"]) for r in records}, key=_episode_key)
    n_eval = 0 if eval_fraction <= 0 or len(episodes) < 2 else max(1, round(eval_fraction * len(episodes)))
    held = set(episodes[:n_eval])
    return [r for r in records if str(r["episode"]) not in held], [r for r in records if str(r["episode"]) in held]


def build_samples(
    records: Iterable[dict], root: str | Path, codec: Any = None, stages: Sequence[str] = STAGES, subtasks_repeat: int = 1
) -> list[dict]:
    """D_lan records -> chat samples {"messages", "images"} (images as file paths), via the
    verbalization pipeline's one definition (`training.dlan.chat_samples`, built on policy.prompts).
    `subtasks_repeat` > 1 adds each subtask-list sample that many times in all (for training only:
    an episode has one, against one action sample per step)."""
    from training.dlan import chat_samples

    records = list(records)
    samples = list(chat_samples(records, codec=codec, root=root, kinds=tuple(stages)))
    if "subtasks" in stages and subtasks_repeat > 1:
        samples += list(chat_samples(records, codec=codec, root=root, kinds=("subtasks",))) * (subtasks_repeat - 1)
    return samples


def to_dataset(samples: list[dict]):
    """A `datasets.Dataset` with `messages` and lazily decoded `images` (what SFTTrainer takes for VLMs)."""
    from datasets import Dataset, Image, Sequence as DSequence

    rows = {"messages": [s["messages"] for s in samples], "images": [[str(i) for i in s["images"]] for s in samples]}
    return Dataset.from_dict(rows).cast_column("images", DSequence(Image()))


# --------------------------------------------------------------------------- reserved tokens (VLM2VLA-AT)


def _reference_texts(samples: list[dict], processor: Any, n: int) -> list[str]:
    texts = []
    for s in samples[:n]:
        texts.append(processor.apply_chat_template(s["messages"], tokenize=False))
    return texts


def select_reserved_tokens(model: Any, processor: Any, reference_texts: Sequence[str], k: int = 10) -> tuple[list[str], dict]:
    """The base model's `k` least-likely tokens, usable as digit spellings.

    Method: run the un-tuned model over the reference text (rendered training samples,
    images left out) and average each vocabulary token's log-probability over every
    position; rank ascending. Excluded: special/added/control tokens, byte-fallback pieces,
    pieces with spaces ('▁'), brackets, commas, digits, '.', non-printable characters or a
    grammar word (ReservedTokensCodec's constraints), and pieces that do not stay single
    tokens when written next to each other as the codec writes them, and pieces that occur
    inside the grammar's words or anywhere in the reference text (so decoding is unambiguous).
    """
    import torch

    tok = getattr(processor, "tokenizer", processor)
    mean_lp, count = _mean_logprobs(model, tok, reference_texts)
    vocab_n = min(len(tok), mean_lp.shape[0])
    special = set(tok.all_special_ids) | {i for i in getattr(tok, "added_tokens_decoder", {}) or {}}
    chosen: list[str] = []
    ids_chosen: list[int] = []
    for i in torch.argsort(mean_lp[:vocab_n]).tolist():  # least likely first
        text = None if i in special else _reservable_piece(tok, i, reference_texts)
        if text is None or not _spells_cleanly(tok, chosen + [text]):
            continue
        chosen.append(text)
        ids_chosen.append(i)
        if len(chosen) == k:
            break
    if len(chosen) < k:
        raise FinetuneError(f"the base tokenizer has only {len(chosen)} usable rarely-used tokens; {k} are needed")
    info = {
        "method": "lowest mean log-probability under the un-tuned base model over the rendered training samples",
        "reference_tokens": count,
        "token_ids": ids_chosen,
        "mean_logprob": [float(mean_lp[i]) for i in ids_chosen],
    }
    return chosen, info


def _mean_logprobs(model: Any, tok: Any, reference_texts: Sequence[str]) -> tuple[Any, int]:
    """Each vocabulary token's log-probability under `model`, averaged over every position of the
    reference texts (images left out, 1024 tokens each at most); and the number of positions."""
    import torch

    device = next(model.parameters()).device
    total = None
    count = 0
    model.eval()
    with torch.no_grad():
        for text in reference_texts:
            text = text.replace(getattr(tok, "boi_token", "<start_of_image>") or "<start_of_image>", "")
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :1024].to(device)
            logits = model(input_ids=ids).logits[0].float()
            lp = torch.log_softmax(logits, dim=-1).sum(0)
            total = lp if total is None else total + lp
            count += logits.shape[0]
    if total is None:
        raise FinetuneError("no reference text to rank tokens by; the dataset is empty")
    return (total / count).cpu(), count


def _reservable_piece(tok: Any, i: int, reference_texts: Sequence[str]) -> str | None:
    """Token `i`'s text when it may spell a digit (select_reserved_tokens' exclusions, but the
    spelling check), else None."""
    from policy.language import ReservedTokensCodec

    piece = tok.convert_ids_to_tokens(i)
    if not isinstance(piece, str) or not piece or piece.startswith("<") and piece.endswith(">"):
        return None
    if any(c in piece for c in "▁Ġ[],.") or any(c.isdigit() or c.isspace() or not c.isprintable() for c in piece):
        return None
    text = tok.decode([i])
    if text != piece or text.lower() in _STAGE_PREFIXES or any(text in t for t in reference_texts):
        return None  # must not occur inside a stage prefix nor anywhere in the reference text
    try:
        ReservedTokensCodec([text] + [f"\x00{j}" for j in range(9)])  # the codec's own rules: characters, grammar words
    except ValueError as e:
        if repr(text) in str(e):
            return None
    return text


_STAGE_PREFIXES = (PLAN_PREFIX + ACTIONS_PREFIX).lower()  # "plan: actions: " (the grammar's words are the codec's check)


def _spells_cleanly(tok: Any, pieces: list[str]) -> bool:
    """Numbers written as the codec writes them (' <d><d>.<d> cm', ' <d>.<d> cm') tokenize into exactly one
    token per digit piece: the space before the number stays its own token and nothing merges across pieces."""
    for a in pieces:
        for b in pieces:
            for digits in ([a, b, ".", a], [a, ".", b]):
                got = [tok.decode([t]) for t in tok(" " + "".join(digits) + " cm", add_special_tokens=False)["input_ids"]]
                n = len(digits) + 1
                if got[:n] != [" ", *digits] or "".join(got[n:]) != " cm":
                    return False
    return True


# --------------------------------------------------------------------------- model set-up


def lora_config(cfg: FinetuneConfig):
    from peft import LoraConfig

    if cfg.lora_targets == "default":
        targets: Any = LANGUAGE_MODEL_TARGETS
    elif cfg.lora_targets == "all-linear":
        targets = "all-linear"
    else:
        raise FinetuneError(f"unknown --lora-targets {cfg.lora_targets!r}; choose default or all-linear")
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process that writes the run's files and prints (rank 0 of torchrun,
    `accelerate launch` or deepspeed; the only process of a plain run). Every process trains."""
    return int(os.environ.get("RANK", "0")) == 0


def _check_launch() -> None:
    """Refuse the one launch that silently trains on a single process: `accelerate launch --cpu
    --num_processes N` (accelerate 1.15 then uses its one-process launcher unless given an MPI hostfile;
    it sets MASTER_ADDR for N > 1 but no WORLD_SIZE)."""
    env = os.environ
    mpi = any(k in env for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"))
    if env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env and "WORLD_SIZE" not in env and not mpi:
        raise FinetuneError(
            "`accelerate launch --cpu --num_processes N` starts only one process; for N CPU processes use "
            "`accelerate launch --multi_gpu --num_processes N -m training.finetune ...` (its torchrun launcher, "
            "gloo on a machine without GPUs) or `torchrun --nproc-per-node N -m training.finetune ...`"
        )


def _all_succeeded(ok: bool) -> bool:
    """Whether every process got here with `ok` (a MIN all-reduce; just `ok` without a process group),
    so that no rank exits 0 while another failed writing the output."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return ok
    flag = torch.tensor([int(ok)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _sft_config(cfg: FinetuneConfig, on_gpu: bool, has_eval: bool):
    from trl import SFTConfig

    per_step = cfg.per_device_batch_size * _world_size()
    if cfg.batch_size % per_step:
        raise FinetuneError(
            f"--batch-size {cfg.batch_size} is not a multiple of per-device batch {cfg.per_device_batch_size} x {_world_size()} devices"
        )
    accum = cfg.batch_size // per_step
    bf16 = on_gpu if cfg.bf16 is None else cfg.bf16
    gc = on_gpu if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing
    eval_strategy = "no" if not has_eval else ("steps" if cfg.eval_steps > 0 else "no")
    return SFTConfig(
        output_dir=str(Path(cfg.out) / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        max_length=cfg.max_length,
        assistant_only_loss=True,
        packing=False,
        bf16=bf16,
        fp16=False,
        activation_checkpointing=gc,  # (transformers 5.23's name for gradient checkpointing)
        activation_checkpointing_kwargs={"use_reentrant": False} if gc else None,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps if cfg.eval_steps > 0 else None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        remove_unused_columns=False,
        dataloader_num_workers=cfg.num_workers,
        ddp_find_unused_parameters=False,  # every trainable weight is used each step; skips DDP's extra graph walk
        use_cpu=not on_gpu,
        disable_tqdm=not sys.stderr.isatty(),
    )


# --------------------------------------------------------------------------- the run


@dataclass
class PreparedRun:
    """Everything set up for a run, before training (tests inspect it)."""

    cfg: FinetuneConfig
    trainer: Any
    codec: Any
    codec_info: dict
    train_records: list
    eval_records: list
    train_samples: list
    eval_samples: list
    resume_from: str | None
    t0: float


def prepare(cfg: FinetuneConfig) -> PreparedRun:
    """Validate inputs, load the base model, choose the codec, build the datasets and the SFTTrainer."""
    from trl import SFTTrainer

    t0 = time.time()
    _check_launch()
    stages, last = _check_config(cfg)
    out = Path(cfg.out)
    train_records, eval_records = _read_split(cfg)
    model, processor, on_gpu = _load_base(cfg)
    # The SFT config sets up the process group (under torchrun / accelerate launch), so it comes first.
    args = _sft_config(cfg, on_gpu, bool(eval_records))
    out.mkdir(parents=True, exist_ok=True)
    codec, codec_info = _choose_codec(cfg, args, model, processor, train_records, stages)

    train_samples = build_samples(train_records, cfg.data, codec, stages, cfg.subtasks_repeat)
    eval_samples = build_samples(eval_records, cfg.data, codec, stages) if eval_records else []
    train_ds, eval_ds = to_dataset(train_samples), (to_dataset(eval_samples) if eval_samples else None)

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=None if cfg.full_finetune else lora_config(cfg),
    )
    return PreparedRun(cfg, trainer, codec, codec_info, train_records, eval_records, train_samples, eval_samples,
                       last if cfg.resume else None, t0)


def _check_config(cfg: FinetuneConfig) -> tuple[tuple[str, ...], str | None]:
    """The flags that can be refused before anything loads: codec, stages, --out and --resume.
    Returns the stages and the last checkpoint in --out (None when there is none)."""
    from transformers.trainer_utils import get_last_checkpoint

    if cfg.action_codec not in ("verbalized", "reserved_tokens"):
        raise FinetuneError(f"unknown --action-codec {cfg.action_codec!r}; choose verbalized or reserved_tokens")
    stages = tuple(s.strip() for s in cfg.stages.split(",") if s.strip())
    if not stages or set(stages) - set(STAGES):
        raise FinetuneError(f"--stages {cfg.stages!r}: use a comma-separated subset of {','.join(STAGES)}")
    if cfg.subtasks_repeat < 1:
        raise FinetuneError(f"--subtasks-repeat {cfg.subtasks_repeat}: use 1 (no repeat) or more")
    out = Path(cfg.out)
    ckpt_dir = out / CHECKPOINTS
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if cfg.resume and last is None:
        raise FinetuneError(f"--resume: no checkpoint in {ckpt_dir}; run without --resume to start")
    if not cfg.resume and ((out / "adapter_config.json").exists() or (out / "model.safetensors").exists()):
        raise FinetuneError(f"{out} already holds an adapter; choose another --out or pass --resume")
    return stages, last


def _read_split(cfg: FinetuneConfig) -> tuple[list[dict], list[dict]]:
    """The D_lan records of --data, split by whole episode into train and held-out."""
    from training.dlan import DlanError, read_records

    try:
        records = read_records(cfg.data)
    except DlanError as e:
        raise FinetuneError(str(e)) from None
    return split_by_episode(records, cfg.eval_fraction)


def _load_base(cfg: FinetuneConfig) -> tuple[Any, Any, bool]:
    """The base model (bfloat16 on this process's GPU, float32 on CPU) and its processor; and whether on a GPU."""
    import torch

    from policy.model import ModelLoadError, load_model

    on_gpu = torch.cuda.is_available()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if on_gpu else "cpu"  # one GPU per process under accelerate
    try:
        lm = load_model(cfg.base, device=device, dtype=torch.bfloat16 if on_gpu else torch.float32)
    except ModelLoadError as e:
        raise FinetuneError(str(e)) from None
    lm.model.config.use_cache = False
    return lm.model, lm.processor, on_gpu


def _choose_codec(
    cfg: FinetuneConfig, args: Any, model: Any, processor: Any, train_records: list[dict], stages: tuple[str, ...]
) -> tuple[Any, dict]:
    """The action codec to train, saved into --out (action_codec.json), and what the card says of it.
    reserved_tokens: the base model's rarest tokens (select_reserved_tokens), or the saved choice on --resume."""
    from policy.language import get_codec
    from policy.model import save_codec

    out = Path(cfg.out)
    if cfg.action_codec != "reserved_tokens":
        codec = get_codec("verbalized")
        if is_main_process():
            save_codec(codec, out)
        return codec, {}
    saved = out / "action_codec.json"
    # The main process chooses (and saves) the digit tokens first; the others read its choice, so all
    # ranks train one codec even where bf16 GPU kernels could rank near-tied tokens differently.
    with args.main_process_first(desc="choosing reserved tokens"):
        if saved.exists() and (cfg.resume or not is_main_process()):
            codec_info = json.loads(saved.read_text())
            codec = get_codec("reserved_tokens", codec_info.pop("digit_tokens"))
            codec_info.pop("name", None)
        else:
            ref = _reference_texts(build_samples(train_records, cfg.data, None, stages), processor, cfg.reference_samples)
            digits, codec_info = select_reserved_tokens(model, processor, ref)
            codec = get_codec("reserved_tokens", digits)
            if is_main_process():
                save_codec(codec, out, **codec_info)
    return codec, codec_info


def finetune(cfg: FinetuneConfig | PreparedRun) -> dict:
    """Run one LoRA fine-tune; returns the summary written to the card."""
    from policy.model import save_codec

    run = cfg if isinstance(cfg, PreparedRun) else prepare(cfg)
    cfg, trainer, codec, codec_info = run.cfg, run.trainer, run.codec, run.codec_info
    train_records, eval_records, train_samples, eval_samples = run.train_records, run.eval_records, run.train_samples, run.eval_samples
    out, t0, args = Path(cfg.out), run.t0, trainer.args
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    # (the Trainer writes a checkpoint at the last step too, so --resume continues from where this run stopped)
    eval_metrics = trainer.evaluate() if trainer.eval_dataset is not None else {}

    # Every rank calls save_model (under FSDP / ZeRO-3 it gathers the weights); the trainer writes on rank 0 only.
    trainer.save_model(str(out))  # PEFT format (adapter_config.json + adapter_model.safetensors), or a full model
    summary = {
        "base": cfg.base,
        "data": str(Path(cfg.data).resolve()),
        "episodes": {"train": len({r["episode"] for r in train_records}), "eval": len({r["episode"] for r in eval_records})},
        "samples": {"train": len(train_samples), "eval": len(eval_samples)},
        "action_codec": codec.name,
        "digit_tokens": getattr(codec, "digit_tokens", None),
        "config": dataclasses.asdict(cfg),
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
        "device": str(args.device),
        "world_size": _world_size(),
        "distributed": str(trainer.accelerator.distributed_type).split(".")[-1],  # NO, MULTI_CPU, MULTI_GPU, DEEPSPEED, FSDP
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "eval_loss": eval_metrics.get("eval_loss"),
        "losses": [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h],
        "eval_losses": [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in trainer.state.log_history if "eval_loss" in h],
        "seconds": round(time.time() - t0, 1),
    }
    ok = False
    try:
        if is_main_process():
            save_codec(codec, out, **codec_info)
            (out / "training_config.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
            (out / "README.md").write_text(_card(summary))
        ok = True
    finally:
        if not _all_succeeded(ok) and ok:  # this rank is fine, another one failed (its own error says why)
            raise RuntimeError("another training process failed; see its error above")
    return summary


def _card(s: dict) -> str:
    """The output folder's README.md: what was trained (front matter), on what, how, and the losses."""
    c = s["config"]
    losses = s["losses"]
    first, last = (losses[0]["loss"], losses[-1]["loss"]) if losses else (float("nan"), float("nan"))
    shown = losses[:: max(1, math.ceil(len(losses) / 20))]
    if losses and shown[-1] is not losses[-1]:
        shown.append(losses[-1])
    rows = "\n".join(f"| {h['step']} | {h['loss']:.4f} |" for h in shown)
    ev = f"{s['eval_loss']:.4f}" if s["eval_loss"] is not None else "n/a (no held-out episodes)"
    front, method = _card_front(s)
    return front + f"""

## Data
- episodes: {s['episodes']['train']} train, {s['episodes']['eval']} held out (split by episode)
- samples: {s['samples']['train']} train, {s['samples']['eval']} eval (stages: {c['stages']})
- action codec: `{s['action_codec']}`{'' if not s['digit_tokens'] else ' — digits spelled ' + ', '.join(f'{i}={t!r}' for i, t in enumerate(s['digit_tokens']))}

## Hyperparameters
{method}
- lr {c['learning_rate']} ({c['lr_scheduler']}, warm-up {c['warmup_steps']} steps), effective batch {c['batch_size']}
  ({c['per_device_batch_size']} per device x {s['gradient_accumulation_steps']} accumulation x {s['world_size']} devices)
- max length {c['max_length']}, epochs {c['epochs']}, max steps {c['max_steps']}, seed {c['seed']}
- device {s['device']}, bf16 {s['bf16']}, gradient checkpointing {s['gradient_checkpointing']}
- trainable parameters {s['trainable_parameters']:,} of {s['total_parameters']:,}
- loss on assistant tokens only

## Results
- steps: {s['global_step']}; training loss first {first:.4f}, last {last:.4f}, mean {s['train_loss']:.4f}
- eval loss: {ev}
- wall time: {s['seconds']} s

| step | loss |
|---|---|
{rows}
"""


def _card_front(s: dict) -> tuple[str, str]:
    """The card's front matter and title for an adapter or a fully finetuned model; and its method line."""
    c = s["config"]
    if c.get("full_finetune"):  # every weight trained: a whole model, not an adapter
        front = f"""---
library_name: transformers
base_model: {s['base']}
tags: [vlm2vla, full-finetune, trl, sft, robotics]
---
# VLM2VLA fully finetuned model

Every weight of `{s['base']}` trained with `python -m training.finetune --full-finetune` on the
verbalized robot dataset `{s['data']}` (the comparison run for LoRA). Load it with
`policy.model.load_model(this_folder)`.
"""
        method = "- full finetune: every weight trained"
    else:
        front = f"""---
library_name: peft
base_model: {s['base']}
tags: [vlm2vla, lora, trl, sft, robotics]
---
# VLM2VLA LoRA adapter

LoRA adapter for `{s['base']}` trained with `python -m training.finetune` on the verbalized
robot dataset `{s['data']}`. Load it with `policy.model.load_model(base, adapter=this_folder)`,
or serve it with `vllm serve {s['base']} --enable-lora --lora-modules vlm2vla=<this folder>`.
"""
        method = f"- LoRA r={c['lora_r']}, alpha={c['lora_alpha']}, dropout={c['lora_dropout']}, targets: {c['lora_targets']}"
    return front, method


def parse_args(argv: list[str] | None = None) -> FinetuneConfig:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(FinetuneConfig, prog="python -m training.finetune", description=__doc__.split("\n\n")[0])
    (cfg,) = parser.parse_args_into_dataclasses(args=argv)
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        import torch

        if not torch.cuda.is_available() and cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        s = finetune(cfg)
        _all_ranks_done()
    except FinetuneError as e:
        if is_main_process():  # the same inputs fail the same way on every rank: say it once
            print(f"error: {e}", file=sys.stderr)
        return 2
    if is_main_process():
        print(json.dumps({k: s[k] for k in ("global_step", "train_loss", "eval_loss", "seconds")}))
        print(f"{'model' if cfg.full_finetune else 'adapter'} written to {cfg.out}")
    return 0


def _all_ranks_done() -> None:
    """Wait until every rank has finished (rank 0 still writes the card and summary) before any leaves."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _exit_process(code: int) -> NoReturn:
    """End the command with `code`. A rank of a multi-process run ends without interpreter teardown
    (`os._exit`, after flushing its output). Why: here the trainer keeps the gloo process group alive
    past `destroy_process_group` (its threads still run after it), so the group is torn down during
    interpreter finalization, and that teardown aborted two CI runs' rank 1 (SIGABRT, 'terminate called
    without an active exception') after the adapter was written. By now rank 0 has written and closed
    every file and every rank has passed the final barrier or failed with its own message: nothing is
    left that the OS does not clean up."""
    if _world_size() == 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run() -> NoReturn:
    try:
        code = main()
    except Exception:  # reported as Python itself would, with the same exit code (argparse's exits pass through)
        traceback.print_exc()
        code = 1
    _exit_process(code)


if __name__ == "__main__":
    _run()
