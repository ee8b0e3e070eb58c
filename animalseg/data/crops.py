"""What a crop schedule (``data.crop_schedule``) must be, checked without TensorFlow so the config
check and the pipeline share one rule."""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def crop_schedule_problem(schedule: object) -> str | None:
    """Why ``schedule`` is no list of ``[first epoch, side]`` pairs (epochs counted from 0, >= 0 and
    strictly increasing; sides positive whole numbers; none at all: no schedule), or ``None`` when it
    is one."""
    if not isinstance(schedule, Sequence) or isinstance(schedule, str):
        return "must be a list of [first epoch, crop side] pairs, e.g. [[10,192],[20,224]]"
    for pair in schedule:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            return f"{pair!r} is no [first epoch, crop side] pair, e.g. [[10,192],[20,224]]"
        epoch, side = pair
        if not (_whole(epoch) and epoch >= 0):
            return f"the first epoch of {list(pair)} must be a whole number >= 0 (epochs count from 0)"
        if not (_whole(side) and side > 0):
            return f"the crop side of {list(pair)} must be a positive whole number of pixels"
    epochs = [pair[0] for pair in schedule]
    if not all(a < b for a, b in itertools.pairwise(epochs)):
        return f"its first epochs {epochs} must be strictly increasing"
    return None
