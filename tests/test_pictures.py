"""predict.py's pictures explain themselves: outlined regions (a dark class colour still shows on a
photo) and a legend of the classes present."""

from __future__ import annotations

import numpy as np

from animalseg.pictures import legend, overlay, visible, with_legend

HYENA = (7, 73, 80)  # the animals set's darkest colour


def test_a_dark_colour_is_lightened_and_a_light_one_kept():
    assert tuple(visible(HYENA)) == (131, 164, 167)
    assert tuple(visible((250, 200, 40))) == (250, 200, 40)


def test_regions_are_outlined_in_a_visible_colour():
    image = np.zeros((40, 40, 3), np.uint8)  # a dark photo: the hyena blend alone would not show
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    picture = overlay(image, mask, np.array([(0, 0, 0), HYENA], np.uint8))
    assert tuple(picture[10, 20]) == tuple(visible(HYENA))  # the region's edge
    assert tuple(picture[20, 20]) == (3, 36, 40)  # its inside: the half blend
    assert tuple(picture[0, 0]) == (0, 0, 0)  # background untouched


def test_the_legend_lists_the_classes_present():
    names, colors = ["background", "cheetah", "hyena"], np.array([(0, 0, 0), (250, 200, 40), HYENA], np.uint8)
    mask = np.zeros((30, 50), np.uint8)
    mask[5:10, 5:10] = 2
    both = legend(names, colors, [0, 2])
    assert legend(names, colors).shape[0] > both.shape[0] > legend(names, colors, [2]).shape[0]
    shown = with_legend(np.zeros((30, 50, 3), np.uint8), names, colors, mask)
    assert shown.shape[0] == 30 + both.shape[0] and np.array_equal(shown[:30, :50], np.zeros((30, 50, 3)))
