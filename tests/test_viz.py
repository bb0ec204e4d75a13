"""Figures that must make their point: attention maps on one shared scale, with a colour bar (issue 14)."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from minildm import viz  # noqa: E402


def _map_images(fig):
    return [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "inferno"]


def test_shared_scale_puts_every_map_on_one_colour_scale_with_a_bar():
    maps = torch.rand(2, 3, 8, 8)
    maps[1, 0] *= 5  # one map far brighter than the rest: on a shared scale the others must look dimmer
    fig = viz.show_attention(torch.zeros(2, 1, 8, 8), maps, ["a", "b"], vmax="shared")
    ims = _map_images(fig)
    assert len(ims) == 4 and all(im.get_clim() == pytest.approx((0.0, float(maps[:, :2].max()))) for im in ims)
    assert len(fig.axes) == 2 * 3 + 1  # the image and two maps per row, and the colour bar


def test_a_given_vmax_lets_two_figures_share_a_scale_and_the_default_scales_each_map():
    one = viz.show_attention(torch.zeros(1, 1, 8, 8), torch.rand(1, 2, 8, 8), ["a"], vmax=0.05)
    assert {im.get_clim() for im in _map_images(one)} == {(0.0, 0.05)}
    each = viz.show_attention(torch.zeros(1, 1, 8, 8), torch.rand(1, 2, 8, 8) * 0.01, ["a", "b"])
    assert len(each.axes) == 3 and all(im.get_clim()[1] <= 0.01 for im in _map_images(each))
    with pytest.raises(ValueError, match="vmax must be None, a number or 'shared'"):
        viz.show_attention(torch.zeros(1, 1, 8, 8), torch.rand(1, 2, 8, 8), ["a"], vmax="same")
