"""Reference outputs of the sources' own code for the pretrained-loading parity tests.

Writes ``tests/models/reference/*_reference.pt`` (tensors, lists and strings only). Not run by CI;
each command needs what it says and only torch otherwise:

* ``alphaction`` - trims ``../shared/reference/alphaction_slowfast_r{50,101}_reference.pt``
  (outputs of AlphAction's own SlowFast backbone code, see ``/work/shared/README.md``) to what
  the tests need (:func:`trim`).
* ``pytorchvideo`` - runs PyTorchVideo's ``slowfast_r50`` and ``slowfast_r50_detection``
  (``pytorchvideo.models.hub``, ``pretrained=False``) with every tensor set by ``WEIGHT_RULE``
  on the fixed input and keeps the output of the last stage (``blocks[4]``, before pooling).
  PyTorchVideo is not a thermact dependency; it installs next to this torch without pulling
  another one::

      python3 -m venv /tmp/ptv-venv && /tmp/ptv-venv/bin/pip install torch==2.13.0 pytorchvideo
      /tmp/ptv-venv/bin/python benchmarks/reference/make_references.py pytorchvideo

  Its ``models/head.py`` imports ``torchvision.ops.RoIAlign`` (detection head only); torchvision
  cannot be installed next to this torch, so when it is missing a stand-in module is registered
  whose ``RoIAlign`` builds but refuses to run. No head is run.
* ``alphaction-ia --alphaction-src DIR`` - runs AlphAction's interaction blocks
  (``AlphAction/modeling/roi_heads/action_head/IA_structure.py`` of a checkout of
  MVIG-SJTU/AlphAction at ``DIR``) of the published dense-serial R101 model
  (``layouts/alphaction_ia_dense_serial_r101_8x8.json``) with every tensor set by
  ``WEIGHT_RULE`` (keys with their checkpoint prefix), on inputs of ``IA_INPUT_RULE``
  (:func:`alphaction_ia`). That file is loaded on its own: its two imports (the structure
  registry and the ``has_person`` / ``has_object`` / ``has_memory`` predicates) are given
  stand-ins, and the strides its 1x1x1 convs receive as ``True`` (``bias`` passed
  positionally; 1 under the PyTorch 1.x it was written for, refused by PyTorch 2) are set to 1.

The weights of every reference follow ``WEIGHT_RULE`` (the rule of the AlphAction references):
the tests regenerate them, write them in the source's checkpoint layout and load that file as a
user does. Outputs are kept as :func:`trim` says: every 8th channel at every position, the mean
over positions of every channel, and ``max |output|``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
import types
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "models" / "reference"
CHANNEL_STEP = 8
PTV_ALPHA = 4  # create_slowfast's slowfast_fusion_conv_stride (4, 1, 1): every PyTorchVideo SlowFast
WEIGHT_RULE = """For every key K of the state dict (the source's names), with
g = torch.Generator().manual_seed(zlib.crc32(K.encode())):
  *.num_batches_tracked      -> unchanged (0)
  BatchNorm weight, running_var (keys in bn_keys ending in .weight / .running_var) -> torch.rand(shape, generator=g) * 0.5 + 0.75
  BatchNorm bias, running_mean (other keys in bn_keys)                            -> torch.rand(shape, generator=g) * 0.5 - 0.25
  other tensors >= 2-D       -> torch.randn(shape, generator=g) * (2 / fan_in) ** 0.5, fan_in = prod(shape[1:])
  other 1-D tensors          -> torch.randn(shape, generator=g) * 0.01
all float32. Input: grey = torch.randn(1, 1, 32, 64, 96, generator=torch.Generator().manual_seed(1));
the source receives fast = grey repeated to 3 channels, slow = fast[:, :, ::alpha]; eval mode, no grad."""


def weights_by_rule(shapes: dict[str, list[int]], bn_keys: set[str]) -> dict[str, Tensor]:
    """The tensors of ``WEIGHT_RULE`` for a key -> shape map."""
    out: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key in bn_keys and key.endswith((".weight", ".running_var")):
            out[key] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key in bn_keys:
            out[key] = torch.rand(shape, generator=g) * 0.5 - 0.25
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) * (2 / math.prod(shape[1:])) ** 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.01
    return out


def grey_input() -> Tensor:
    """The fixed input ``[1, 1, 32, 64, 96]`` of ``WEIGHT_RULE``."""
    return torch.randn(1, 1, 32, 64, 96, generator=torch.Generator().manual_seed(1))


def trim(outputs: dict[str, Tensor]) -> dict[str, Any]:
    """Every 8th channel (all positions), per-channel means and ``max |x|`` of each output, unchanged."""
    out: dict[str, Any] = {"channel_step": CHANNEL_STEP}
    for name, value in outputs.items():
        out[f"{name}_shape"] = list(value.shape)
        out[f"{name}_every{CHANNEL_STEP}"] = value[:, ::CHANNEL_STEP].clone()
        out[f"{name}_channel_mean"] = value.double().mean(dim=(2, 3, 4)).float()
        out[f"{name}_max_abs"] = float(value.abs().max())
    return out


def _write(name: str, reference: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}_reference.pt"
    torch.save(reference, path)
    print(
        f"{path}: {path.stat().st_size / 1e3:.0f} kB; slow {reference['slow_out_shape']}, fast {reference['fast_out_shape']}"
    )


def alphaction(shared: Path) -> None:
    """Trim the AlphAction backbone references (2.4 and 3.2 MB with full outputs and input)."""
    for depth in (50, 101):
        source = torch.load(shared / f"alphaction_slowfast_r{depth}_reference.pt", weights_only=True)
        if not torch.equal(source["input_grey_fast"], grey_input()):
            raise SystemExit(f"the input of the r{depth} reference is not the rule's")
        kept = {k: source[k] for k in ("weight_rule", "config", "keys", "bn_keys", "alpha")}
        kept["input_shape"] = list(source["input_grey_fast"].shape)
        _write(
            f"alphaction_slowfast_r{depth}",
            {**kept, **trim({n: source[n] for n in ("slow_out", "fast_out")})},
        )


class _RoIAlignStandIn(nn.Module):
    """Takes RoIAlign's constructor arguments; any call fails (no head is run here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, *args: Any) -> Tensor:
        raise RuntimeError("torchvision RoIAlign stand-in: heads are not run by this script")


def _register_torchvision_stand_in() -> None:
    try:
        importlib.import_module("torchvision.ops")
    except ImportError:
        ops = types.ModuleType("torchvision.ops")
        ops.RoIAlign = _RoIAlignStandIn  # type: ignore[attr-defined]
        package = types.ModuleType("torchvision")
        package.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"] = package
        sys.modules["torchvision.ops"] = ops


def pytorchvideo(builder_name: str) -> None:
    """Run PyTorchVideo's own ``builder_name`` network with the rule's weights on the rule's input."""
    _register_torchvision_stand_in()
    hub = importlib.import_module("pytorchvideo.models.hub.slowfast")
    model: nn.Module = getattr(hub, builder_name)(pretrained=False)
    bn_keys = {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm3d)
        for p in ("weight", "bias", "running_mean", "running_var")
    }
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(weights_by_rule(shapes, bn_keys))
    model.eval()
    fast = grey_input().repeat(1, 3, 1, 1, 1)
    net: Any = getattr(model, "model", model)  # DetectionBBoxNetwork holds the backbone Net as .model
    x: list[Tensor] = [fast[:, :, ::PTV_ALPHA], fast]
    with torch.no_grad():
        for block in list(net.blocks)[:5]:  # stem + fusion, res2..res4 + fusion, res5
            x = block(x)
    version = getattr(importlib.import_module("pytorchvideo"), "__version__", "?")
    reference = {
        "weight_rule": WEIGHT_RULE,
        "config": f"pytorchvideo {version} hub {builder_name}(pretrained=False), torch {torch.__version__}; "
        "outputs of blocks[4]",
        "keys": shapes,
        "bn_keys": sorted(bn_keys),
        "alpha": PTV_ALPHA,
        "input_shape": [1, 1, 32, 64, 96],
    }
    _write(f"pytorchvideo_{builder_name}", {**reference, **trim({"slow_out": x[0], "fast_out": x[1]})})


IA_LAYOUT = ROOT / "src" / "thermact" / "models" / "layouts" / "alphaction_ia_dense_serial_r101_8x8.json"
IA_PREFIX = "roi_heads.action.feature_extractor.ia_structure."
IA_INPUT_RULE = """One clip with 3 persons and 2 objects; features [n, C, 1, 1, 1] drawn with
torch.randn(shape, generator=torch.Generator().manual_seed(s)): persons [3, 2304] s=2, memory
[1, 305, 2304] s=3 (61 one-second slots x MAX_PER_SEC 5, slot = index // 5), objects [2, 2304] s=4.
Each kept block gets the reduced person query (person_dim_reduce) as its input; P blocks the
person keys (person_key_dim_reduce) of all 3 persons, self included, zero-padded to MAX_PERSON 25
slots as AlphAction's separate_roi_per_person makes them; M blocks the reduced memory (305 slots)."""


def _load_ia_structure(alphaction_src: Path) -> types.ModuleType:
    """AlphAction's ``IA_structure.py`` loaded on its own, with stand-ins for its two imports."""

    class Registry(dict[str, Any]):
        def register(self, name: str) -> Any:
            def add(cls: Any) -> Any:
                self[name] = cls
                return cls

            return add

    def blocks(cfg: Any) -> list[str]:
        return [b for layer in cfg.I_BLOCK_LIST for b in layer]

    registry = types.ModuleType("AlphAction.modeling.registry")
    registry.INTERACTION_AGGREGATION_STRUCTURES = Registry()  # type: ignore[attr-defined]
    helper = types.ModuleType("AlphAction.utils.IA_helper")
    helper.has_person = lambda cfg: "P" in blocks(cfg)  # type: ignore[attr-defined]
    helper.has_object = lambda cfg: "O" in blocks(cfg)  # type: ignore[attr-defined]
    helper.has_memory = lambda cfg: "M" in blocks(cfg)  # type: ignore[attr-defined]
    for name in ("AlphAction", "AlphAction.modeling", "AlphAction.utils"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["AlphAction.modeling.registry"] = registry
    sys.modules["AlphAction.modeling"].registry = registry  # type: ignore[attr-defined]
    sys.modules["AlphAction.utils.IA_helper"] = helper
    path = alphaction_src / "AlphAction" / "modeling" / "roi_heads" / "action_head" / "IA_structure.py"
    spec = importlib.util.spec_from_file_location("alphaction_ia_structure", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alphaction_ia(alphaction_src: Path) -> None:
    """Reductions and per-block outputs of AlphAction's dense-serial IA structure (its own code)."""
    layout = json.loads(IA_LAYOUT.read_text(encoding="utf-8"))
    cfg = types.SimpleNamespace(**layout["ia_structure"], CONV_INIT_STD=0.01)
    module = _load_ia_structure(alphaction_src)
    structure = module.DenseSerialIAStructure(cfg.DIM_IN, cfg.DIM_IN, cfg.DIM_OUT, cfg)
    for conv in structure.modules():
        if isinstance(conv, nn.Conv3d) and conv.stride == (True, True, True):
            conv.stride = (1, 1, 1)
    ia_keys = {k: v for k, v in layout["head"].items() if k.startswith(IA_PREFIX)}
    theirs = {IA_PREFIX + k: list(v.shape) for k, v in structure.state_dict().items()}
    if theirs != ia_keys:
        raise SystemExit("AlphAction's IA structure does not have the layout's keys")
    weights = weights_by_rule(theirs, set())
    structure.load_state_dict({k[len(IA_PREFIX) :]: v for k, v in weights.items()})
    structure.eval()

    def features(shape: tuple[int, ...], seed: int) -> Tensor:
        return torch.randn(*shape, 1, 1, 1, generator=torch.Generator().manual_seed(seed))

    persons, memory, objects = features((3, 2304), 2), features((1, 305, 2304), 3), features((2, 2304), 4)
    boxes, object_boxes = [list(range(3))], [list(range(2))]
    with torch.no_grad():
        query, person_key, _, mem_key = structure._reduce_dim(persons, boxes, objects, object_boxes, memory)
        person_context = module.separate_roi_per_person(boxes, person_key, boxes, cfg.MAX_PERSON)
        outputs = {
            name: getattr(structure, name)(query, person_context if name[0] == "P" else mem_key).flatten(1)
            for name in ("P_block_1", "M_block_1", "P_block_2", "M_block_2")
        }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "alphaction_ia_dense_serial_r101_8x8_reference.pt"
    torch.save(
        {
            "weight_rule": WEIGHT_RULE.split("\nall float32.")[0]
            + "\nall float32 (keys with their checkpoint prefix).",
            "input_rule": IA_INPUT_RULE,
            "config": f"AlphAction IA_structure.py DenseSerialIAStructure, {cfg.__dict__}, torch {torch.__version__}",
            "keys": theirs,
            "query": query.flatten(1),
            "person_key": person_key.flatten(1),
            f"mem_key_every{CHANNEL_STEP}": mem_key[0, :, ::CHANNEL_STEP].flatten(1).clone(),
            "mem_key_channel_mean": mem_key[0].flatten(1).double().mean(dim=0).float(),
            **{f"{name}_out": value for name, value in outputs.items()},
        },
        path,
    )
    print(f"{path}: {path.stat().st_size / 1e3:.0f} kB; blocks {[list(v.shape) for v in outputs.values()]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["alphaction", "pytorchvideo", "alphaction-ia"])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "reference")
    parser.add_argument("--alphaction-src", type=Path, help="a checkout of MVIG-SJTU/AlphAction")
    args = parser.parse_args()
    if args.command == "alphaction":
        alphaction(args.shared)
    elif args.command == "pytorchvideo":
        for name in ("slowfast_r50", "slowfast_r50_detection"):
            pytorchvideo(name)
    elif args.alphaction_src is None:
        parser.error("alphaction-ia needs --alphaction-src")
    else:
        alphaction_ia(args.alphaction_src)


if __name__ == "__main__":
    main()
