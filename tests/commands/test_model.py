"""``thermact model info`` and ``thermact model ensemble``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from thermact.cli import main as cli_main
from thermact.commands.model import EnsembleOptions, main_ensemble, run_ensemble
from thermact.commands.model import main_info as main_model_info
from thermact.data.dataset import ClipBatch, ClipDataset, collate_clips
from thermact.data.source import ThermalData
from thermact.engine.checkpoint import inference_state, load_checkpoint, save_checkpoint
from thermact.errors import CheckpointError, ConfigError
from thermact.models.ensemble import ActionEnsemble
from thermact.models.factory import ModelConfig, build_model
from thermact.shipped import resolve_checkpoint
from thermact.tasks.action import TrainedActionModel, restore_model


def test_main_model_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "data:\n  window_s: 4.5\nmodel:\n  name: thermal_net_s\n  head:\n    mlp_dim: 32\ntrain:\n  lr: 0.1\n"
    )
    assert main_model_info(str(cfg), ["model.num_frames=8"]) == 0
    out = capsys.readouterr().out
    assert "27 frames = 15.19 s (0.562 s per clip frame; the clip: 8 frames = 4.50 s)" in out
    assert "[1, 1, 8, 40, 60]" in out
    # a file that is a bare ModelConfig mapping, plus overrides with and without the prefix
    bare = tmp_path / "model.yaml"
    bare.write_text("name: thermal_net_s\n")
    assert main_model_info(str(bare), ["head.mlp_dim=16", "data.window_s=3.2"]) == 0
    assert "27 frames = 5.40 s (0.200 s per clip frame" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"model\.head\.mlp_dimm.*did you mean 'mlp_dim'"):
        main_model_info(str(cfg), ["model.head.mlp_dimm=3"])
    with pytest.raises(ConfigError, match="does not exist"):
        main_model_info(str(tmp_path / "missing.yaml"), [])


def test_model_info_of_the_live_presets(capsys: pytest.CaptureFixture[str]) -> None:
    """The live action model: 8 clip frames over 2.7 s, 0.3375 s apart (not the sensor's 1/6 s)."""
    assert main_model_info("thermal_net_live", []) == 0
    out = capsys.readouterr().out
    assert "27 frames = 9.11 s (0.338 s per clip frame; the clip: 8 frames = 2.70 s)" in out
    assert "194,598 total" in out
    for args in (("person_detector_live", []), (None, ["config=person_detector_live"])):
        assert main_model_info(*args) == 0
        out = capsys.readouterr().out
        assert "model            person_detector_t" in out and "107,198 total" in out
        assert "MACs             24.5" in out and "3 frames = 0.50 s" in out
    assert main_model_info("person_detector", ["model.num_frames=5", "data.window_s=1.0"]) == 0
    assert "5 frames = 1.00 s (0.200 s per clip frame" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'person_detector_x' is not one of"):
        main_model_info("person_detector_live", ["model.name=person_detector_x"])
    with pytest.raises(ConfigError, match="data.window_s"):
        main_model_info("thermal_net_live", ["data.window_s=0"])


# ---------------------------------------------------------------------------------------------
# thermact model ensemble


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two members of one recipe: the shipped action model and a copy whose classifier weights are
    moved by seeded noise (a stand-in for a second seed's run)."""
    root = tmp_path_factory.mktemp("members")
    ckpt = load_checkpoint("thermal_net_live")
    state = dict(ckpt["model"])
    gen = torch.Generator().manual_seed(5)
    for key in ("head.classifier.weight", "head.classifier.bias"):
        state[key] = state[key] + 0.5 * state[key].std() * torch.randn(state[key].shape, generator=gen)
    save_checkpoint(root / "a.pt", inference_state(ckpt))
    save_checkpoint(root / "b.pt", {**inference_state(ckpt), "model": state})
    return [root / "a.pt", root / "b.pt"]


def _clips(trained: TrainedActionModel, data: ThermalData) -> ClipBatch:
    keyframes = [k for k in data.keyframes if k.persons][::40]
    dataset = ClipDataset.from_data(data, keyframes, trained.clip, norm=trained.norm)
    return collate_clips([dataset[i] for i in range(len(dataset))])


@pytest.mark.usefixtures("one_thread")
def test_ensemble_checkpoint_averages_its_members_on_real_clips(
    members: list[Path], real_data: ThermalData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ens.pt"
    assert main_ensemble(None, [f"members=[{members[0]},{members[1]}]", f"out={out}"]) == 0
    assert "ensemble of 2 action models" in capsys.readouterr().out
    ens = restore_model(out)
    assert isinstance(ens.model, ActionEnsemble) and len(ens.model.members) == 2
    assert ens.config.model.members == 2 and ens.classes == restore_model(members[0]).classes
    assert load_checkpoint(out)["ensemble"]["members"] == [str(m) for m in members]
    batch = _clips(ens, real_data)
    with torch.no_grad():
        got = torch.softmax(ens.model(batch.frames, batch.rois), 1)
        each = [torch.softmax(restore_model(m).model(batch.frames, batch.rois), 1) for m in members]
    assert len(got) >= 10
    torch.testing.assert_close(got, (each[0] + each[1]) / 2, rtol=0, atol=1e-5)
    assert (each[0] - each[1]).abs().max() > 0.05
    # two copies of one model: the ensemble is that model
    same = tmp_path / "same.pt"
    run_ensemble(EnsembleOptions([str(members[0]), "thermal_net_live"], str(same)))
    with torch.no_grad():
        alone = torch.softmax(restore_model(same).model(batch.frames, batch.rois), 1)
    torch.testing.assert_close(alone, each[0], rtol=0, atol=1e-6)


def test_ensemble_refuses_members_that_differ(
    members: list[Path], detector_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(members[1])
    classes = tmp_path / "classes.pt"
    save_checkpoint(classes, {**ckpt, "classes": list(reversed(ckpt["classes"]))})
    window = tmp_path / "window.pt"
    config = copy.deepcopy(ckpt["config"])
    config["data"]["window_s"] = 4.0
    save_checkpoint(window, {**ckpt, "config": config})
    out = tmp_path / "ens.pt"
    for other, message in (
        (classes, "classes not the same"),
        (window, "clip not the same"),
        (detector_ckpt, "is a person-detector checkpoint"),
    ):
        with pytest.raises(CheckpointError, match=f"{other}: {message}"):
            run_ensemble(EnsembleOptions([str(members[0]), str(other)], str(out)))
    assert not out.exists()
    run_ensemble(EnsembleOptions([str(m) for m in members], str(out)))
    with pytest.raises(CheckpointError, match="already an ensemble"):
        run_ensemble(EnsembleOptions([str(members[0]), str(out)], str(tmp_path / "nested.pt")))


def test_ensemble_bad_options_change_nothing(members: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "ens.pt"
    out.write_bytes(b"keep")
    pair = [str(m) for m in members]
    with pytest.raises(ConfigError, match="exists; pass exist_ok=true"):
        run_ensemble(EnsembleOptions(pair, str(out)))
    assert out.read_bytes() == b"keep"
    with pytest.raises(ConfigError, match="config key 'members': an ensemble needs at least two"):
        main_ensemble(None, [f"members=[{members[0]}]", f"out={out}"])
    with pytest.raises(ConfigError, match="listed twice"):
        main_ensemble(None, [f"members=[{members[0]},{members[0]}]", f"out={out}"])
    with pytest.raises(ConfigError, match="config key 'out' is required"):
        main_ensemble(None, [f"members=[{members[0]},{members[1]}]"])
    with pytest.raises(ConfigError, match="must end in .pt"):
        main_ensemble(None, [f"members=[{members[0]},{members[1]}]", f"out={tmp_path / 'e.onnx'}"])
    with pytest.raises(ConfigError, match="is one of the members"):
        run_ensemble(EnsembleOptions(pair, str(members[1]), exist_ok=True))
    shipped = resolve_checkpoint("thermal_net_live")  # a member given by its shipped name
    before = shipped.read_bytes()
    with pytest.raises(ConfigError, match="is one of the members"):
        run_ensemble(EnsembleOptions([pair[0], "thermal_net_live"], str(shipped), exist_ok=True))
    assert shipped.read_bytes() == before
    with pytest.raises(CheckpointError, match="did you mean 'thermal_net_live'"):
        run_ensemble(EnsembleOptions([pair[0], "thermal_net_lve"], str(tmp_path / "x.pt")))
    assert out.read_bytes() == b"keep" and load_checkpoint(members[1])["model"]


def test_training_an_ensemble_is_refused_by_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="config key 'model.members': 3"):
        build_model(ModelConfig(name="thermal_net_t", num_frames=8, members=3), verbose=False)
    assert cli_main(["train", "model.members=2", f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]  # the data's warnings come first
    assert len(errors) == 1 and "config key 'model.members': 2" in errors[0] and "model ensemble" in errors[0]
    assert not (tmp_path / "run").exists()
