"""The whole model trains: on 4 real clips the loss falls by at least half in a fixed budget."""

from __future__ import annotations

import torch

from thermact.data.clips import ClipConfig
from thermact.data.dataset import ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.data.transforms import compute_norm_stats
from thermact.models.factory import HeadConfig, ModelConfig, build_model


def test_loss_halves_on_four_real_clips(real_data: ThermalData) -> None:
    torch.manual_seed(0)
    # four keyframes of three different classes (standing, lying with risk, kneeling, crouching)
    wanted = [
        "SL14_R1_1760482260170",
        "SL14_R2_1760482327689",
        "SL18_R3_1760639398334",
        "SL18_R1_1760639223610",
    ]
    by_id = {k.keyframe_id: k for k in real_data.keyframes}
    keyframes = [by_id[w] for w in wanted]
    labels = sorted({b.label for k in keyframes for b in k.persons})
    assert len(labels) >= 3
    clip = ClipConfig(window_s=2.7, num_frames=16)
    norm = compute_norm_stats(real_data.recordings, keyframes, clip)
    batch = collate_clips([ClipDataset.from_data(real_data, keyframes, clip, norm=norm)[i] for i in range(4)])
    model = build_model(ModelConfig(head=HeadConfig(mlp_dim=256, dropout=0.2)), verbose=False)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(batch.frames, batch.rois), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 1.5  # ~log(14) at initialisation
    assert min(losses[-5:]) < 0.5 * losses[0], losses
