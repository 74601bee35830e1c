"""Tests of thermact.models.head.RoIActionHead."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermact.models.head import RoIActionHead
from thermact.ops.roi_align import roi_align


def _head(**kw: object) -> RoIActionHead:
    args: dict[str, object] = {"in_channels": (2, 3), "spatial_scale": 0.5, "num_classes": 4, "roi_size": 3}
    args.update(kw)
    head = RoIActionHead(mlp_dim=5, dropout=0.0, **args)  # type: ignore[arg-type]
    return head.eval()


def test_spatially_constant_features_give_temporal_pool_of_each_channel() -> None:
    torch.manual_seed(0)
    # pathway 0: 2 channels, 4 frames; pathway 1: 3 channels, 8 frames; constant over space
    v0 = torch.randn(2, 2, 4)
    v1 = torch.randn(2, 3, 8)
    f0 = v0[..., None, None].expand(2, 2, 4, 6, 7)
    f1 = v1[..., None, None].expand(2, 3, 8, 6, 7)
    boxes = torch.tensor([[1.0, 2.0, 2.0, 8.0, 10.0], [0.0, 0.0, 0.0, 4.0, 4.0]])

    def mean_t(t: torch.Tensor) -> torch.Tensor:
        return t.mean(-1)

    def max_t(t: torch.Tensor) -> torch.Tensor:
        return t.amax(-1)

    for pool, reduce in (("avg", mean_t), ("max", max_t)):
        head = _head(temporal_pool=pool)
        expected_in = torch.stack(
            [torch.cat([reduce(v0[1]), reduce(v1[1])]), torch.cat([reduce(v0[0]), reduce(v1[0])])]
        )
        torch.testing.assert_close(head.features([f0, f1], boxes), head.mlp(expected_in))
        torch.testing.assert_close(head([f0, f1], boxes), head.classifier(head.mlp(expected_in)))


def test_roi_pooling_matches_roi_align_and_localises() -> None:
    torch.manual_seed(0)
    feat = torch.zeros(1, 2, 3, 10, 12)
    feat[0, :, :, 2, 3] = 4.0  # hot cell at feature (y=2, x=3) = input pixels y 4..5, x 6..7
    boxes = torch.tensor([[0.0, 5.0, 3.0, 9.0, 7.0], [0.0, 14.0, 10.0, 20.0, 18.0]])
    head = _head(in_channels=(2,), spatial_pool="max")
    fmap = feat.mean(dim=2)
    expected = roi_align(fmap, boxes, 3, spatial_scale=0.5, sampling_ratio=-1, aligned=True).amax(dim=(2, 3))
    torch.testing.assert_close(head.features([feat], boxes), head.mlp(expected))
    assert float(expected[0].min()) > 0.5  # the box over the hot cell sees it
    assert float(expected[1].abs().max()) == 0.0  # the far box does not
    avg = _head(in_channels=(2,), spatial_pool="avg")
    exp_avg = roi_align(fmap, boxes, 3, spatial_scale=0.5, sampling_ratio=-1, aligned=True).mean(dim=(2, 3))
    torch.testing.assert_close(avg.features([feat], boxes), avg.mlp(exp_avg))


def test_mlp_structure_and_no_inplace() -> None:
    head = RoIActionHead((8,), 0.25, num_classes=3, mlp_dim=16, dropout=0.3)
    kinds = [type(m) for m in head.mlp]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout]
    assert all(not getattr(m, "inplace", False) for m in head.modules())
    assert head.classifier.in_features == 16 and head.classifier.out_features == 3


def test_no_boxes_gives_empty_logits_and_backward_works() -> None:
    head = _head().train()
    f0 = torch.randn(1, 2, 4, 6, 7, requires_grad=True)
    f1 = torch.randn(1, 3, 8, 6, 7)
    out = head([f0, f1], torch.zeros(0, 5))
    assert out.shape == (0, 4)
    out.sum().backward()
    assert f0.grad is not None and float(f0.grad.abs().sum()) == 0.0


def test_validation_errors() -> None:
    head = _head()
    f0, f1 = torch.randn(1, 2, 4, 6, 7), torch.randn(1, 3, 8, 6, 7)
    with pytest.raises(ValueError, match="pathway features"):
        head([f0], torch.zeros(0, 5))
    with pytest.raises(ValueError, match="pathway 1"):
        head([f0, torch.randn(1, 4, 8, 6, 7)], torch.zeros(0, 5))
    with pytest.raises(ValueError, match="spatial size"):
        head([f0, torch.randn(1, 3, 8, 5, 7)], torch.zeros(0, 5))
    with pytest.raises(ValueError, match=r"\[K, 5\]"):
        head([f0, f1], torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temporal_pool"):
        RoIActionHead((2,), 1.0, 3, temporal_pool="sum")  # type: ignore[arg-type]
