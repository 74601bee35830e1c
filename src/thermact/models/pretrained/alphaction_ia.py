"""Load the interaction (IA) structure and head MLP of an AlphAction IA checkpoint.

Steps (each a pure function): :func:`~thermact.models.pretrained.reading.read_checkpoint`,
:func:`~thermact.models.pretrained.reading.unwrap_state_dict`, :func:`remap_alphaction_interaction`,
:func:`conv1x1_to_linear`, :func:`select_dense_params`, :func:`crop_temporal_positions`,
:func:`~thermact.models.pretrained.loader.match_state_dict`; :func:`load_alphaction_interaction`
chains them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from thermact.errors import CheckpointError
from thermact.models.pretrained.keymaps import Remapped, apply_rules, rules
from thermact.models.pretrained.loader import LoadReport, OpenedCheckpoint, load_tensors, match_state_dict
from thermact.models.pretrained.reading import read_checkpoint, strip_prefixes, unwrap_state_dict

__all__ = [
    "IA_BLOCK_NAME",
    "alphaction_block_order",
    "conv1x1_to_linear",
    "crop_temporal_positions",
    "load_alphaction_interaction",
    "remap_alphaction_interaction",
    "remap_alphaction_interaction_key",
    "select_dense_params",
]

# AlphAction's IA models keep the interaction structure and the head MLP under
# ``roi_heads.action.feature_extractor.`` (``ia_structure.*``, ``fc1.*``, ``fc2.*``), the classifier
# under ``roi_heads.action.predictor.cls_score.*``. The blocks are 1x1x1 Conv3d on ``[K, C, 1, 1, 1]``
# features (here ``Linear``); the temporal-position embeddings are ``[L, 1, C, 1, 1, 1]`` and the
# dense-serial mixing weights ``[i, C, 1, 1, 1]``. The exact layout of the published
# resnet101_8x8f_denseserial model is ``layouts/alphaction_ia_dense_serial_r101_8x8.json``.

_IA_HEAD = r"^roi_heads\.action\.feature_extractor\."
_IA = _IA_HEAD + r"ia_structure\."
IA_BLOCK_NAME = re.compile(
    r"^(?:module\.)?roi_heads\.action\.feature_extractor\.ia_structure\.([POM]_block_\d+)\."
)

_IA_RULES = rules(
    (
        _IA + r"(person_dim_reduce|mem_dim_reduce|person_key_dim_reduce)\.(weight|bias)$",
        lambda m: f"interaction.{m[1]}.{m[2]}",
    ),
    (
        _IA + r"([PM]_block_\d+)\.(query|key|value|out|shortcut)\.(weight|bias)$",
        lambda m: f"interaction.blocks.{m[1]}.{m[2]}.{m[3]}",
    ),
    (
        _IA + r"([PM]_block_\d+)\.temporal_position_([kv])$",
        lambda m: f"interaction.blocks.{m[1]}.temporal_position_{m[2]}",
    ),
    (_IA + r"dense_params\.(\d+)$", lambda m: f"interaction.dense_params.{m[1]}"),
    (_IA_HEAD + r"fc1\.(weight|bias)$", lambda m: f"head.mlp.0.{m[1]}"),
    (_IA_HEAD + r"fc2\.(weight|bias)$", lambda m: f"head.mlp.3.{m[1]}"),
)
_IA_DROPPED = re.compile(_IA + r"(O_block_\d+\.|object_dim_reduce\.)|^roi_heads\.action\.predictor\.")


def remap_alphaction_interaction_key(key: str) -> tuple[Literal["ours", "dropped", "other", "unknown"], str]:
    """Map one AlphAction IA-model key to ``("ours", our_key)``; ``"dropped"``: object blocks and the
    AVA classifier (no place here); ``"other"``: not a head key (the backbone's loader reads those);
    ``"unknown"``: a head key with no rule."""
    k = strip_prefixes(key, ("module.",))
    if not k.startswith("roi_heads."):
        return "other", key
    if _IA_DROPPED.match(k):
        return "dropped", key
    ours = apply_rules(_IA_RULES, k)
    return ("unknown", key) if ours is None else ("ours", ours)


def remap_alphaction_interaction(state: Mapping[str, Tensor]) -> Remapped:
    """Rename an AlphAction IA checkpoint's head tensors to ours (``interaction.*``, ``head.mlp.*``).

    ``Remapped.head`` collects the dropped keys (object blocks, classifier); backbone keys are
    left out altogether.
    """
    out = Remapped({}, {}, [], [])
    for key, value in state.items():
        kind, name = remap_alphaction_interaction_key(key)
        if kind == "dropped":
            out.head.append(key)
        elif kind == "unknown" or (kind == "ours" and name in out.tensors):
            out.unknown.append(key)
        elif kind == "ours":
            out.tensors[name] = value
            out.origin[name] = key
    return out


def alphaction_block_order(state: Mapping[str, Tensor]) -> list[str]:
    """AlphAction's block names in ``I_BLOCK_LIST`` order (the order the checkpoint stores them)."""
    order: list[str] = []
    for key in state:
        m = IA_BLOCK_NAME.match(key)
        if m is not None and m[1] not in order:
            order.append(m[1])
    return order


def conv1x1_to_linear(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """1x1x1 conv weights ``[o, i, 1, 1, 1]`` -> ``[o, i]``; temporal positions ``[L, 1, C, 1, 1, 1]``
    -> ``[L, C]``; dense mixing weights ``[n, C, 1, 1, 1]`` -> ``[n, C]`` (``interaction.*`` only)."""
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        if not name.startswith("interaction.") or value.dim() <= 2:
            continue
        if any(int(d) != 1 for d in value.shape[2:]) and not name.split(".")[-1].startswith(
            "temporal_position"
        ):
            continue
        out[name] = value.reshape(int(value.shape[0]), -1)
        notes.append(f"{name}: {list(value.shape)} reshaped to {list(out[name].shape)}")
    return out, notes


def select_dense_params(
    tensors: Mapping[str, Tensor], their_blocks: list[str], our_blocks: list[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """Re-index dense-serial mixing weights from AlphAction's block list to ours.

    AlphAction's ``dense_params[j]`` ``[j, C]`` weights the outputs of its blocks ``0..j-1`` for its
    block ``j``. Our block ``i`` (same name) keeps the rows of the blocks we also have (object
    blocks are dropped: their outputs do not exist here; the softmax renormalises over the rest).
    A block whose earlier blocks are not all among AlphAction's earlier blocks is left unmapped.
    """
    out = {k: v for k, v in tensors.items() if not k.startswith("interaction.dense_params.")}
    notes: list[str] = []
    for i in range(2, len(our_blocks)):
        name = our_blocks[i]
        if name not in their_blocks:
            continue
        j = their_blocks.index(name)
        source = tensors.get(f"interaction.dense_params.{j}")
        rows = [their_blocks.index(n) if n in their_blocks[:j] else -1 for n in our_blocks[:i]]
        if source is None or -1 in rows:
            continue
        out[f"interaction.dense_params.{i}"] = source[rows]
        if rows != list(range(j)):
            notes.append(f"interaction.dense_params.{i} <- dense_params.{j} rows {rows} (block {name})")
    return out, notes


def crop_temporal_positions(
    tensors: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], list[str]]:
    """Keep the central ``L`` of a longer (odd) list of temporal-position embeddings.

    AlphAction's slots are 1 s wide and centred on the keyframe (``LENGTH: (30, 30)`` -> 61); a
    model with ``memory_slot_s: 1`` and a shorter window uses the middle ones.
    """
    out = dict(tensors)
    notes: list[str] = []
    for name, value in tensors.items():
        target = model_shapes.get(name)
        if target is None or "temporal_position" not in name or value.dim() != 2 or len(target) != 2:
            continue
        L_src, L_dst = int(value.shape[0]), int(target[0])
        if L_src > L_dst and L_src % 2 == 1 and L_dst % 2 == 1 and value.shape[1] == target[1]:
            start = (L_src - L_dst) // 2
            out[name] = value[start : start + L_dst]
            notes.append(f"{name}: central {L_dst} of {L_src} temporal positions")
    return out, notes


def load_alphaction_interaction(
    model: nn.Module,
    checkpoint: str | Path | OpenedCheckpoint,
    trust_checkpoint: bool = False,
    strict: bool = True,
) -> LoadReport:
    """Load the IA structure and head MLP of an AlphAction IA checkpoint into ``model``.

    ``model`` is an :class:`~thermact.models.action.ActionModel` with an ``interaction``
    head. Steps: :func:`read_checkpoint`, :func:`unwrap_state_dict`,
    :func:`remap_alphaction_interaction`, :func:`conv1x1_to_linear`, :func:`select_dense_params`,
    :func:`crop_temporal_positions`, :func:`match_state_dict` over our ``interaction.*`` and
    ``head.mlp.*`` tensors. Object blocks and the AVA classifier are dropped (reported); backbone
    tensors are ignored (see :func:`load_pretrained`). With ``strict``, every one of our
    interaction/MLP tensors must load; otherwise :class:`CheckpointError` with the report and the
    model is unchanged. ``checkpoint``: a file, or one read by :func:`open_checkpoint`.
    """
    path = checkpoint.path if isinstance(checkpoint, OpenedCheckpoint) else str(checkpoint)
    interaction = getattr(model, "interaction", None)
    if not isinstance(interaction, nn.Module):
        raise CheckpointError(f"checkpoint {path}: the model has no interaction head to load IA weights into")
    if isinstance(checkpoint, OpenedCheckpoint):
        state = checkpoint.state
    else:
        state = unwrap_state_dict(read_checkpoint(path, trust_checkpoint=trust_checkpoint), path)
    their_blocks = alphaction_block_order(state)
    if not their_blocks:
        raise CheckpointError(
            f"checkpoint {path} holds no AlphAction IA structure (no roi_heads.action.feature_extractor."
            "ia_structure.*_block_* keys)"
        )
    remapped = remap_alphaction_interaction(state)
    model_state = {k: v for k, v in model.state_dict().items() if k.startswith(("interaction.", "head.mlp."))}
    shapes = {k: v.shape for k, v in model_state.items()}
    tensors, notes_conv = conv1x1_to_linear(remapped.tensors)
    our_blocks = [str(n) for n in getattr(interaction, "names", ())]
    tensors, notes_dense = select_dense_params(tensors, their_blocks, our_blocks)
    tensors, notes_pos = crop_temporal_positions(tensors, shapes)
    tensors = {k: v.to(model_state[k].dtype) if k in model_state else v for k, v in tensors.items()}
    origin = {k: remapped.origin.get(k, k) for k in tensors}
    for k in tensors:  # renamed dense params: name their source
        if k.startswith("interaction.dense_params.") and k not in remapped.origin:
            origin[k] = "roi_heads.action.feature_extractor.ia_structure.dense_params.*"
    report = match_state_dict(
        Remapped(tensors, origin, remapped.head, remapped.unknown), model_state, path, "alphaction"
    )
    report.adapted = [n for n in notes_dense + notes_pos]
    report.adapted.append(f"{len(notes_conv)} 1x1x1 conv / embedding tensors reshaped to linear layout")
    if strict and not report.complete:
        raise CheckpointError(
            f"AlphAction IA checkpoint does not fit the interaction head (strict=True):\n{report}"
        )
    if not report.loaded:
        raise CheckpointError(
            f"AlphAction IA checkpoint loads no tensor into the interaction head:\n{report}"
        )
    load_tensors(model, tensors, report.loaded)
    return report
