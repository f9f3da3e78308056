"""The scale-free style and content distances (fastnst.distances)."""

from __future__ import annotations

import pytest
import torch

from fastnst.distances import Distances


def test_distances_are_zero_for_a_match_and_grow_with_the_difference() -> None:
    gen = torch.Generator().manual_seed(0)
    style = torch.rand(3, 64, 64, generator=gen)
    photo = torch.rand(3, 64, 64, generator=gen).mul(0.3).add(0.4)
    judge = Distances([style])
    same = judge(photo, photo, 0)
    assert same["content"] == pytest.approx(0.0, abs=1e-6)
    assert judge(style, photo, 0)["style"] == pytest.approx(0.0, abs=1e-5)
    halfway = judge(0.5 * photo + 0.5 * style, photo, 0)
    assert 0 < halfway["content"] < judge(style, photo, 0)["content"]
    assert halfway["style"] < same["style"]
    # the photo's feature computed once gives the same numbers as computing it per call
    mixed = 0.5 * photo + 0.5 * style
    assert judge(mixed, photo, 0, judge.photo_feature(photo)) == judge(mixed, photo, 0)
