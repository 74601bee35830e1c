"""Tests for thermact.models.masked_clip: masks, decoder layout, loss, loading pretrained backbones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thermact.engine.checkpoint import save_checkpoint
from thermact.errors import CheckpointError
from thermact.models.masked_clip import MaskedClipModel, load_pretrained_backbone, masked_mse, tube_mask
from thermact.models.thermal_net import thermal_net_s, thermal_net_t


def test_tube_mask_hides_the_asked_share() -> None:
    mask = tube_mask(3, (10, 15), 0.6, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 10, 15) and mask.dtype == torch.bool
    assert mask.sum(dim=(1, 2)).tolist() == [90, 90, 90]
    assert not torch.equal(mask[0], mask[1])
    with pytest.raises(ValueError, match="mask ratio"):
        tube_mask(1, (2, 2), 1.0)


def test_decoder_puts_each_output_at_its_pixel_and_frame() -> None:
    model = MaskedClipModel(thermal_net_t(), num_frames=8, temporal_stride=2)
    assert model.decoder.bias is not None
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.copy_(torch.arange(32.0))  # channel = s * 16 + py * 4 + px
    out = model(torch.randn(1, 1, 8, 40, 60), torch.zeros(1, 10, 15, dtype=torch.bool))
    assert out.shape == (1, 1, 8, 40, 60)
    assert out[0, 0, 3, 6, 9].item() == 16 + 2 * 4 + 1  # frame 3 = 2*1 + 1, row 6 = 4 + 2, col 9 = 8 + 1
    assert out[0, 0, 0, 0, 0].item() == 0 and out[0, 0, 7, 39, 59].item() == 31


def test_masked_mse_counts_only_hidden_pixels() -> None:
    clip = torch.randn(2, 1, 4, 8, 8)
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[0, 1, 0] = True
    recon = clip.clone()
    recon[0, 0, :, 4:8, 0:4] += 2.0  # wrong exactly on the hidden patch
    recon[1] += 5.0  # wrong where nothing is hidden
    assert masked_mse(recon, clip, mask, patch=4).item() == pytest.approx(4.0)


def test_masked_input_does_not_reach_the_model() -> None:
    model = MaskedClipModel(thermal_net_t(), num_frames=8, temporal_stride=2).eval()
    clip = torch.randn(1, 1, 8, 40, 60)
    mask = tube_mask(1, (10, 15), 0.5, torch.Generator().manual_seed(3))
    other = clip.clone()
    hidden = mask.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None, None].expand_as(clip)
    other[hidden] = 100.0
    torch.testing.assert_close(model(clip, mask), model(other, mask))


def test_pretrained_backbone_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MaskedClipModel(thermal_net_t(), num_frames=8, temporal_stride=2)
    path = tmp_path / "pre.pt"
    config = {"task": "pretrain", "model": {"name": "thermal_net_t"}}
    save_checkpoint(path, {"model": model.state_dict(), "config": config, "classes": []})
    fresh = thermal_net_t()
    report = load_pretrained_backbone(fresh, path, "thermal_net_t")
    assert report.complete and report.dropped == ["decoder.weight", "decoder.bias"]
    assert set(report.loaded) == set(fresh.state_dict())
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, model.backbone.state_dict()[key])
    with pytest.raises(CheckpointError, match="set model.name=thermal_net_t"):
        load_pretrained_backbone(thermal_net_s(), path, "thermal_net_s")
    with pytest.raises(CheckpointError, match=r"do not fit:[\s\S]*missing"):  # a lying model name
        load_pretrained_backbone(thermal_net_s(), path, "thermal_net_t")
    other = tmp_path / "action.pt"
    save_checkpoint(other, {"model": model.state_dict(), "config": {"task": "action"}, "classes": []})
    with pytest.raises(CheckpointError, match="not a thermact pretrain checkpoint"):
        load_pretrained_backbone(fresh, other, "thermal_net_t")
