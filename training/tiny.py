"""A tiny Gemma 3 VLM for tests and CPU smoke runs: random weights, a real processor.

    python -m training.tiny --out tiny

writes an ordinary Hugging Face folder that `AutoModelForImageTextToText.from_pretrained`
and `AutoProcessor.from_pretrained` load (and so does `policy.model.load_model`):

- `Gemma3ForConditionalGeneration` with the real architecture at toy size (2 text layers,
  hidden 64; a 1-layer SigLIP tower on 32x32 images; 4 soft tokens per image).
- `Gemma3Processor` = `Gemma3ImageProcessor` + `GemmaTokenizer` whose BPE vocabulary is
  trained here with the `tokenizers` library on the project's own prompts and action
  language (byte fallback for everything else), with Gemma's special tokens
  (<pad> <eos> <bos> <unk> <mask>, <start_of_turn> <end_of_turn>, <start_of_image>
  <end_of_image> <image_soft_token>, <unused0..>) and Gemma 3's chat template (the one
  TRL recognises, so SFTTrainer's assistant-only loss works exactly as for the real model).

Nothing is downloaded; it builds in a few seconds and is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["build_tiny", "build_gemma3", "Gemma3Size", "train_tokenizer", "TINY_SPECIAL_TOKENS", "gemma3_chat_template", "tokenizer_corpus"]

IMAGE_SIZE = 32
PATCH_SIZE = 8
MM_TOKENS_PER_IMAGE = 4  # sqrt(4)=2 divides IMAGE_SIZE // PATCH_SIZE = 4
N_UNUSED = 32
BPE_VOCAB = 1024
RARE_SYMBOLS = "☀☁☂☃☄★☆☇☈☉☊☋☌☍☎☏☐☑☒☓♔♕♖♗♘♙♚♛♜♝"

# Gemma's layout for the low ids; the multimodal tokens follow the turn markers here
# (the real model has them at 255999/256000/262144; ids are read from the config anyway).
TINY_SPECIAL_TOKENS = (
    ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[@BOS@]"]
    + [f"<unused{i}>" for i in range(N_UNUSED)]
    + ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
)


def gemma3_chat_template() -> str:
    """Gemma 3's chat template, byte-identical to the one TRL ships (and the hub model uses)."""
    try:
        from trl.chat_template_utils import gemma3_chat_template as tpl

        return tpl
    except Exception:  # pragma: no cover - trl is a requirement; keep a copy for robustness
        return _GEMMA3_TEMPLATE


_GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"
)

_OBJECTS = ["carrot", "plate", "spoon", "pot", "towel", "banana", "cup", "bowl", "sponge", "lid", "drawer", "knife"]
_PLACES = ["sink", "stove", "table", "counter", "rack", "left burner", "right side"]
_VERBS = ["reach for", "grasp", "lift", "move", "place", "release", "open", "close", "push", "wipe"]
_GENERAL = (
    "The quick brown fox jumps over the lazy dog. What is in the image? A red apple on a wooden table. "
    "How many objects are there? There are three objects. Describe the scene in one sentence. "
    "Is this subtask complete in the image? Answer yes or no, then a short reason. yes: the carrot is held. "
    "no: the gripper is still open. Recoger la zanahoria y ponerla en el plato. Mets la cuillère dans le bol. "
    "Pick up the item above the Japanese flag. 0 1 2 3 4 5 6 7 8 9 10 25 100 3.5 12.7"
)


def tokenizer_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Text covering the prompts and the action language (built through policy/), plus some plain English."""
    from policy import prompts
    from policy.language import plan_phrase, verbalize_actions

    rng = np.random.default_rng(seed)
    lines = [_GENERAL] * 3 + ["user\nmodel\n"] * 50
    for _ in range(n):
        obj, place = rng.choice(_OBJECTS), rng.choice(_PLACES)
        instruction = f"put the {obj} on the {place}"
        subtasks = [f"{v} the {obj}" for v in rng.choice(_VERBS, size=3, replace=False)]
        T = int(rng.integers(1, 8))
        deltas = rng.normal(0, 0.01, size=(T, 3))
        gripper = (rng.random(T) > 0.3).astype(float)
        actions = verbalize_actions(deltas, gripper)
        plan = plan_phrase(deltas.sum(0), "close" if gripper[-1] < 0.5 else None)
        lines += [
            prompts.subtasks_prompt(instruction),
            prompts.format_subtasks(subtasks),
            prompts.action_prompt(instruction, subtasks, int(rng.integers(0, 3))),
            prompts.format_plan_actions(plan, actions),
            prompts.validator_prompt(subtasks[0]),
        ]
    return lines


def train_tokenizer(lines: list[str], vocab_size: int = BPE_VOCAB, split_digits: bool = False):
    """BPE trained locally on `lines` (Gemma-style: '▁' for spaces, byte fallback), vocab laid out Gemma-like.

    `split_digits`: no merge ever joins a digit to anything, so every number is spelled one digit a
    token, as Gemma's own tokenizer does. Without it the corpus's frequent numbers become tokens of
    their own ("▁18.5", "▁-7.4"): a coordinate is then one class among hundreds that share nothing,
    which a small model trained here never learned to read off an image (README, "The micro model").
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers.models.gemma.tokenization_gemma import GemmaTokenizer

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    # Split before '▁' while learning, so merges stay within words (like sentencepiece).
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([tok.pre_tokenizer, pre_tokenizers.Digits(individual_digits=True)])
    # RARE_SYMBOLS are in the alphabet but never in the corpus: like the rarely-used pieces of a real
    # vocabulary, they never merge with anything (the VLM2VLA-AT codec spells digits with such tokens).
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, special_tokens=[], initial_alphabet=list(RARE_SYMBOLS)
    )
    tok.train_from_iterator(lines, trainer=trainer)
    learned = json.loads(tok.to_str())["model"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    vocab: dict[str, int] = {}
    for t in TINY_SPECIAL_TOKENS + byte_tokens:
        vocab[t] = len(vocab)
    for t, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]

    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=named,
        add_bos_token=True,
        add_eos_token=False,
    )
    others = ["[@BOS@]", "<start_of_turn>", "<end_of_turn>"] + [f"<unused{i}>" for i in range(N_UNUSED)]
    tokenizer.add_tokens(others, special_tokens=True)
    tokenizer.chat_template = gemma3_chat_template()
    return tokenizer


@dataclass(frozen=True)
class Gemma3Size:
    """The sizes of a small `Gemma3ForConditionalGeneration` (the real architecture, scaled down).

    The defaults are the tiny test model; `training.micro` uses a larger one.
    """

    hidden: int = 64  # text hidden size
    intermediate: int = 128  # text MLP width
    layers: int = 2  # text decoder layers (alternating sliding/full attention, ending on full)
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    sliding_window: int = 64
    vision_hidden: int = 32
    vision_intermediate: int = 64
    vision_layers: int = 1
    vision_heads: int = 2
    image_size: int = IMAGE_SIZE  # pixels (square); the processor resizes every image to this
    patch_size: int = PATCH_SIZE
    mm_tokens_per_image: int = MM_TOKENS_PER_IMAGE  # a square number; its root must divide image_size // patch_size

    def __post_init__(self) -> None:
        side = int(round(self.mm_tokens_per_image**0.5))
        patches = self.image_size // self.patch_size
        if side * side != self.mm_tokens_per_image or patches % side:
            raise ValueError(
                f"mm_tokens_per_image={self.mm_tokens_per_image} must be a square whose root divides "
                f"image_size // patch_size = {patches}"
            )


def build_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny Gemma 3 model + processor into `out_dir` (created) and return its path."""
    return build_gemma3(out_dir, train_tokenizer(tokenizer_corpus(seed=seed)), Gemma3Size(), seed=seed)


def build_gemma3(out_dir: str | Path, tokenizer, size: Gemma3Size, seed: int = 0) -> Path:
    """A randomly initialised Gemma 3 VLM of `size` with `tokenizer` (from `train_tokenizer`), saved with
    its processor into `out_dir` as an ordinary Hugging Face folder."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
        GenerationConfig,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = len(tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TINY_SPECIAL_TOKENS}
    for t, i in ids.items():
        if i is None or i == ids["<unk>"] and t != "<unk>":
            raise RuntimeError(f"tokenizer: special token {t} did not get its own id")

    layer_types = ["sliding_attention", "full_attention"] * size.layers
    config = Gemma3Config(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=size.hidden,
            intermediate_size=size.intermediate,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.kv_heads,
            head_dim=size.head_dim,
            query_pre_attn_scalar=size.head_dim,
            max_position_embeddings=2048,
            sliding_window=size.sliding_window,
            layer_types=layer_types[-size.layers:],
            pad_token_id=ids["<pad>"],
            eos_token_id=ids["<eos>"],
            bos_token_id=ids["<bos>"],
        ),
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=size.vision_hidden,
            intermediate_size=size.vision_intermediate,
            num_hidden_layers=size.vision_layers,
            num_attention_heads=size.vision_heads,
            image_size=size.image_size,
            patch_size=size.patch_size,
            vision_use_head=False,
        ),
        mm_tokens_per_image=size.mm_tokens_per_image,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    with torch.no_grad():  # the projector starts at zeros in HF init; give the image path some signal
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.02)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        pad_token_id=ids["<pad>"],
        do_sample=False,
    )
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    image_processor = Gemma3ImageProcessorPil(
        size={"height": size.image_size, "width": size.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=gemma3_chat_template(),
        image_seq_length=size.mm_tokens_per_image,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.tiny", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write the model and processor into")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        out = build_tiny(args.out, seed=args.seed)
    except OSError as e:
        print(f"error: cannot write the tiny model to {args.out}: {e}", file=sys.stderr)
        return 2
    import torch  # noqa: F401  (already loaded)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(out)
    n = sum(1 for _ in out.iterdir())
    print(f"tiny Gemma 3 written to {out} ({n} files, vocab {cfg.text_config.vocab_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
