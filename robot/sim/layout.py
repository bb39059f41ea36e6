"""Seeded placement of the scene's objects on the table.

Two arrangements:
- "free": every object somewhere in its region, footprints not overlapping.
- "flags": the three flag cards in a row across the table with one pickable object
  just beyond each card (+x, which is "above" the card in the over-the-shoulder
  image), for "pick up the item above the Japanese flag"; containers along the back.

All randomness comes from the generator passed in, so a seed fixes the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import CONTAINERS, FLAGS, OBJECTS, PICKABLES

# Regions (x_lo, x_hi, y_lo, y_hi), metres, base frame. Pickables and containers stay
# well inside the Bridge workspace box so the gripper can reach every side of them;
# cards may lie further out (they are scenery unless the task names one).
PICKABLE_REGION = (0.18, 0.38, -0.11, 0.21)
CONTAINER_REGION = (0.15, 0.42, -0.14, 0.24)
CARD_REGION = (0.12, 0.50, -0.22, 0.30)
MAX_YAW = np.radians(20.0)  # long axes stay roughly along x: the fingers close along y


@dataclass(frozen=True)
class Placement:
    x: float
    y: float
    yaw: float = 0.0


def _sample(rng: np.random.Generator, region, radius, placed: dict[str, Placement], radii: dict[str, float], tries=400):
    x0, x1, y0, y1 = region
    for _ in range(tries):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if all(np.hypot(x - p.x, y - p.y) >= radius + radii[n] for n, p in placed.items()):
            return x, y
    return None


def free_layout(rng: np.random.Generator) -> dict[str, Placement]:
    for _attempt in range(100):
        placed: dict[str, Placement] = {}
        radii: dict[str, float] = {}
        ok = True
        order = [(n, CONTAINER_REGION) for n in CONTAINERS] + [(n, PICKABLE_REGION) for n in PICKABLES] + [(n, CARD_REGION) for n in FLAGS]
        for name, region in order:
            r = OBJECTS[name].radius
            xy = _sample(rng, region, r, placed, radii)
            if xy is None:
                ok = False
                break
            yaw = rng.uniform(-MAX_YAW, MAX_YAW) if name in PICKABLES else rng.uniform(-0.3, 0.3)
            placed[name] = Placement(float(xy[0]), float(xy[1]), float(yaw))
            radii[name] = r
        if ok:
            return placed
    raise RuntimeError("could not place the scene objects without overlap; widen the regions in robot/sim/layout.py")


def flags_layout(rng: np.random.Generator) -> dict[str, Placement]:
    placed: dict[str, Placement] = {}
    flags = list(rng.permutation(FLAGS))
    objs = list(rng.permutation(PICKABLES))
    xc = rng.uniform(0.17, 0.21)
    y0 = rng.uniform(-0.10, -0.07)
    spacing = rng.uniform(0.13, 0.14)
    for i, (flag, obj) in enumerate(zip(flags, objs)):
        y = y0 + i * spacing + rng.uniform(-0.006, 0.006)
        placed[str(flag)] = Placement(float(xc + rng.uniform(-0.01, 0.01)), float(y), float(rng.uniform(-0.1, 0.1)))
        placed[str(obj)] = Placement(float(xc + 0.085 + rng.uniform(-0.008, 0.008)), float(y + rng.uniform(-0.01, 0.01)), float(rng.uniform(-MAX_YAW, MAX_YAW)))
    # Containers along the back edge, clear of the objects.
    slots = [-0.19, 0.0, 0.19]
    rng.shuffle(slots)
    for name, y in zip(CONTAINERS, slots):
        placed[name] = Placement(float(rng.uniform(0.47, 0.50)), float(y + rng.uniform(-0.02, 0.02)), 0.0)
    return placed


LAYOUTS = {"free": free_layout, "flags": flags_layout}
