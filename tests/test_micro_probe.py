"""The image-swap probe's pairing: every sample is scored with an image from another scene."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from training.micro.probe import other_scene_order


@given(st.lists(st.integers(0, 5), min_size=2, max_size=60).filter(lambda s: len(set(s)) > 1))
def test_every_sample_gets_another_scenes_image(scenes):
    order = other_scene_order(scenes)
    assert len(order) == len(scenes)
    assert all(scenes[j] != scenes[i] for i, j in enumerate(order))


def test_the_swap_reaches_across_the_set_not_to_a_neighbour():
    scenes = [k // 5 for k in range(40)]  # eight episodes of five steps, in order
    assert other_scene_order(scenes)[0] == 20


def test_one_scene_alone_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="at least two scenes.*several episodes"):
        other_scene_order(["a", "a", "a"])


def test_image_use_without_anything_to_score_is_a_usage_error(capsys):
    from training.micro.probe import main

    with pytest.raises(SystemExit) as exit_:
        main(["--model", "unused", "--image-use", "--tasks", ""])
    assert exit_.value.code == 2
    assert "give --dlan DIR or --world DIR" in capsys.readouterr().err


def test_scores_are_per_answer_token_and_a_subset_keeps_its_own_tokens():
    from training.micro.probe import ImageUse

    use = ImageUse(own_nll=(2.0, 6.0), other_nll=(4.0, 6.0), answer_tokens=(2, 3))
    assert (use.own, use.other, use.gap) == pytest.approx((8 / 5, 10 / 5, 2 / 5))
    first = use.select([0])
    assert (first.own, first.gap, first.tokens) == pytest.approx((1.0, 1.0, 2))
