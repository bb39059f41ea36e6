"""Parse and verbalize throughput of the action language on Bridge-sized episodes.

The floor of any parser is one regex pass that finds the commands: a bare
`re.findall` over the same text, in the same run. Canonical text (what the verbalizer
and constrained decoding write) takes the parser's fast path; lenient text (what an
unconstrained model may write) the full recursive-descent parser. Prints one JSON object.

    python benchmarks/language.py [--blocks 2000]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy.language import parse_actions, verbalize_actions  # noqa: E402

FINDALL = re.compile(r"move (forward|backward|left|right|up|down) ([0-9.]+) cm|(open|close) gripper")


def bridge_like_blocks(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bridge episodes run ~38 steps at 5 Hz; a subtask block covers ~8 of them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = int(rng.integers(4, 13))
        direction = rng.normal(size=3)
        deltas = direction / np.linalg.norm(direction) * 0.012 + rng.normal(scale=0.003, size=(t, 3))
        gripper = np.ones(t)
        if rng.random() < 0.5:
            gripper[rng.integers(1, t) :] = 0.0
        out.append((deltas, gripper))
    return out


def rate(fn, items, min_time=1.0) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for x in items:
            fn(x)
        n += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=2000)
    args = ap.parse_args()
    episodes = bridge_like_blocks(args.blocks)
    texts = [verbalize_actions(d, g) for d, g in episodes]
    parse = rate(parse_actions, texts)
    floor = rate(FINDALL.findall, texts)
    # lenient text (extra spaces, upper case) takes the full recursive-descent parser
    lenient = rate(parse_actions, [t.replace(", ", " ,  ").upper() for t in texts])
    verbalize = rate(lambda e: verbalize_actions(*e), episodes)
    print(json.dumps({
        "blocks": len(texts),
        "mean_chars_per_block": round(float(np.mean([len(t) for t in texts])), 1),
        "parse_blocks_per_s": round(parse),
        "findall_blocks_per_s": round(floor),
        "parse_vs_findall_slowdown": round(floor / parse, 2),
        "parse_lenient_blocks_per_s": round(lenient),
        "verbalize_blocks_per_s": round(verbalize),
    }, indent=2))


if __name__ == "__main__":
    main()
