"""How likely are the action targets under the un-tuned base model? (the paper's Fig. 3)

    python -m training.logprob --base google/gemma-3-12b-it --data dlan --out logprob
    python -m training.logprob --base tiny --data dlan --out logprob --max-samples 50
    python -m training.logprob --base .cache/gemma-3-270m/vlm --data dlan --out logprob-text --no-image \\
        --codec-file logprob/logprob.json        # text-only context, the AT tokens of an earlier study

For every stage-2 sample of D_lan (current image + subtask prompt -> "Plan: ...\\nActions: [...]")
and for each action codec -- `verbalized` (decimal text) and `reserved_tokens` (VLM2VLA-AT,
digits spelled with the base model's least-likely tokens) -- this computes the mean per-token
log-probability of the action block's tokens under the base model, teacher-forced on the
rendered chat (image, prompt and plan included as context; `--no-image` leaves the image out,
for a base whose vision tower is untrained). The reserved tokens are chosen as in training
(`training.finetune.select_reserved_tokens`) or read with `--codec-file` from an adapter's
action_codec.json or an earlier study's logprob.json.

Writes <out>/logprob.html (overlaid plotly histograms) and <out>/logprob.json (per-codec
summary statistics and the per-sample values), and prints the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policy.prompts import ACTIONS_PREFIX

__all__ = ["read_reserved_codec", "action_span", "action_logprob", "logprob_study", "write_outputs", "main"]


def read_reserved_codec(path: str | Path) -> Any:
    """The VLM2VLA-AT codec saved in `path`: an adapter folder, its action_codec.json, or an earlier
    study's logprob.json. Raises ValueError when it holds no reserved_tokens codec."""
    from policy.language import get_codec
    from policy.model import CODEC_FILE, load_codec

    p = Path(path)
    if p.suffix == ".json" and p.name != CODEC_FILE:  # an earlier study's logprob.json
        try:
            codec = get_codec("reserved_tokens", json.loads(p.read_text())["reserved_tokens"])
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: no 'reserved_tokens' list of ten tokens ({e})") from None
    else:
        codec = load_codec(p.parent if p.name == CODEC_FILE else p)
    if codec.name != "reserved_tokens":
        raise ValueError(f"{path} does not hold a reserved_tokens codec")
    return codec


def _without_images(messages: list[dict]) -> list[dict]:
    """The messages with their image placeholders removed (text-only context)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            m = {**m, "content": [c for c in content if not (isinstance(c, dict) and c.get("type") == "image")]}
        out.append(m)
    return out


def action_span(processor: Any, sample: dict, action_text: str, image: Any) -> tuple[dict, list[int]]:
    """The processor's inputs for the rendered sample and the indices of the action block's tokens.
    `image=None` renders the sample without its image (text-only context)."""
    tok = processor.tokenizer
    if image is None:
        text = processor.apply_chat_template(_without_images(sample["messages"]), tokenize=False)
        enc = processor(text=[text], return_tensors="pt", add_special_tokens=False)
    else:
        text = processor.apply_chat_template(sample["messages"], tokenize=False)
        enc = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
    # Locate the action block's characters in the text the processor tokenized (images expanded).
    expanded = text.replace(processor.boi_token, processor.full_image_sequence)
    anchor = expanded.rfind(ACTIONS_PREFIX + action_text)
    if anchor < 0:
        raise ValueError("the sample's answer does not contain the action text")
    a = anchor + len(ACTIONS_PREFIX)
    b = a + len(action_text)
    offs = tok(expanded, add_special_tokens=False, return_offsets_mapping=True)
    if offs["input_ids"] != enc["input_ids"][0].tolist():
        raise RuntimeError("processor and tokenizer disagree on the tokens of the rendered sample")
    span = [i for i, (s, e) in enumerate(offs["offset_mapping"]) if s < b and e > a and i > 0]
    if not span:
        raise ValueError("the action text has no tokens")
    return enc, span


def action_logprob(model: Any, processor: Any, sample: dict, action_text: str, image: Any) -> tuple[float, int]:
    """Mean log-probability (nats per token) of `action_text` where it follows 'Actions: ' in the sample's answer."""
    import torch

    enc, span = action_span(processor, sample, action_text, image)
    ids = enc["input_ids"][0]
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in enc.items()}
    # Only the positions that predict the block need the vocabulary projection (262k columns for Gemma).
    first = span[0] - 1
    keep = int(ids.shape[0]) - first
    with torch.no_grad():
        logits = model(**inputs, logits_to_keep=keep).logits[0].float()
    lp = torch.log_softmax(logits[[i - 1 - first for i in span]], dim=-1)
    values = lp.gather(1, ids[span].to(device)[:, None])[:, 0]
    return float(values.mean()), len(span)


def logprob_study(
    base: str,
    data: str | Path,
    codec_file: str | Path | None = None,
    max_samples: int = 200,
    reference_samples: int = 32,
    dtype: Any = None,
    device: str | None = None,
    progress: bool = True,
    images: bool = True,
) -> dict:
    """Per-sample mean action log-probabilities for both codecs; returns the summary dict."""
    from PIL import Image

    from policy.language import get_codec
    from policy.model import load_model
    from training.dlan import read_records
    from training.finetune import _reference_texts, build_samples, select_reserved_tokens

    records = read_records(data)
    records = sorted(records, key=lambda r: (str(r["episode"]), int(r["step"])))[: max(1, max_samples)]
    lm = load_model(base, dtype=dtype, device=device)
    model, processor = lm.model, lm.processor
    if codec_file is not None:
        reserved = read_reserved_codec(codec_file)
        how = f"read from {codec_file}"
        chosen = {}
    else:
        ref = _reference_texts(build_samples(records, data, None, ("actions",)), processor, reference_samples)
        digits, info = select_reserved_tokens(model, processor, ref)
        reserved = get_codec("reserved_tokens", digits)
        how = info["method"]
        chosen = {"token_ids": info["token_ids"], "mean_logprob": info["mean_logprob"], "reference_tokens": info["reference_tokens"]}
    codecs = {"verbalized": get_codec("verbalized"), "reserved_tokens": reserved}

    per: dict[str, list[dict]] = {name: [] for name in codecs}
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    items = [(name, r) for r in records for name in codecs]
    it = tqdm(items, desc="log-prob", disable=not progress) if tqdm else items
    cache: dict[str, Any] = {}
    for name, r in it:
        codec = codecs[name]
        (sample,) = build_samples([r], data, codec, ("actions",))
        img_path = str(sample["images"][0])
        if images and img_path not in cache:
            cache.clear()
            cache[img_path] = Image.open(img_path).convert("RGB")
        encoded = codec.encode(r["actions"])
        mean_lp, n = action_logprob(model, processor, sample, encoded, cache[img_path] if images else None)
        per[name].append({"episode": r["episode"], "step": r["step"], "mean_logprob": mean_lp, "tokens": n})

    def stats(rows: Sequence[dict]) -> dict:
        v = np.array([x["mean_logprob"] for x in rows])
        t = np.array([x["tokens"] for x in rows])
        return {
            "samples": int(len(v)),
            "mean": float(v.mean()),
            "median": float(np.median(v)),
            "std": float(v.std()),
            "min": float(v.min()),
            "max": float(v.max()),
            "mean_tokens": float(t.mean()),
        }

    return {
        "base": str(base),
        "data": str(Path(data).resolve()),
        "reserved_tokens": list(reserved.digit_tokens),
        "reserved_tokens_chosen_by": how,
        "reserved_tokens_info": chosen,
        "images": images,
        "summary": {name: stats(rows) for name, rows in per.items()},
        "samples": per,
    }


def write_outputs(result: dict, out: str | Path, plotlyjs: str | bool = True) -> tuple[Path, Path]:
    import plotly.graph_objects as go

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = go.Figure()
    for name, rows in result["samples"].items():
        s = result["summary"][name]
        fig.add_trace(
            go.Histogram(
                x=[x["mean_logprob"] for x in rows],
                name=f"{name} (mean {s['mean']:.2f})",
                opacity=0.6,
                nbinsx=40,
            )
        )
    fig.update_layout(
        barmode="overlay",
        title=f"Action targets under the un-tuned base model ({result['base']})",
        xaxis_title="mean log-probability per action token (nats)",
        yaxis_title="samples",
        template="plotly_white",
    )
    html = out / "logprob.html"
    fig.write_html(str(html), include_plotlyjs=plotlyjs)
    js = out / "logprob.json"
    js.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return html, js


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.logprob", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="base Gemma 3 VLM: hub id or folder (un-tuned)")
    ap.add_argument("--data", required=True, help="D_lan folder")
    ap.add_argument("--out", default="logprob", help="folder for logprob.html and logprob.json")
    ap.add_argument("--codec-file", default=None, help="an adapter's action_codec.json (default: choose the tokens here)")
    ap.add_argument("--max-samples", type=int, default=200, help="D_lan steps to score (first N by episode)")
    ap.add_argument("--reference-samples", type=int, default=32, help="rendered samples whose text ranks the tokens for the AT codec")
    ap.add_argument("--no-image", action="store_true",
                    help="score without the camera image (text-only context), e.g. for a base whose vision tower is untrained")
    ap.add_argument("--dtype", default=None, help="bfloat16 | float32 (default: bf16 on GPU, fp32 on CPU)")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    ap.add_argument("--plotlyjs", default="inline", choices=["inline", "cdn"], help="embed plotly.js (offline) or link it")
    args = ap.parse_args(argv)
    from transformers.utils import logging as hf_logging

    from policy.model import ModelLoadError
    from training.finetune import FinetuneError

    hf_logging.disable_progress_bar()  # transformers' weight-loading bar; the study's own bar stays

    try:
        result = logprob_study(args.base, args.data, args.codec_file, args.max_samples, args.reference_samples,
                               dtype=args.dtype, device=args.device, images=not args.no_image)
    except (FinetuneError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    html, js = write_outputs(result, args.out, True if args.plotlyjs == "inline" else "cdn")
    print(json.dumps({"digit_tokens": result["reserved_tokens"], **result["reserved_tokens_info"], "summary": result["summary"]},
                     ensure_ascii=False))
    print(f"histogram: {html}\nsummary: {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
