"""The action language: the one definition of how robot motion is written as text.

Frame and units
    Robot base frame: +x forward (away from the base), +y left, +z up.
    Text is in centimetres with one decimal; code is in metres.

Grammar (canonical form, exactly what `verbalize_actions` writes and `ACTION_REGEX` matches)
    block   := "[" step (", " step)* "]"  |  "[]"          ("[]" = no motion)
    step    := "[" command (", " command)* "]"
    command := "move " direction " " number " cm" | "open gripper" | "close gripper"
    direction := forward | backward | left | right | up | down
    number  := 0.1 .. 99.9, one decimal, no sign, no leading zeros

    e.g.  [[move forward 2.1 cm, move down 4.0 cm], [move down 1.2 cm], [close gripper]]

    Within a step, commands are executed together as one end-effector delta (their
    sum); steps are executed in order.

Lenient variants `parse_actions` also accepts (real models write them; all are harmless):
    - any amount of whitespace between tokens, or none after a comma; whitespace is ASCII
      only: space, tab, newline, carriage return (not U+00A0, U+3000, U+2028, U+0085, ...);
    - upper or mixed case ("Move Forward 2.1 CM");
    - "backwards" / "forwards" for backward / forward;
    - whole numbers ("move up 2 cm") and more than one decimal ("move up 2.15 cm");
    - "open the gripper" / "close the gripper";
    - a trailing period, and whitespace before or after the block.
Anything else (other units, signs, unknown directions, truncation, trailing text) raises
`ActionParseError`, which names the character position and what was expected there. So does
a distance above `MAX_DISTANCE_CM` (99.9 cm, the largest the canonical grammar can write):
a lenient "move up 150 cm" or a 400-digit number (which would be inf) is an error, never a
command.

Verbalization
    Consecutive 5 Hz deltas merge into one step while no axis changes sign, no axis
    of the merged motion exceeds `max_axis` (2.5 cm), its norm stays under `max_norm`
    (5 cm), and the gripper does not change. Rounding uses error diffusion: each axis'
    rounding residual is carried into the next command, so the verbalized commands of a
    block sum to the true displacement within half a rounding unit (0.05 cm) per axis.
    With `min_move` > 0, an axis whose carried motion is shorter than it is not written
    yet: the motion waits in the residual until it adds up (a block then sums to the true
    displacement within `min_move` per axis, and writes fewer, longer commands).

The mid-level plan phrase (`plan_phrase`) names directions only: "move down and slightly
forward, then close the gripper". `parse_plan` reads one back so a plan can be checked
against its action block (`plan_agrees`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

__all__ = [
    "Command",
    "ActionParseError",
    "ChunkingParams",
    "ACTION_REGEX",
    "DIRECTIONS",
    "MAX_DISTANCE_CM",
    "verbalize_actions",
    "parse_actions",
    "format_actions",
    "chunk_deltas",
    "block_displacement",
    "step_deltas",
    "binarize_gripper",
    "gripper_events",
    "plan_phrase",
    "parse_plan",
    "plan_agrees",
    "PlanDirections",
    "ActionCodec",
    "VerbalizedCodec",
    "ReservedTokensCodec",
    "get_codec",
]

GripperCmd = Literal["open", "close"]

# direction word -> (axis, sign). Order here is the order commands appear within a step.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "forward": (0, +1),
    "backward": (0, -1),
    "left": (1, +1),
    "right": (1, -1),
    "up": (2, +1),
    "down": (2, -1),
}
_AXIS_WORDS = {(axis, sign): word for word, (axis, sign) in DIRECTIONS.items()}
_UNIT_M = 0.001  # one rounding unit: 0.1 cm = 1 mm


@dataclass(frozen=True)
class Command:
    """One command: a translation along one axis (metres) or a gripper action."""

    delta: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gripper: GripperCmd | None = None

    @property
    def text(self) -> str:
        if self.gripper is not None:
            return f"{self.gripper} gripper"
        axis = int(np.argmax(np.abs(self.delta)))
        value = self.delta[axis]
        word = _AXIS_WORDS[(axis, 1 if value >= 0 else -1)]
        return f"move {word} {abs(value) * 100:.1f} cm"


class ActionParseError(ValueError):
    """Malformed action text. `position` is the character offset, `expected` what should be there."""

    def __init__(self, text: str, position: int, expected: str) -> None:
        self.text, self.position, self.expected = text, position, expected
        found = text[position : position + 12]
        found = repr(found) + ("..." if len(text) > position + 12 else "") if found else "the end of the text"
        super().__init__(f"action block: at character {position} expected {expected}, found {found}")


# --------------------------------------------------------------------------- grammar

_NUMBER = r"(?:0\.[1-9]|[1-9][0-9]?\.[0-9])"  # 0.1 .. 99.9: a zero move has no direction
_MOVE = r"move (?:forward|backward|left|right|up|down) " + _NUMBER + r" cm"
_COMMAND = r"(?:" + _MOVE + r"|open gripper|close gripper)"
_STEP = r"\[" + _COMMAND + r"(?:, " + _COMMAND + r")*\]"
#: The canonical grammar as a regular expression (Python `re`, xgrammar and vLLM's regex
#: structured output all accept it: only literals, classes, groups, ?, * and |).
ACTION_REGEX = r"\[(?:" + _STEP + r"(?:, " + _STEP + r")*)?\]"
_ACTION_RE = re.compile(ACTION_REGEX)

#: The largest distance one command may name, centimetres: the canonical grammar's largest
#: number. Lenient text above it (or not finite) is an ActionParseError.
MAX_DISTANCE_CM = 99.9

# Lenient tokens for the parser. All are matched case-insensitively at a position.
_WS = re.compile(r"[ \t\n\r]*")  # what the docs call whitespace; `\s` would admit every Unicode space
_WORD = re.compile(r"[A-Za-z]+")
_NUM = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DIR_ALIASES = {**{d: d for d in DIRECTIONS}, "backwards": "backward", "forwards": "forward"}


class _Parser:
    """Recursive descent over the lenient grammar; every failure is an ActionParseError."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str, at: int | None = None) -> ActionParseError:
        return ActionParseError(self.text, self.pos if at is None else at, expected)

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect_char(self, ch: str, expected: str) -> None:
        self.skip_ws()
        if self.peek() != ch:
            raise self.fail(expected)
        self.pos += 1

    def word(self, expected: str) -> tuple[str, int]:
        self.skip_ws()
        m = _WORD.match(self.text, self.pos)
        if not m:
            raise self.fail(expected)
        self.pos = m.end()
        return m.group().lower(), m.start()

    def block(self) -> list[list[Command]]:
        self.expect_char("[", "'[' opening the action block")
        self.skip_ws()
        steps: list[list[Command]] = []
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                steps.append(self.step())
                self.skip_ws()
                c = self.peek()
                if c == ",":
                    self.pos += 1
                elif c == "]":
                    self.pos += 1
                    break
                else:
                    raise self.fail("',' before the next step or ']' closing the block")
        self.skip_ws()
        if self.peek() == ".":
            self.pos += 1
            self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail("the end of the text after the closing ']'")
        return steps

    def step(self) -> list[Command]:
        self.expect_char("[", "'[' opening a step")
        commands = [self.command()]
        while True:
            self.skip_ws()
            c = self.peek()
            if c == ",":
                self.pos += 1
                commands.append(self.command())
            elif c == "]":
                self.pos += 1
                return commands
            else:
                raise self.fail("',' before the next command or ']' closing the step")

    def command(self) -> Command:
        verb, at = self.word("a command: 'move <direction> <value> cm', 'open gripper' or 'close gripper'")
        if verb in ("open", "close"):
            noun, noun_at = self.word("'gripper'")
            if noun == "the":
                noun, noun_at = self.word("'gripper'")
            if noun != "gripper":
                raise self.fail("'gripper'", noun_at)
            return Command(gripper=verb)  # type: ignore[arg-type]
        if verb != "move":
            raise self.fail("a command: 'move <direction> <value> cm', 'open gripper' or 'close gripper'", at)
        direction, dir_at = self.word("a direction: forward, backward, left, right, up or down")
        if direction not in _DIR_ALIASES:
            raise self.fail("a direction: forward, backward, left, right, up or down", dir_at)
        axis, sign = DIRECTIONS[_DIR_ALIASES[direction]]
        self.skip_ws()
        m = _NUM.match(self.text, self.pos)
        if not m:
            raise self.fail("a distance such as 2.1 (centimetres, no sign)")
        value_cm = float(m.group())
        if not value_cm <= MAX_DISTANCE_CM:  # also inf, from a few hundred digits
            raise self.fail(f"a distance of at most {MAX_DISTANCE_CM} cm")
        self.pos = m.end()
        unit, unit_at = self.word("the unit 'cm' (distances are centimetres)")
        if unit != "cm":
            raise self.fail("the unit 'cm' (distances are centimetres)", unit_at)
        delta = [0.0, 0.0, 0.0]
        delta[axis] = sign * value_cm / 100.0
        return Command(delta=(delta[0], delta[1], delta[2]))


def parse_actions(text: str) -> list[list[Command]]:
    """Parse an action block into steps of `Command`s (metres).

    Accepts the canonical form and the lenient variants listed in the module doc.
    Raises `ActionParseError` (a ValueError) for anything else; never a partial result.
    """
    if not isinstance(text, str):
        raise ActionParseError(repr(text), 0, "a string holding an action block")
    if _ACTION_RE.fullmatch(text):  # the canonical form (what constrained decoding writes): fast path
        return [[_canonical_command(c) for c in step.split(", ")] for step in _CANON_STEP.findall(text, 1)]
    return _Parser(text).block()


_CANON_STEP = re.compile(r"\[([^\[\]]*)\]")


@functools.lru_cache(maxsize=4096)
def _canonical_command(text: str) -> Command:
    """One canonical command's text -> Command. Cached: there are only ~6,000 distinct ones
    and Command is immutable, so blocks can share them."""
    words = text.split(" ")
    if words[0] != "move":
        return Command(gripper=words[0])  # type: ignore[arg-type]
    axis, sign = DIRECTIONS[words[1]]
    delta = [0.0, 0.0, 0.0]
    delta[axis] = sign * float(words[2]) / 100.0
    return Command(delta=(delta[0], delta[1], delta[2]))


def format_actions(block: Sequence[Sequence[Command]]) -> str:
    """Write steps of commands in the canonical form.

    Moves that round to 0.0 cm are left out (a zero move has no direction), and so are
    steps left empty by that.
    """
    steps = []
    for step in block:
        texts = [c.text for c in step if c.gripper is not None or round(max(map(abs, c.delta)) / _UNIT_M) > 0]
        if texts:
            steps.append("[" + ", ".join(texts) + "]")
    return "[" + ", ".join(steps) + "]"


def step_deltas(block: Sequence[Sequence[Command]]) -> list[tuple[np.ndarray, GripperCmd | None]]:
    """Per step: the summed translation (metres) and the last gripper command in it."""
    out = []
    for step in block:
        d = np.zeros(3)
        grip: GripperCmd | None = None
        for c in step:
            d += c.delta
            if c.gripper is not None:
                grip = c.gripper
        out.append((d, grip))
    return out


def block_displacement(block: Sequence[Sequence[Command]]) -> np.ndarray:
    """The net translation of a block, metres."""
    return np.sum([c.delta for step in block for c in step], axis=0) if any(block) else np.zeros(3)


# --------------------------------------------------------------------------- verbalize


@dataclass(frozen=True)
class ChunkingParams:
    """When consecutive deltas merge into one step (all in metres)."""

    max_axis: float = 0.025  # no axis of a merged step exceeds this
    max_norm: float = 0.05  # the merged step's norm stays under this
    sign_deadband: float = 0.001  # axis motions smaller than this do not count as a sign change
    gripper_threshold: float = 0.5  # gripper >= threshold is open
    # Shortest move written: a shorter axis motion is carried into the next step instead (0 = every
    # move of at least one rounding unit). Fewer, longer commands; at 1 cm the micro model wrote
    # longer moves but overshot (README, "The micro model"), so its recipe keeps 0.
    min_move: float = 0.0

    def __post_init__(self) -> None:
        if not (self.max_axis > 0 and self.max_norm > 0):
            raise ValueError(f"ChunkingParams: max_axis and max_norm must be positive (got {self.max_axis}, {self.max_norm})")
        if not 0 <= self.min_move <= self.max_axis:
            raise ValueError(f"ChunkingParams: min_move must be in [0, max_axis={self.max_axis}] metres (got {self.min_move})")


def binarize_gripper(gripper: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """True where the gripper is open (value >= threshold; 1 = open)."""
    g = np.asarray(gripper, dtype=float)
    if not np.all(np.isfinite(g)):
        raise ValueError("gripper values must be finite numbers in [0, 1] (1 = open)")
    return g >= threshold


def gripper_events(open_: np.ndarray, initial_open: bool | None = None) -> list[tuple[int, GripperCmd]]:
    """(index, "open"|"close") for every step whose binarized gripper differs from the one before."""
    prev = bool(open_[0]) if initial_open is None else bool(initial_open)
    events: list[tuple[int, GripperCmd]] = []
    for t, o in enumerate(open_):
        if bool(o) != prev:
            events.append((t, "open" if o else "close"))
            prev = bool(o)
    return events


def chunk_deltas(
    deltas: np.ndarray,
    gripper: np.ndarray,
    params: ChunkingParams = ChunkingParams(),
    initial_gripper: float | None = None,
) -> list[tuple[np.ndarray, GripperCmd | None]]:
    """Merge 5 Hz deltas into steps: (summed delta in metres, gripper command that follows it or None).

    A gripper change at step t ends the running chunk (which includes step t's motion)
    and is emitted right after it.
    """
    deltas = np.asarray(deltas, dtype=float).reshape(-1, 3)
    open_ = binarize_gripper(np.asarray(gripper, dtype=float).reshape(-1), params.gripper_threshold)
    if len(open_) != len(deltas):
        raise ValueError(f"deltas has {len(deltas)} steps but gripper has {len(open_)}; they must match")
    if not np.all(np.isfinite(deltas)):
        raise ValueError("deltas must be finite numbers (metres)")
    if len(deltas) == 0:
        return []
    initial_open = None if initial_gripper is None else bool(initial_gripper >= params.gripper_threshold)
    changes = dict(gripper_events(open_, initial_open))

    chunks: list[tuple[np.ndarray, GripperCmd | None]] = []
    acc = np.zeros(3)
    acc_sign = np.zeros(3)  # sign of each axis so far in the chunk (0 = not yet committed)
    have = False
    for t, d in enumerate(deltas):
        sign = np.where(np.abs(d) >= params.sign_deadband, np.sign(d), 0.0)
        merged = acc + d
        fits = (
            have
            and not np.any(sign * acc_sign < 0)
            and np.all(np.abs(merged) <= params.max_axis)
            and np.linalg.norm(merged) < params.max_norm
        )
        if have and not fits:
            chunks.append((acc, None))
            acc, acc_sign = np.zeros(3), np.zeros(3)
            merged = d.copy()
        acc = merged
        acc_sign = np.where(acc_sign == 0, sign, acc_sign)
        have = True
        if t in changes:
            chunks.append((acc, changes[t]))
            acc, acc_sign, have = np.zeros(3), np.zeros(3), False
    if have:
        chunks.append((acc, None))
    return chunks


def verbalize_actions(
    deltas: np.ndarray,
    gripper: np.ndarray,
    params: ChunkingParams = ChunkingParams(),
    initial_gripper: float | None = None,
) -> str:
    """Write (T, 3) end-effector deltas (metres) and (T,) gripper states (1 = open) as an action block.

    `initial_gripper` is the gripper state before the first delta; when None the block
    starts in the state of `gripper[0]` (so no gripper command is emitted for it).
    """
    block: list[list[Command]] = []
    residual = np.zeros(3)  # error diffusion: each axis' rounding residual, carried forward
    for motion, grip in chunk_deltas(deltas, gripper, params, initial_gripper):
        want = motion + residual
        units = np.round(want / _UNIT_M)
        units[np.abs(want) < params.min_move] = 0  # too short to write yet: carried
        residual = want - units * _UNIT_M
        step = []
        for axis in range(3):
            u = int(units[axis])
            if u:
                delta = [0.0, 0.0, 0.0]
                delta[axis] = u * _UNIT_M
                step.append(Command(delta=(delta[0], delta[1], delta[2])))
        if step:
            block.append(step)
        if grip is not None:
            block.append([Command(gripper=grip)])
    return format_actions(block)


# --------------------------------------------------------------------------- plan phrase

_SLIGHT_BELOW = 0.03  # "slightly" under 3 cm
_SIGNIFICANT_ABOVE = 0.08  # "significantly" above 8 cm
_PLAN_MIN_AXIS = 0.01  # axes under 1 cm are left out


def plan_phrase(displacement: np.ndarray, gripper: GripperCmd | None = None) -> str:
    """Direction-only description of a net motion: 'move down and slightly forward, then close the gripper'."""
    d = np.asarray(displacement, dtype=float).reshape(3)
    if not np.all(np.isfinite(d)):
        raise ValueError("displacement must be finite (metres)")
    parts = []
    for axis in sorted(range(3), key=lambda a: -abs(d[a])):
        mag = abs(d[axis])
        if mag < _PLAN_MIN_AXIS:
            continue
        word = _AXIS_WORDS[(axis, 1 if d[axis] > 0 else -1)]
        adverb = "slightly " if mag < _SLIGHT_BELOW else "significantly " if mag > _SIGNIFICANT_ABOVE else ""
        parts.append(adverb + word)
    grip = f"{gripper} the gripper" if gripper else ""
    if not parts:
        return grip or "stay in place"
    motion = "move " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])
    return motion + (", then " + grip if grip else "")


@dataclass(frozen=True)
class PlanDirections:
    """What a plan phrase says: per axis +1 / -1 (0 = not mentioned), and a gripper action."""

    signs: tuple[int, int, int]
    gripper: GripperCmd | None


_PLAN_WORD = re.compile(r"\b(forwards?|backwards?|left|right|up|down|open|close)\b", re.IGNORECASE)


def parse_plan(text: str) -> PlanDirections:
    """Read the direction words of a plan phrase (lenient: any wording around them)."""
    signs = [0, 0, 0]
    gripper: GripperCmd | None = None
    for m in _PLAN_WORD.finditer(text):
        w = m.group(1).lower()
        if w in ("open", "close"):
            gripper = w  # type: ignore[assignment]
            continue
        axis, sign = DIRECTIONS[_DIR_ALIASES[w]]
        signs[axis] = sign
    return PlanDirections(signs=(signs[0], signs[1], signs[2]), gripper=gripper)


def plan_agrees(plan: str, displacement: np.ndarray, min_axis: float = _PLAN_MIN_AXIS) -> bool:
    """True if the plan names no direction against the displacement and names its dominant axis.

    Axes that moved less than `min_axis` may be mentioned or not.
    """
    d = np.asarray(displacement, dtype=float).reshape(3)
    signs = parse_plan(plan).signs
    for axis in range(3):
        if signs[axis] and abs(d[axis]) >= min_axis and signs[axis] != np.sign(d[axis]):
            return False
        if signs[axis] and abs(d[axis]) < min_axis / 2:
            return False  # names a direction the arm did not move in
    dominant = int(np.argmax(np.abs(d)))
    return abs(d[dominant]) < min_axis or signs[dominant] == np.sign(d[dominant])


# --------------------------------------------------------------------------- codecs


class ActionCodec(Protocol):
    """How an action block is spelled for the model. The canonical text is the interchange form."""

    name: str

    @property
    def regex(self) -> str:
        """The grammar of the encoded form, for constrained decoding."""
        ...

    def encode(self, canonical: str) -> str:
        """Canonical action text -> what the model is trained to write."""
        ...

    def decode(self, text: str) -> list[list[Command]]:
        """What the model wrote -> commands. Raises ActionParseError."""
        ...


class VerbalizedCodec:
    """The default: numbers as decimal text ('move forward 2.1 cm')."""

    name = "verbalized"
    regex = ACTION_REGEX

    def encode(self, canonical: str) -> str:
        return canonical

    def decode(self, text: str) -> list[list[Command]]:
        return parse_actions(text)


# Every word parse_actions reads (the lenient "open the gripper" and "backwards" included): a
# reserved digit token inside one of them would be substituted there when decoding.
_GRAMMAR_WORDS = " ".join([*_DIR_ALIASES, "move", "cm", "open", "close", "the", "gripper"])
_CANON_NUMBER = re.compile(r"(?<= )(" + _NUMBER + r")(?= cm)")


class ReservedTokensCodec:
    """VLM2VLA-AT: each digit of an action number spelled with one reserved token string.

    `digit_tokens[k]` spells digit k; the decimal point and the rest of the text are
    unchanged, so the two codecs differ only in how numbers are written. The tokens
    are chosen by the training pipeline (the base model's least-likely tokens) and
    saved with the adapter.
    """

    name = "reserved_tokens"

    def __init__(self, digit_tokens: Sequence[str]) -> None:
        tokens = list(digit_tokens)
        if len(tokens) != 10 or len(set(tokens)) != 10 or not all(tokens):
            raise ValueError("ReservedTokensCodec needs 10 distinct, non-empty token strings (one per digit 0-9)")
        for t in tokens:
            if any(ch in "[]," or ch.isspace() for ch in t) or t.lower() in _GRAMMAR_WORDS:
                raise ValueError(f"reserved token {t!r} may not contain spaces or any of '[],', nor be a word of the grammar")
        self.digit_tokens = tokens
        self._to_digit = {t: str(i) for i, t in enumerate(tokens)}
        alt = "(?:" + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")"
        self._token_re = re.compile(alt)
        num = alt + r"{1,2}\." + alt
        move = r"move (?:forward|backward|left|right|up|down) " + num + r" cm"
        cmd = r"(?:" + move + r"|open gripper|close gripper)"
        step = r"\[" + cmd + r"(?:, " + cmd + r")*\]"
        self._regex = r"\[(?:" + step + r"(?:, " + step + r")*)?\]"

    @property
    def regex(self) -> str:
        return self._regex

    def encode(self, canonical: str) -> str:
        return _CANON_NUMBER.sub(lambda m: "".join(self.digit_tokens[int(c)] if c.isdigit() else c for c in m.group()), canonical)

    def decode(self, text: str) -> list[list[Command]]:
        return parse_actions(self._token_re.sub(lambda m: self._to_digit[m.group()], text))


def get_codec(name: str, digit_tokens: Sequence[str] | None = None) -> ActionCodec:
    """'verbalized' (default) or 'reserved_tokens' (needs the 10 digit tokens)."""
    if name == "verbalized":
        return VerbalizedCodec()
    if name == "reserved_tokens":
        if digit_tokens is None:
            raise ValueError("the reserved_tokens codec needs its 10 digit tokens (saved with the adapter as action_codec.json)")
        return ReservedTokensCodec(digit_tokens)
    raise ValueError(f"unknown action codec {name!r}; choose 'verbalized' or 'reserved_tokens'")
