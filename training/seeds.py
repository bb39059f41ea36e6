"""The one rule that keeps evaluation scenes out of training data.

Every simulated scene comes from an integer seed (`SimRobot.reset(seed, task)`; the task's
parameters from `make_task(name, seed)`). Training data (`training.collect`, the micro
model's world and episodes, tests, README commands) uses seeds below `EVAL_SEED_BASE`;
the evaluation (`python -m evaluation.trials`) uses seeds from `EVAL_SEED_BASE` up. Both
sides import this module, so the split is written down once:

    >>> check_training_seeds(0, 20)               # fine: seeds 0..19
    >>> check_training_seeds(999_990, 20)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: training seeds 999990..1000009 reach into the evaluation's seeds (>= 1000000); ...
    >>> eval_seed(0), is_eval_seed(1_000_003)
    (1000000, True)
"""

from __future__ import annotations

EVAL_SEED_BASE = 1_000_000  # evaluation seeds are EVAL_SEED_BASE + k; training seeds are below it


def eval_seed(k: int) -> int:
    """The seed of the k-th evaluation scene (k >= 0)."""
    if k < 0:
        raise ValueError(f"evaluation scene index must be >= 0, got {k}")
    return EVAL_SEED_BASE + k


def is_eval_seed(seed: int) -> bool:
    return seed >= EVAL_SEED_BASE


def check_training_seeds(first: int, count: int) -> None:
    """Raise ValueError when seeds first..first+count-1 are negative or reach the evaluation's."""
    last = first + count - 1
    if first < 0:
        raise ValueError(f"training seeds must be >= 0, got {first}")
    if count > 0 and is_eval_seed(last):
        raise ValueError(
            f"training seeds {first}..{last} reach into the evaluation's seeds (>= {EVAL_SEED_BASE}); "
            f"choose --seed and --episodes so the last seed stays below {EVAL_SEED_BASE} (training/seeds.py)"
        )
