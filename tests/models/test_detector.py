"""Tests of thermact.models.action.ActionModel."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from thermact.models.action import ActionModel
from thermact.models.head import RoIActionHead
from thermact.models.thermal_net import thermal_net_s


class _IdentityBackbone(nn.Module):
    """Returns its pathway inputs as features (stride 1) and records their shapes."""

    def __init__(self, pathway_strides: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        self.out_channels: tuple[int, ...] = (1,) * len(pathway_strides)
        self.spatial_stride = 1
        self.pathway_strides = pathway_strides
        self.seen: list[list[int]] = []

    def forward(self, pathways: list[Tensor]) -> list[Tensor]:
        self.seen = [list(p.shape) for p in pathways]
        return [p * 1.0 for p in pathways]


def _ramp_clip() -> Tensor:
    # value = x + 2 y (pixel index), constant over time; the mean over a box is its centre value
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    return (x + 2 * y).view(1, 1, 1, 20, 30).expand(2, 1, 4, 20, 30).contiguous()


def _head(channels: tuple[int, ...] = (1,), scale: float = 1.0) -> RoIActionHead:
    return RoIActionHead(
        channels, scale, num_classes=3, roi_size=4, mlp_dim=8, dropout=0.0, spatial_pool="avg"
    )


def test_resize_scales_boxes_consistently() -> None:
    torch.manual_seed(0)
    head = _head()
    plain = ActionModel(_IdentityBackbone(), head).eval()
    upsampled = ActionModel(_IdentityBackbone(), head, input_size=(60, 75)).eval()
    rois = torch.tensor([[0.0, 4.0, 3.0, 12.0, 15.0], [1.0, 10.0, 5.0, 22.5, 11.0]])
    clip = _ramp_clip()
    r_clip, r_rois = upsampled.resize(clip, rois)
    assert r_clip.shape == (2, 1, 4, 60, 75)
    torch.testing.assert_close(r_rois, rois * torch.tensor([1.0, 2.5, 3.0, 2.5, 3.0]))
    # the ramp is linear and the boxes are interior: the pooled value (box centre) is unchanged
    f_plain = plain.features(clip, rois)
    torch.testing.assert_close(upsampled.features(clip, rois), f_plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(upsampled(clip, rois), plain(clip, rois), rtol=1e-4, atol=1e-4)
    # and the pooled value is the box centre in pixel-index units (centre - 0.5)
    cx, cy = (4 + 12) / 2 - 0.5, (3 + 15) / 2 - 0.5
    torch.testing.assert_close(f_plain[0], head.mlp(torch.tensor([cx + 2 * cy])))


def test_pathways_follow_backbone_strides() -> None:
    bb = _IdentityBackbone((4, 1))
    det = ActionModel(bb, _head((1, 1)))
    out = det(torch.randn(2, 1, 16, 8, 8), torch.tensor([[0.0, 1.0, 1.0, 6.0, 6.0]]))
    assert out.shape == (1, 3)
    assert bb.seen == [[2, 1, 4, 8, 8], [2, 1, 16, 8, 8]]


def test_thermal_net_detector_end_to_end() -> None:
    torch.manual_seed(0)
    bb = thermal_net_s()
    det = ActionModel(bb, RoIActionHead(bb.out_channels, 0.25, num_classes=14, mlp_dim=64)).eval()
    clip = torch.randn(2, 1, 16, 40, 60)
    rois = torch.tensor(
        [[0.0, 5.0, 5.0, 15.0, 25.0], [1.0, 30.0, 10.0, 45.0, 30.0], [1.0, 0.0, 0.0, 10.0, 10.0]]
    )
    logits = det(clip, rois)
    assert logits.shape == (3, 14)
    # each box only depends on its own clip
    clip2 = clip.clone()
    clip2[0] = torch.randn(1, 16, 40, 60)
    logits2 = det(clip2, rois)
    torch.testing.assert_close(logits[1:], logits2[1:])
    assert not torch.allclose(logits[0], logits2[0])


def test_constructor_and_input_validation() -> None:
    with pytest.raises(TypeError, match="Backbone protocol"):
        ActionModel(nn.Linear(2, 2), _head())
    with pytest.raises(ValueError, match="spatial_scale"):
        ActionModel(_IdentityBackbone(), _head(scale=0.5))
    with pytest.raises(ValueError, match="in_channels"):
        ActionModel(_IdentityBackbone(), _head((2,)))
    det = ActionModel(_IdentityBackbone(), _head())
    with pytest.raises(ValueError, match="clip"):
        det(torch.zeros(1, 4, 8, 8), torch.zeros(0, 5))
    with pytest.raises(ValueError, match="rois"):
        det(torch.zeros(1, 1, 4, 8, 8), torch.zeros(3, 4))
