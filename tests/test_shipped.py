"""thermact.shipped: checkpoints by name (shipped models) or path, with clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from thermact.engine.checkpoint import load_checkpoint
from thermact.errors import CheckpointError
from thermact.shipped import DEFAULT_ACTION_MODEL, SHIPPED_MODELS, WEIGHTS_DIR, resolve_checkpoint


def test_a_file_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thermal_net_live").write_bytes(b"x")
    assert resolve_checkpoint("thermal_net_live") == Path("thermal_net_live")


def test_names_and_paths_that_do_not_exist(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="did you mean 'thermal_net_live'"):
        resolve_checkpoint("thermal_net_liv")
    with pytest.raises(CheckpointError, match="neither a file nor a shipped model; shipped models: "):
        resolve_checkpoint("resnet")
    with pytest.raises(CheckpointError, match=r"nothing\.pt: checkpoint not found"):
        resolve_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(CheckpointError, match="did you mean 'person_detector_live'"):
        load_checkpoint("person_detektor_live")


def test_a_missing_shipped_file_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import thermact.shipped as shipped

    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="'thermal_net_live' is not installed .*make models"):
        resolve_checkpoint("thermal_net_live")


def test_the_table_names_files_inside_the_package() -> None:
    assert WEIGHTS_DIR.parent == Path(__file__).resolve().parents[1] / "src" / "thermact"
    assert {m.task for m in SHIPPED_MODELS.values()} == {"action", "detector"}
    for name, model in SHIPPED_MODELS.items():
        assert model.name == name and model.path.parent == WEIGHTS_DIR and model.path.suffix == ".pt"


@pytest.mark.usefixtures("one_thread")
def test_the_shipped_models_load_and_say_what_they_are() -> None:
    from thermact.tasks.action import restore_model
    from thermact.tasks.person import restore_detector

    action = restore_model("thermal_net_live", "cpu")
    assert action.config.model.name == "thermal_net_t" and action.config.model.head.box_cues
    assert action.config.data.split == "all" and action.clip.keyframe_position == "causal"
    augment = action.config.augment  # the sensor augmentations of the recipe (model card)
    assert augment.time_stretch == (0.8, 1.25) and augment.frame_drop == 0.5 and augment.dead_pixels == 0.01
    assert len(action.classes) == 14 and action.checkpoint["dataset"]["name"] == "thermal_v2"
    detector = restore_detector("person_detector_live", "cpu")
    assert detector.config.model.name == "person_detector_t" and detector.config.data.split == "all"
    det_aug = detector.config.augment  # sensor augmentations, a wider temperature jitter, shifts (model card)
    assert det_aug.dead_pixels == 0.01 and det_aug.offset_c == (-3.0, 3.0) and det_aug.gain == (0.8, 1.2)
    assert det_aug.shift_px == 6 and detector.config.eval.heat_growth is not None  # boxes grown (default)
    for model in SHIPPED_MODELS.values():  # inference checkpoints: no optimiser state, small
        assert "optimizer" not in load_checkpoint(model.path) and model.path.stat().st_size < 3_000_000
    assert (WEIGHTS_DIR / "MODEL_CARD.md").is_file()


@pytest.mark.usefixtures("one_thread")
def test_the_default_action_models_are_three_seeds_averaged_and_one_network_distilled_from_them() -> None:
    from thermact.commands.detect import DetectOptions
    from thermact.commands.stream import StreamOptions
    from thermact.models.ensemble import ActionEnsemble
    from thermact.tasks.action import restore_model

    # offline analysis gets the ensemble, live streams the single network (a third of the compute)
    assert DEFAULT_ACTION_MODEL == DetectOptions().checkpoint == "thermal_net_live_ens3"
    assert StreamOptions().checkpoint == "thermal_net_live"
    ensemble, single = restore_model(DEFAULT_ACTION_MODEL), restore_model("thermal_net_live")
    assert isinstance(ensemble.model, ActionEnsemble) and len(ensemble.model.members) == 3
    # all take the box cues with the radial ones; the single network's recipe adds the zoom
    head = single.config.model.head
    assert head.box_cues and head.box_radial
    assert ensemble.config.model == dataclasses.replace(single.config.model, members=3)
    assert single.config.augment.zoom == (0.8, 1.25) and ensemble.config.augment.zoom == (1.0, 1.0)
    assert ensemble.config.augment == dataclasses.replace(single.config.augment, zoom=(1.0, 1.0))
    assert ensemble.classes == single.classes
    assert ensemble.checkpoint["dataset"] == single.checkpoint["dataset"]
    # the members are plain runs of three seeds; the single network learnt from their average too
    assert ensemble.config.loss.distill_from is None
    loss = single.config.loss
    assert (loss.distill_from, loss.distill_weight, loss.distill_temperature) == (
        "thermal_net_live_ens3",
        0.9,
        4.0,
    )
    weights = [m.state_dict()["head.classifier.weight"] for m in ensemble.model.members]
    weights.append(single.model.state_dict()["head.classifier.weight"])
    assert all(not torch.equal(a, b) for i, a in enumerate(weights) for b in weights[i + 1 :])


@pytest.mark.usefixtures("one_thread")
def test_detect_without_models_uses_the_shipped_ones(short_recordings: Path, tmp_path: Path) -> None:
    import json

    from thermact.cli import main

    code = main(["detect", str(short_recordings / "SL14_R1.h5"), f"out={tmp_path / 'o'}", "animation=none"])
    assert code == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    rec = summary["recordings"][0]
    assert rec["tracks"] >= 1 and rec["classifications"] > 10
