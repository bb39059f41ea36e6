"""The Gemini labeler: segment boundaries and subtask/plan wording from Gemini, actions from the numbers.

For each episode it sends a few frames (with their step numbers), the per-step achieved
motion in centimetres with the gripper state, and the instruction, and asks — under a
pydantic response schema — for contiguous segments [start, end) with a subtask phrase
and a direction-only plan each. The reply is validated: boundaries increasing, inside
the episode and covering every step; one non-empty single-line phrase per segment; at
most `max_segments`; each plan's direction words agree with the segment's true
displacement (`policy.language.plan_agrees`). Anything else — an API error after the
retries, a malformed reply, a failed check — falls back to the rules labeler for that
episode, with the reason recorded. The action text is never taken from Gemini.

Requests go through google-genai with `HttpRetryOptions` (exponential backoff on 408,
429 and 5xx, and on timeouts). Replies are cached on disk under a key of the episode
content, the prompt version and the model, so a rerun costs no calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from policy.language import plan_agrees
from training.formats.episode import Episode
from training.labelers.base import LabeledSegment, Labeling
from training.labelers.rules import RulesLabeler
from training.segment import SegmentParams

__all__ = ["GeminiLabeler", "GeminiSegments", "GeminiSegment", "PROMPT_VERSION", "DEFAULT_MODEL", "build_prompt"]

PROMPT_VERSION = "segments-v1"
DEFAULT_MODEL = "gemini-2.5-flash"


class GeminiSegment(BaseModel):
    start: int = Field(description="first step of the segment (inclusive)")
    end: int = Field(description="last step of the segment + 1 (exclusive)")
    subtask: str = Field(description="short imperative subtask phrase, e.g. 'grasp the carrot'")
    plan: str = Field(description="direction-only motion plan, e.g. 'move down and slightly forward, then close the gripper'")


class GeminiSegments(BaseModel):
    segments: list[GeminiSegment]


def build_prompt(ep: Episode, frame_steps: list[int], max_segments: int) -> str:
    d = ep.achieved_deltas() * 100
    g = ep.gripper_open()
    rows = "\n".join(f"{t}: x {d[t, 0]:+.1f} y {d[t, 1]:+.1f} z {d[t, 2]:+.1f} gripper {'open' if g[t] else 'closed'}" for t in range(len(d)))
    return (
        "You label a robot arm demonstration for training a robot policy.\n"
        f"Instruction: {' '.join(ep.instruction.split())}\n"
        f"The episode has {ep.num_steps} steps (5 Hz). Step t moves the gripper by (x forward, y left, z up) centimetres, "
        f"and the gripper state after the step is given:\n{rows}\n"
        f"The images show the scene before steps {', '.join(map(str, frame_steps))} (the last one after the final step).\n"
        f"Split the steps into 1 to {max_segments} consecutive subtasks (reach, grasp, lift or transport, place or release, "
        "retreat, ...). Return segments with start (inclusive) and end (exclusive) step indices covering 0 to "
        f"{ep.num_steps} without gaps; for each a short imperative subtask phrase naming the object, and a plan that "
        "names only directions (forward, backward, left, right, up, down; largest motion first; 'slightly' under 3 cm), "
        "ending with ', then close the gripper' or ', then open the gripper' when the gripper changes."
    )


class GeminiLabeler:
    name = "gemini"

    def __init__(
        self,
        params: SegmentParams = SegmentParams(),
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        base_url: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        frames: int = 4,
        timeout_s: float = 60.0,
        retry_attempts: int = 5,
        retry_initial_delay: float = 1.0,
        retry_max_delay: float = 30.0,
    ) -> None:
        self.params, self.model, self.frames = params, model, frames
        self.api_key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not self.api_key:
            raise ValueError("the gemini labeler needs an API key: export GEMINI_API_KEY=... (or use --labeler rules, offline)")
        self.base_url, self.timeout_s = base_url, timeout_s
        self.retry = (retry_attempts, retry_initial_delay, retry_max_delay)
        self.cache_dir = Path(cache_dir) if cache_dir else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlm2vla" / "gemini"
        self.rules = RulesLabeler(params)
        self._client = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the API

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                from google import genai
                from google.genai import types

                attempts, initial, max_delay = self.retry
                self._client = genai.Client(
                    api_key=self.api_key,
                    http_options=types.HttpOptions(
                        base_url=self.base_url,
                        timeout=int(self.timeout_s * 1000),
                        retry_options=types.HttpRetryOptions(attempts=attempts, initial_delay=initial, max_delay=max_delay, exp_base=2.0, jitter=0.1),
                    ),
                )
            return self._client

    def _frames(self, ep: Episode) -> tuple[list[int], list[bytes]]:
        import cv2

        n = len(ep.images)
        steps = sorted({int(round(x)) for x in np.linspace(0, n - 1, max(2, self.frames))})
        raw = getattr(ep.images, "raw", None)
        out = []
        for t in steps:
            if raw is not None:
                out.append(raw(t))
            else:
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(ep.images[t]), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                out.append(buf.tobytes())
        return steps, out

    def _cache_key(self, ep: Episode, prompt: str, images: list[bytes]) -> str:
        h = hashlib.sha256()
        for part in (PROMPT_VERSION, self.model, prompt, np.ascontiguousarray(ep.states).tobytes(), *images):
            h.update(part if isinstance(part, bytes) else part.encode())
            h.update(b"\0")
        return h.hexdigest()

    def _call(self, prompt: str, images: list[bytes], stats: dict) -> tuple[str, dict]:
        from google.genai import types

        contents = [types.Part.from_bytes(data=b, mime_type="image/jpeg") for b in images] + [prompt]
        t0 = time.perf_counter()
        try:
            resp = self.client.models.generate_content(
                model=self.model,
                contents=contents,
                config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=GeminiSegments, temperature=0.0),
            )
        finally:
            stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - t0
            stats["calls"] = stats.get("calls", 0) + 1
        usage = resp.usage_metadata
        tokens = {
            "prompt_tokens": int(getattr(usage, "prompt_token_count", 0) or 0),
            "output_tokens": int(getattr(usage, "candidates_token_count", 0) or 0),
        }
        return resp.text or "", tokens

    # ------------------------------------------------------------------ labeling

    def label(self, ep: Episode, ref: str = "") -> Labeling:
        stats: dict[str, float] = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "output_tokens": 0, "seconds": 0.0}
        steps, images = self._frames(ep)
        prompt = build_prompt(ep, steps, self.params.max_segments)
        key = self._cache_key(ep, prompt, images)
        path = self.cache_dir / key[:2] / f"{key}.json"
        reply: str | None = None
        if path.is_file():
            try:
                reply = json.loads(path.read_text())["text"]
                stats["cache_hits"] += 1
            except (ValueError, KeyError, OSError):
                reply = None
        if reply is None:
            try:
                reply, tokens = self._call(prompt, images, stats)
            except Exception as e:  # after the SDK's retries: API errors, timeouts, connection errors
                code = getattr(e, "code", None)
                return self._fallback(ep, ref, f"Gemini call failed ({type(e).__name__}{f' {code}' if code else ''}: {str(e)[:100]})", stats)
            for k, v in tokens.items():
                stats[k] += v
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps({"model": self.model, "prompt_version": PROMPT_VERSION, "text": reply, **tokens}))
            os.replace(tmp, path)
        segments, why = self._validate(reply, ep)
        if segments is None:
            return self._fallback(ep, ref, f"Gemini reply rejected: {why}", stats)
        return Labeling(segments, "gemini", stats=stats)

    def _fallback(self, ep: Episode, ref: str, reason: str, stats: dict) -> Labeling:
        lab = self.rules.label(ep, ref)
        lab.fallback_reason = " ".join(reason.split())
        lab.stats = stats
        return lab

    def _validate(self, reply: str, ep: Episode) -> tuple[list[LabeledSegment] | None, str]:
        try:
            parsed = GeminiSegments.model_validate_json(reply)
        except Exception as e:
            return None, f"not the requested JSON ({str(e).splitlines()[0][:80]})"
        segs = parsed.segments
        T = ep.num_steps
        if not segs:
            return None, "no segments"
        if len(segs) > self.params.max_segments:
            return None, f"{len(segs)} segments, at most {self.params.max_segments} allowed"
        pos = 0
        out = []
        for i, s in enumerate(segs):
            if s.start != pos or s.end <= s.start or s.end > T:
                return None, f"segment {i} spans {s.start}..{s.end}; boundaries must increase from 0 to {T} without gaps"
            sub, plan = " ".join(s.subtask.split()), " ".join(s.plan.split())
            if not sub or not plan or len(sub) > 120 or len(plan) > 160:
                return None, f"segment {i} has an empty or overlong subtask or plan"
            disp = ep.states[s.end, :3] - ep.states[s.start, :3]
            if not plan_agrees(plan, disp):
                return None, f"segment {i} plan {plan!r} disagrees with the motion ({np.round(disp * 100, 1).tolist()} cm)"
            out.append(LabeledSegment(s.start, s.end, sub, plan))
            pos = s.end
        if pos != T:
            return None, f"segments end at step {pos}, the episode has {T}"
        return out, ""
