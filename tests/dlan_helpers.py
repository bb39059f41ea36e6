"""A small hand-built D_lan folder in the ARCHITECTURE.md format, for the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from policy.language import plan_phrase, verbalize_actions

OBJECTS = ["carrot", "spoon", "cup", "banana", "sponge", "lid"]


def make_dlan(root: Path, episodes: int = 6, steps: int = 3, seed: int = 0) -> Path:
    """Episodes of `steps` steps (one subtask each) with 5 Hz deltas verbalized by policy.language."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    lines = []
    for e in range(episodes):
        obj = OBJECTS[e % len(OBJECTS)]
        instruction = f"put the {obj} on the plate"
        subtasks = [f"reach for the {obj}", f"grasp the {obj}", "move to the plate"][:steps]
        state = np.array([0.25, 0.0, 0.10])
        slug = f"ep{e:03d}"
        (root / "images" / slug).mkdir(parents=True, exist_ok=True)
        for k in range(steps + 1):  # images/<slug>/<k>.jpg: the frame at each step start, then the final one
            img = np.zeros((32, 32, 3), np.uint8)
            img[..., e % 3] = 60 + 50 * k
            Image.fromarray(img).save(root / "images" / slug / f"{k}.jpg")
        for s in range(steps):
            T = int(rng.integers(2, 5))
            deltas = rng.normal(0, 0.008, size=(T, 3))
            gripper = np.ones(T) if s != 1 else np.r_[np.ones(T - 1), 0.0]
            name = f"images/{slug}/{s}.jpg"
            disp = deltas.sum(0)
            lines.append(
                {
                    "episode": slug,
                    "step": s,
                    "num_steps": steps,
                    "image": name,
                    "instruction": instruction,
                    "subtasks": subtasks,
                    "subtask": subtasks[s],
                    "plan": plan_phrase(disp, "close" if s == 1 else None),
                    "actions": verbalize_actions(deltas, gripper),
                    "state": state.tolist(),
                    "displacement": disp.tolist(),
                }
            )
            state = state + disp
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root
