"""What a labeler returns for one episode."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabeledSegment:
    start: int  # first step (inclusive)
    end: int  # last step + 1
    subtask: str
    plan: str


@dataclass
class Labeling:
    segments: list[LabeledSegment]
    labeler: str  # the labeler that produced this labeling ("rules" or "gemini")
    fallback_reason: str | None = None  # why a non-rules labeler fell back to rules for this episode
    generic: bool = False  # the instruction's phrasing was not recognised: generic phrases were used
    stats: dict = field(default_factory=dict)  # calls, tokens, seconds, cache hits (gemini)


@dataclass
class LabelerStats:
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    retries: int = 0
    fallbacks: int = 0
