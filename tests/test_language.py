"""The action language: round trips, faithfulness, the grammar, and the parser's errors."""

import random
import re
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from policy.language import (
    ACTION_REGEX,
    MAX_DISTANCE_CM,
    ActionParseError,
    ChunkingParams,
    Command,
    ReservedTokensCodec,
    block_displacement,
    chunk_deltas,
    format_actions,
    get_codec,
    parse_actions,
    parse_plan,
    plan_agrees,
    plan_phrase,
    verbalize_actions,
)
from policy.language import _Parser

ACTION_RE = re.compile(ACTION_REGEX)


@st.composite
def episodes(draw, max_steps=60):
    """Bridge-like motion: up to 5 cm per 5 Hz step, any sign, with gripper events."""
    t = draw(st.integers(1, max_steps))
    deltas = draw(arrays(np.float64, (t, 3), elements=st.floats(-0.05 / np.sqrt(3), 0.05 / np.sqrt(3))))
    gripper = draw(arrays(np.float64, (t,), elements=st.sampled_from([0.0, 0.1, 0.9, 1.0])))
    initial = draw(st.sampled_from([None, 0.0, 1.0]))
    return deltas, gripper, initial


def expected_events(gripper, initial):
    prev = gripper[0] >= 0.5 if initial is None else initial >= 0.5
    out = []
    for g in gripper:
        if (g >= 0.5) != prev:
            out.append("open" if g >= 0.5 else "close")
            prev = g >= 0.5
    return out


@settings(max_examples=300, deadline=None)
@given(episodes())
def test_round_trip_is_faithful(ep):
    deltas, gripper, initial = ep
    text = verbalize_actions(deltas, gripper, initial_gripper=initial)
    assert ACTION_RE.fullmatch(text), text
    block = parse_actions(text)
    # the block sums to the true displacement within half a rounding unit per axis
    np.testing.assert_array_less(np.abs(block_displacement(block) - deltas.sum(axis=0)), 0.0005 + 1e-9)
    # every gripper change survives, in order
    assert [c.gripper for s in block for c in s if c.gripper] == expected_events(gripper, initial)


@settings(max_examples=200, deadline=None)
@given(episodes())
def test_chunks_respect_the_rules(ep):
    deltas, gripper, initial = ep
    p = ChunkingParams()
    chunks = chunk_deltas(deltas, gripper, p, initial_gripper=initial)
    np.testing.assert_allclose(np.sum([c for c, _ in chunks], axis=0), deltas.sum(axis=0), atol=1e-12)
    # a merged chunk (more than one delta) never breaks the limits
    sizes = []
    for motion, _ in chunks:
        sizes.append(motion)
    for motion in sizes:
        single = any(np.allclose(motion, d) for d in deltas)
        if not single:
            assert np.all(np.abs(motion) <= p.max_axis + 1e-12)
            assert np.linalg.norm(motion) < p.max_norm


@settings(max_examples=200, deadline=None)
@given(episodes(), st.sampled_from([0.005, 0.01, 0.02]))
def test_min_move_writes_only_long_moves_and_keeps_the_total(ep, min_move):
    deltas, gripper, initial = ep
    text = verbalize_actions(deltas, gripper, ChunkingParams(min_move=min_move), initial_gripper=initial)
    block = parse_actions(text)
    moves = [max(map(abs, c.delta)) for s in block for c in s if c.gripper is None]
    assert all(m >= min_move - 1e-9 for m in moves), (text, min_move)
    # the carried motion is what is left unwritten: under min_move per axis
    np.testing.assert_array_less(np.abs(block_displacement(block) - deltas.sum(axis=0)), min_move + 1e-9)
    assert [c.gripper for s in block for c in s if c.gripper] == expected_events(gripper, initial)


def test_min_move_folds_minor_axis_jitter_into_longer_moves():
    # a reach forward with 3 mm of sideways drift a step: written every step by default,
    # and once (when it adds up past 1 cm) with min_move = 1 cm
    deltas = np.tile([0.02, 0.003, 0.0], (5, 1))
    default = verbalize_actions(deltas, np.ones(5), ChunkingParams(max_axis=0.02))
    assert default.count("move left") == 5
    folded = verbalize_actions(deltas, np.ones(5), ChunkingParams(max_axis=0.02, min_move=0.01))
    assert folded == "[[move forward 2.0 cm], [move forward 2.0 cm], [move forward 2.0 cm], " \
        "[move forward 2.0 cm, move left 1.2 cm], [move forward 2.0 cm]]"
    with pytest.raises(ValueError, match="min_move"):
        ChunkingParams(min_move=0.03)


def test_example_from_the_paper():
    # two steps merge (down 2.5 cm, at the axis limit); the third would push z past
    # 2.5 cm so it starts a new step; the fourth would too (1.5 + 1.2 > 2.5); then a close
    deltas = np.array([[0.007, 0, -0.013], [0.007, 0, -0.012], [0.007, 0, -0.015], [0, 0, -0.012]])
    gripper = np.array([1, 1, 1, 0.0])
    text = verbalize_actions(deltas, gripper)
    assert text == (
        "[[move forward 1.4 cm, move down 2.5 cm], [move forward 0.7 cm, move down 1.5 cm], "
        "[move down 1.2 cm], [close gripper]]"
    )
    assert parse_actions(text)[-1] == [Command(gripper="close")]


def test_error_diffusion_beats_naive_rounding():
    # 40 steps of 0.14 mm: naive per-step rounding says 0; diffusion keeps the total
    deltas = np.tile([0.00014, 0, 0], (40, 1))
    text = verbalize_actions(deltas, np.ones(40), ChunkingParams(sign_deadband=0.0, max_axis=0.0001))
    assert abs(block_displacement(parse_actions(text))[0] - 0.0056) <= 0.0005
    assert verbalize_actions(np.zeros((3, 3)), np.ones(3)) == "[]"


def test_lenient_variants_are_documented_and_accepted():
    canonical = parse_actions("[[move backward 2.0 cm, move up 1.5 cm], [open gripper]]")
    for variant in [
        "[[Move Backward 2.0 CM, MOVE UP 1.5 cm], [Open Gripper]]",
        "  [ [move backwards 2 cm ,move up 1.50 cm] ,\n [open the gripper] ] . ",
        "[[move backward 2.0 cm, move up 1.5 cm], [open gripper]].",
    ]:
        assert parse_actions(variant) == canonical, variant


@pytest.mark.parametrize(
    "text, position, expected",
    [
        ("", 0, "'['"),
        ("[[move forward 2.1 cm]", 22, "',' before the next step or ']'"),
        ("[[move forward 2.1]]", 18, "the unit 'cm'"),
        ("[[move forward 21 mm]]", 18, "the unit 'cm'"),
        ("[[move forward 0.02 meters]]", 20, "the unit 'cm'"),
        ("[[move forward -2.1 cm]]", 15, "a distance"),
        ("[[move sideways 2.1 cm]]", 7, "a direction"),
        ("[[avanzar 2 cm]]", 2, "a command"),
        ("[[close gripper]] and then lift", 18, "the end of the text"),
        ("[[close claw]]", 8, "'gripper'"),
        ("[[]]", 2, "a command"),
    ],
)
def test_errors_name_position_and_expectation(text, position, expected):
    with pytest.raises(ActionParseError) as err:
        parse_actions(text)
    assert err.value.position == position, str(err.value)
    assert expected in err.value.expected
    assert f"at character {position}" in str(err.value)


def _mutate(s: str, rng: random.Random) -> str:
    ops = rng.randint(1, 4)
    s = list(s)
    for _ in range(ops):
        kind = rng.randrange(4)
        i = rng.randrange(len(s) + 1)
        if kind == 0 and s:
            del s[min(i, len(s) - 1)]
        elif kind == 1:
            s.insert(i, rng.choice("[], .-0123456789abcdemovecm\n\x00é漢"))
        elif kind == 2 and s:
            s = s[: rng.randrange(len(s) + 1)]  # truncate
        elif kind == 3 and s:
            j = min(i, len(s) - 1)
            s[j] = rng.choice(string.printable)
    return "".join(s)


def test_fuzz_only_parse_or_action_parse_error():
    rng = random.Random(0)
    seeds = [
        "[[move forward 2.1 cm, move down 4.0 cm], [move down 1.2 cm], [close gripper]]",
        "[[open gripper], [move left 0.5 cm]]",
        "[]",
    ]
    outcomes = {"ok": 0, "error": 0}
    for i in range(20_000):
        if i % 10 == 0:
            text = "".join(rng.choice(string.printable + "[]") for _ in range(rng.randint(0, 200)))
        else:
            text = _mutate(rng.choice(seeds), rng)
        try:
            block = parse_actions(text)
        except ActionParseError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        assert isinstance(block, list) and all(isinstance(c, Command) for s in block for c in s)
        # what parses is well formed: re-formatting it gives a canonical block
        assert ACTION_RE.fullmatch(format_actions(block))
    assert outcomes["ok"] > 100 and outcomes["error"] > 100, outcomes


def test_ten_thousand_characters_of_noise_fail_fast():
    rng = random.Random(1)
    noise = "".join(rng.choice(string.printable) for _ in range(10_000))
    with pytest.raises(ActionParseError):
        parse_actions(noise)
    with pytest.raises(ActionParseError):
        parse_actions("[" * 10_000)
    with pytest.raises(ActionParseError):
        parse_actions(None)  # type: ignore[arg-type]


@st.composite
def regex_strings(draw):
    """Strings drawn from ACTION_REGEX's own structure."""
    def command():
        kind = draw(st.integers(0, 2))
        if kind == 0:
            d = draw(st.sampled_from(["forward", "backward", "left", "right", "up", "down"]))
            tenths = draw(st.integers(1, 999))
            return f"move {d} {tenths // 10}.{tenths % 10} cm"
        return ["open gripper", "close gripper"][kind - 1]

    steps = ["[" + ", ".join(command() for _ in range(draw(st.integers(1, 3)))) + "]" for _ in range(draw(st.integers(0, 4)))]
    return "[" + ", ".join(steps) + "]"


@settings(max_examples=300, deadline=None)
@given(regex_strings())
def test_everything_the_regex_matches_parses(text):
    assert ACTION_RE.fullmatch(text)
    block = parse_actions(text)
    assert format_actions(block) == text
    assert _Parser(text).block() == block  # the canonical fast path agrees with the full parser


def test_plan_phrase_rules():
    assert plan_phrase(np.array([0.02, 0.0, -0.05]), "close") == "move down and slightly forward, then close the gripper"
    assert plan_phrase(np.array([0.0, -0.09, 0.005])) == "move significantly right"
    assert plan_phrase(np.array([0.05, 0.04, 0.035])) == "move forward, left and up"
    assert plan_phrase(np.zeros(3), "open") == "open the gripper"
    assert plan_phrase(np.zeros(3)) == "stay in place"
    assert parse_plan("move down and slightly forward, then close the gripper").signs == (1, 0, -1)
    assert parse_plan("move down, then close the gripper").gripper == "close"


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, (3,), elements=st.floats(-0.2, 0.2)), st.sampled_from([None, "open", "close"]))
def test_plan_phrase_agrees_with_its_displacement(d, grip):
    phrase = plan_phrase(d, grip)
    assert plan_agrees(phrase, d)
    assert parse_plan(phrase).gripper == grip
    if np.max(np.abs(d)) >= 0.01:
        flipped = d.copy()
        a = int(np.argmax(np.abs(d)))
        flipped[a] = -flipped[a]
        assert not plan_agrees(phrase, flipped)


def test_reserved_tokens_codec_round_trip():
    tokens = [f"<unused{i}>" for i in range(10)]
    codec = ReservedTokensCodec(tokens)
    text = "[[move forward 12.1 cm, move down 0.4 cm], [close gripper]]"
    encoded = codec.encode(text)
    assert "12.1" not in encoded and "<unused1><unused2>.<unused1>" in encoded
    assert re.fullmatch(codec.regex, encoded)
    assert codec.decode(encoded) == parse_actions(text)
    assert get_codec("verbalized").decode(text) == parse_actions(text)
    with pytest.raises(ValueError, match="10 distinct"):
        ReservedTokensCodec(tokens[:9])
    with pytest.raises(ValueError, match="unknown action codec"):
        get_codec("bytes")


@pytest.mark.parametrize("inside", ["ove", "gri", "th", "wards"])  # move, gripper, "open the gripper", backwards
def test_reserved_tokens_refuse_a_piece_of_any_word_the_parser_reads(inside):
    tokens = [inside] + [f"<unused{i}>" for i in range(1, 10)]
    with pytest.raises(ValueError, match="word of the grammar"):
        ReservedTokensCodec(tokens)


_UNICODE_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) not in " \t\n\r"]


def _blocks_with_gaps():
    """A valid block as (pieces, expected): whitespace may go between any two pieces."""
    return st.sampled_from([
        (["[", "[", "move", "forward", "2.1", "cm", ",", "move", "down", "4.0", "cm", "]", ",", "[", "close", "gripper", "]", "]"],
         "[[move forward 2.1 cm, move down 4.0 cm], [close gripper]]"),
        (["[", "[", "open", "the", "gripper", "]", "]", "."], "[[open gripper]]"),
        (["[", "]"], "[]"),
    ])


def _join(pieces, gaps):
    # words need a separator; a gap of "" between two words is made one space
    out = pieces[0]
    for prev, piece, gap in zip(pieces, pieces[1:], gaps):
        if not gap and prev[-1].isalnum() and piece[0].isalnum():
            gap = " "
        out += gap + piece
    return out


@settings(max_examples=300, deadline=None)
@given(_blocks_with_gaps(), st.data())
def test_ascii_whitespace_is_whitespace_and_unicode_spaces_are_not(block, data):
    pieces, canonical = block
    ascii_gap = st.text(st.sampled_from(" \t\n\r"), max_size=3)
    gaps = [data.draw(ascii_gap) for _ in range(len(pieces) + 1)]
    text = gaps[0] + _join(pieces, gaps[1:-1]) + gaps[-1]
    assert parse_actions(text) == parse_actions(canonical)
    # one Unicode space (U+00A0, U+3000, U+2028, U+0085, ...) anywhere a space may go is an error at its position
    slot = data.draw(st.integers(0, len(pieces)))
    odd = data.draw(st.sampled_from(_UNICODE_SPACES))
    gaps[slot] = gaps[slot] + odd
    text = gaps[0] + _join(pieces, gaps[1:-1]) + gaps[-1]
    with pytest.raises(ActionParseError) as err:
        parse_actions(text)
    assert err.value.position == text.index(odd), (text, err.value)


_MAX_M = MAX_DISTANCE_CM / 100


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"[0-9]{1,400}(\.[0-9]{1,40})?", fullmatch=True), st.sampled_from(["up", "left", "backward"]))
def test_every_distance_parses_to_a_finite_bounded_move_or_is_refused(number, direction):
    text = f"[[move {direction} {number} cm]]"
    try:
        (step,) = parse_actions(text)
    except ActionParseError as e:
        assert float(number) > MAX_DISTANCE_CM, (number, e)
        assert e.position == text.index(number) and f"at most {MAX_DISTANCE_CM} cm" in str(e)
        return
    (cmd,) = step
    assert all(np.isfinite(cmd.delta)) and max(map(abs, cmd.delta)) <= _MAX_M
    assert max(map(abs, cmd.delta)) == pytest.approx(float(number) / 100)


def test_absurd_and_non_finite_distances_are_refused():
    for number in ["9" * 400, "100", "99.95", "1" + "0" * 308 + ".0", "1e5"]:
        with pytest.raises(ActionParseError, match="at most 99.9 cm|the unit 'cm'"):
            parse_actions(f"[[move up {number} cm]]")
    assert parse_actions("[[move up 99.9 cm]]")[0][0].delta[2] == pytest.approx(0.999)
