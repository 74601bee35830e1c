from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermact.data.source import ThermalData, default_dataset_root, load_dataset
from thermact.errors import DataError


def test_bundled_dataset_counts(real_data: ThermalData) -> None:
    assert sorted(real_data.recordings) == [f"SL{s}_R{r}" for s in (14, 18) for r in (1, 2, 3, 4)]
    assert sum(r.num_frames for r in real_data.recordings.values()) == 3976
    assert len(real_data.keyframes) == 387
    assert real_data.annotations.num_persons() == 500
    counts = real_data.annotations.class_counts()
    assert counts["lying down-lying with risk"] == 272
    assert counts["standing"] == 148
    assert counts["lower position-kneeling"] == 15
    assert counts["transition-lying on the bed transition"] == 1
    assert counts["leaning"] == counts["other"] == counts["lower position-other"] == 0
    given = {s: [k for k in real_data.keyframes if k.given_split == s] for s in ("train", "val")}
    assert (len(given["train"]), len(given["val"])) == (314, 73)
    val_counts = real_data.annotations.class_counts(given["val"])
    assert val_counts["lying down-lying with risk"] == 52 and val_counts["sitting"] == 0
    # hot objects and furniture merged in from the raw files
    assert sum(len(k.others) for k in real_data.keyframes) == 838
    assert real_data.problems.count == 0


def test_default_root_is_bundled_unless_env_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("THERMACT_DATA", raising=False)
    assert (default_dataset_root() / "frames" / "SL14_R1.h5").is_file()
    monkeypatch.setenv("THERMACT_DATA", str(tmp_path))
    assert default_dataset_root() == tmp_path


def test_missing_pieces_are_named(tmp_path: Path, dataset_copy: Path) -> None:
    with pytest.raises(DataError, match="dataset directory not found"):
        load_dataset(tmp_path / "nowhere")
    (dataset_copy / "annotations" / "val.json").unlink()
    with pytest.raises(DataError, match=r"val\.json: annotation file not found"):
        load_dataset(dataset_copy)


def _edit_train(root: Path, edit: object) -> None:
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))


def test_keyframe_of_unknown_recording_or_frame(dataset_copy: Path) -> None:
    def unknown_recording(d: dict) -> None:
        d["images"][0]["sensor_id"] = "SL99_R1"

    _edit_train(dataset_copy, unknown_recording)
    with pytest.raises(DataError, match=r"keyframe SL14_R1_1760482263581: unknown recording 'SL99_R1'"):
        load_dataset(dataset_copy, with_raw=False)
    warnings: list[str] = []
    data = load_dataset(dataset_copy, lenient=True, with_raw=False, warn=warnings.append)
    assert len(data.keyframes) == 386 and len(warnings) == 1


def test_keyframe_at_a_time_without_frame(dataset_copy: Path) -> None:
    def shift(d: dict) -> None:
        d["images"][0]["timestamp"] += 1

    _edit_train(dataset_copy, shift)
    with pytest.raises(DataError, match=r"no frame at 1760482263582 ms in SL14_R1\.h5"):
        load_dataset(dataset_copy, with_raw=False)


def test_raw_and_coco_disagreement_is_reported(dataset_copy: Path) -> None:
    def drop_box(d: dict) -> None:
        d["annotations"] = d["annotations"][1:]

    _edit_train(dataset_copy, drop_box)
    with pytest.raises(
        DataError, match=r"keyframe SL14_R1_1760482260170: 1 person box\(es\) in the COCO file but 2"
    ):
        load_dataset(dataset_copy)
