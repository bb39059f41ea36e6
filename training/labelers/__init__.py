"""Labelers: turn an episode's segments into subtask phrases and motion plans.

    rules    deterministic, offline (the default)
    gemini   google-genai structured output; falls back to rules per episode

A labeler never writes action text: the action block is always computed from the
numbers by `policy.language` (see training/dlan.py), so it is exact.
"""

from training.labelers.base import Labeling, LabeledSegment, LabelerStats

__all__ = ["Labeling", "LabeledSegment", "LabelerStats", "get_labeler", "LABELERS"]

LABELERS = ("rules", "gemini")


def get_labeler(name: str, **kwargs):
    """'rules' or 'gemini' (kwargs go to the labeler's constructor)."""
    if name == "rules":
        from training.labelers.rules import RulesLabeler

        return RulesLabeler(**kwargs)
    if name == "gemini":
        from training.labelers.gemini import GeminiLabeler

        return GeminiLabeler(**kwargs)
    raise ValueError(f"unknown labeler {name!r}; choose one of {', '.join(LABELERS)}")
