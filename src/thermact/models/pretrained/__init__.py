"""Load published SlowFast weights (RGB, Kinetics / AVA) into :class:`~thermact.models.slowfast.SlowFast`.

Sources: AlphAction ``.pth``, PySlowFast ``.pyth`` and Caffe2 ``.pkl``, PyTorchVideo
(:mod:`.reading` describes each format). Loading runs as small pure steps, each usable on its own:

1. :func:`read_checkpoint` - ``torch.load(weights_only=True)``; pickles only when trusted.
2. :func:`unwrap_state_dict` - take ``model`` / ``model_state`` / ``state_dict`` / ``blobs``.
3. :func:`detect_source` - format from the file extension and key names.
4. :func:`identify_architecture` - what the source's network computes beyond the tensors' shapes
   (stem max-pool padding, lateral style, alpha, res5 geometry: the table in :mod:`.architecture`,
   with the published layouts of ``thermact/models/layouts/*.json``); a model that differs in one
   of these would compute another function, so :func:`load_pretrained` refuses it, naming the
   constructor argument / config key to set (:func:`architecture_mismatches`).
5. :func:`remap_state_dict` - source names -> ours (:mod:`.keymaps`); head keys set apart.
6. :func:`adapt_input_channels` - RGB stem kernels summed over the colour axis for a 1-channel
   model (feeding grey ``x`` to the summed kernel equals feeding ``(x, x, x)`` to the RGB one);
   :func:`pad_temporal_kernels` - shorter odd temporal kernels zero-padded to ours (exact, because
   every temporal convolution pads by ``k // 2``).
7. :func:`match_state_dict` - compare with the model, producing a :class:`LoadReport`.

:func:`load_pretrained` chains them and loads into the model's SlowFast backbone (the model itself
or its only :class:`SlowFast` submodule), raising :class:`~thermact.errors.CheckpointError` with
the report when the file does not fit; nothing is loaded then. :func:`load_alphaction_interaction`
(:mod:`.alphaction_ia`) loads the interaction head of AlphAction's IA models.
"""

from thermact.models.pretrained.adapt import adapt_input_channels, pad_temporal_kernels
from thermact.models.pretrained.alphaction_ia import (
    IA_BLOCK_NAME,
    alphaction_block_order,
    conv1x1_to_linear,
    crop_temporal_positions,
    load_alphaction_interaction,
    remap_alphaction_interaction,
    remap_alphaction_interaction_key,
    select_dense_params,
)
from thermact.models.pretrained.architecture import (
    SOURCE_FACTS,
    Architecture,
    Mismatch,
    SourceFacts,
    architecture_mismatches,
    available_layouts,
    identify_architecture,
    read_layout,
    res5_note,
)
from thermact.models.pretrained.keymaps import Remapped, remap_key, remap_state_dict
from thermact.models.pretrained.loader import (
    MIN_LOADED_FRACTION,
    LoadReport,
    OpenedCheckpoint,
    find_backbone,
    load_pretrained,
    match_state_dict,
    open_checkpoint,
)
from thermact.models.pretrained.reading import (
    SOURCES,
    Source,
    SourceArg,
    detect_source,
    read_checkpoint,
    read_state_dict,
    unwrap_state_dict,
)

__all__ = [
    "IA_BLOCK_NAME",
    "MIN_LOADED_FRACTION",
    "SOURCES",
    "SOURCE_FACTS",
    "Architecture",
    "LoadReport",
    "Mismatch",
    "OpenedCheckpoint",
    "Remapped",
    "Source",
    "SourceArg",
    "SourceFacts",
    "adapt_input_channels",
    "alphaction_block_order",
    "architecture_mismatches",
    "available_layouts",
    "conv1x1_to_linear",
    "crop_temporal_positions",
    "detect_source",
    "find_backbone",
    "identify_architecture",
    "load_alphaction_interaction",
    "load_pretrained",
    "match_state_dict",
    "open_checkpoint",
    "pad_temporal_kernels",
    "read_checkpoint",
    "read_layout",
    "read_state_dict",
    "remap_alphaction_interaction",
    "remap_alphaction_interaction_key",
    "remap_key",
    "remap_state_dict",
    "res5_note",
    "select_dense_params",
    "unwrap_state_dict",
]
