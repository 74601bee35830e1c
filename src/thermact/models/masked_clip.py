"""Masked-clip reconstruction: self-supervised pretraining of a ThermalNet on unlabelled clips.

Every frame a sensor records is training data for this task, labelled or not. A random set of
``patch x patch`` pixel squares is hidden in *every* frame of a clip (a tube mask: the hidden
content cannot be copied from a neighbouring frame), the backbone encodes the masked clip, and a
linear decoder predicts each hidden pixel of each frame from the feature cell above it. To fill in
a hidden person the network has to know what people look like from above and how they move, which
is what the action head needs. The decoder is thrown away after pretraining; the backbone's
weights initialise the action model (``model.pretrained``, :func:`load_pretrained_backbone`).

Shapes:
    clip: ``[B, 1, T, H, W]`` normalised temperatures; ``H`` and ``W`` multiples of ``patch``.
    mask: bool ``[B, H // patch, W // patch]``, True = hidden.
    reconstruction: ``[B, 1, T, H, W]``.

The patch equals the backbone's spatial stride, so every feature cell decodes exactly its own
``patch x patch`` square, and the backbone's temporal stride ``s`` is undone by predicting ``s``
frames per feature frame.

Hand-over (:func:`load_pretrained_backbone`, small pure steps as for the published SlowFast
weights in :mod:`thermact.models.pretrained`): read the file weights-only, check it is a
``thermact pretrain`` checkpoint of the same backbone, split its tensors into backbone
(``backbone.*``, loaded), decoder (``decoder.*``, dropped) and anything else (unexpected), match
them against the model (:class:`~thermact.models.pretrained.LoadReport`) and load strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.base import Backbone
from thermact.models.pretrained.keymaps import Remapped
from thermact.models.pretrained.loader import LoadReport, load_tensors, match_state_dict
from thermact.models.pretrained.reading import read_checkpoint

__all__ = [
    "PRETRAIN_TASK",
    "MaskedClipModel",
    "load_pretrained_backbone",
    "masked_mse",
    "split_pretrain_state",
    "tube_mask",
]

PRETRAIN_TASK = "pretrain"
"""The ``task`` of a ``thermact pretrain`` checkpoint's config."""


def tube_mask(
    batch: int, cells: tuple[int, int], ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """Bool ``[batch, h, w]`` with exactly ``round(ratio * h * w)`` True cells per clip, chosen at random."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    h, w = cells
    hidden = round(ratio * h * w)
    order = torch.rand((batch, h * w), generator=generator).argsort(dim=1)
    return (order < hidden).reshape(batch, h, w)


def _pixels(mask: Tensor, patch: int) -> Tensor:
    """Cell mask ``[B, h, w]`` → pixel mask ``[B, 1, 1, h * patch, w * patch]``."""
    return mask.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)[:, None, None]


def masked_mse(reconstruction: Tensor, clip: Tensor, mask: Tensor, patch: int) -> Tensor:
    """Mean squared error over the hidden pixels of every frame (scalar)."""
    pixels = _pixels(mask, patch)
    err = (reconstruction - clip).square() * pixels
    count = pixels.sum() * clip.shape[2]
    return err.sum() / count.clamp_min(1)


class MaskedClipModel(nn.Module):
    """A backbone with a linear pixel decoder for masked-clip reconstruction.

    Args:
        backbone: a single-pathway :class:`~thermact.models.base.Backbone` (ThermalNet).
        num_frames: clip length ``T``; a multiple of ``temporal_stride``.
        temporal_stride: the backbone's total temporal stride (``T / T'``).

    ``forward(clip, mask)`` hides the masked cells (value 0: the training mean after
    normalisation) and returns the reconstruction ``[B, 1, T, H, W]``.
    """

    def __init__(self, backbone: nn.Module, num_frames: int, temporal_stride: int) -> None:
        super().__init__()
        spec = cast(Backbone, backbone)
        if len(spec.out_channels) != 1 or tuple(spec.pathway_strides) != (1,):
            raise ValueError("masked-clip pretraining needs a single-pathway backbone")
        if num_frames % temporal_stride:
            raise ValueError(
                f"num_frames {num_frames} is not a multiple of the temporal stride {temporal_stride}"
            )
        self.backbone = backbone
        self.patch = int(spec.spatial_stride)
        self.temporal_stride = int(temporal_stride)
        self.num_frames = int(num_frames)
        self.decoder = nn.Conv3d(
            int(spec.out_channels[0]), self.temporal_stride * self.patch**2, kernel_size=1
        )

    def forward(self, clip: Tensor, mask: Tensor) -> Tensor:
        B, H, W = clip.shape[0], clip.shape[3], clip.shape[4]
        p, s = self.patch, self.temporal_stride
        if H % p or W % p or tuple(mask.shape) != (B, H // p, W // p):
            raise ValueError(f"mask {list(mask.shape)} does not tile a {H}x{W} clip in {p}x{p} patches")
        hidden = clip.masked_fill(_pixels(mask, p), 0.0)
        feats = self.backbone([hidden])[0]  # [B, C, T/s, H/p, W/p]
        y = self.decoder(feats)  # [B, s*p*p, T/s, H/p, W/p]
        t, h, w = y.shape[2:]
        y = y.reshape(B, s, p, p, t, h, w).permute(0, 4, 1, 5, 2, 6, 3)  # [B, t, s, h, p, w, p]
        out: Tensor = y.reshape(B, 1, t * s, h * p, w * p)
        return out


def split_pretrain_state(state: Mapping[str, Tensor]) -> Remapped:
    """A pretrain checkpoint's ``model`` tensors: ``backbone.*`` under the backbone's own names,
    ``decoder.*`` set apart as the head, anything else unknown."""
    out = Remapped({}, {}, [], [])
    for key, value in state.items():
        if key.startswith("backbone."):
            name = key.removeprefix("backbone.")
            out.tensors[name], out.origin[name] = value, key
        elif key.startswith("decoder."):
            out.head.append(key)
        else:
            out.unknown.append(key)
    return out


def _pretrain_model_state(ckpt: Any, path: str, model_name: str) -> Mapping[str, Tensor]:
    """The ``model`` tensors of a ``thermact pretrain`` checkpoint of ``model_name`` (else a CheckpointError)."""
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or config.get("task") != PRETRAIN_TASK or "model" not in ckpt:
        raise CheckpointError(
            f"{path}: not a thermact pretrain checkpoint (ThermalNet weights come from `thermact pretrain`)"
        )
    trained = config.get("model", {}).get("name")
    if trained != model_name:
        raise CheckpointError(
            f"{path}: pretrained a {trained} backbone, not {model_name} (set model.name={trained})"
        )
    state: Mapping[str, Tensor] = ckpt["model"]
    return state


def load_pretrained_backbone(backbone: nn.Module, path: str | Path, model_name: str) -> LoadReport:
    """Load the backbone of a ``thermact pretrain`` checkpoint into ``backbone`` (strict; the decoder
    is dropped). Returns the report (missing / unexpected / mismatched keys: all empty).

    Raises:
        CheckpointError: unreadable file, not a pretrain checkpoint of ``model_name``, or a tensor
            missing, left over or of another shape (the report names them); nothing is loaded then.
    """
    ckpt = read_checkpoint(path)
    tensors = split_pretrain_state(_pretrain_model_state(ckpt, str(path), model_name))
    report = match_state_dict(tensors, backbone.state_dict(), path, PRETRAIN_TASK, no_head=True)
    if not report.complete:
        raise CheckpointError(f"backbone weights do not fit:\n{report}")
    load_tensors(backbone, tensors.tensors, report.loaded)
    return report
