from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from thermact.data.clips import ClipConfig
from thermact.data.source import (
    BUNDLED_DATASET,
    DatasetFingerprint,
    ThermalData,
    bundled_datasets,
    default_dataset_root,
    fingerprint_dataset,
    load_dataset,
    resolve_dataset,
)
from thermact.data.splits import build_standard_splits
from thermact.errors import ConfigError, DataError


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
    assert default_dataset_root() == BUNDLED_DATASET == bundled_datasets()["thermal_v1"]
    assert (default_dataset_root() / "frames" / "SL14_R1.h5").is_file()
    monkeypatch.setenv("THERMACT_DATA", str(tmp_path))
    assert default_dataset_root() == tmp_path
    monkeypatch.setenv("THERMACT_DATA", "thermal_v2")  # a name works there too
    assert default_dataset_root().name == "thermal_v2"


def test_datasets_by_name_or_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert sorted(bundled_datasets()) == ["thermal_v1", "thermal_v2"]
    assert resolve_dataset("thermal_v2") == bundled_datasets()["thermal_v2"]
    assert resolve_dataset(str(tmp_path)) == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thermal_v2").mkdir()  # a bundled name always means the bundled dataset ...
    assert resolve_dataset("thermal_v2") == bundled_datasets()["thermal_v2"]
    assert resolve_dataset("./thermal_v2") == Path("./thermal_v2")  # ... a path says otherwise
    (tmp_path / "mine").mkdir()
    assert resolve_dataset("mine") == Path("mine")
    with pytest.raises(ConfigError, match="unknown dataset 'thermal_v3': .*did you mean 'thermal_v2'"):
        resolve_dataset("thermal_v3")
    with pytest.raises(ConfigError, match="unknown dataset 'kitchen': .*bundled: thermal_v1, thermal_v2"):
        load_dataset("kitchen")
    with pytest.raises(DataError, match="dataset directory not found"):
        load_dataset("./kitchen")


def test_v2_counts_and_optional_raw_annotations(real_data_v2: ThermalData) -> None:
    data = real_data_v2
    assert data.name == "thermal_v2" and len(data.recordings) == 19 and data.problems.count == 0
    assert sum(r.num_frames for r in data.recordings.values()) == 9353
    assert len(data.keyframes) == 1018 and data.annotations.num_persons() == 1251
    counts = data.annotations.class_counts()
    assert counts["lying down-lying with risk"] == 715 and counts["standing"] == 291
    assert counts["sitting"] == 62 and counts["lying down-lying on the bed/couch"] == 44
    # raw annotations (hot objects, furniture) exist for the 8 V1 recordings only: the others'
    # keyframes say so instead of claiming "nothing warm here"
    known = {k.recording_id for k in data.keyframes if k.others_known}
    assert sorted(known) == [f"SL{s}_R{r}" for s in (14, 18) for r in (1, 2, 3, 4)]
    assert all(k.others == () for k in data.keyframes if not k.others_known)
    assert sum(not k.others_known for k in data.keyframes) == 1018 - 387
    assert sum(len(k.others) for k in data.keyframes) == 838
    assert data.unlabelled_recordings() == []


def test_fingerprint_identifies_content(real_data: ThermalData, real_data_v2: ThermalData) -> None:
    v1, v2 = fingerprint_dataset(real_data), fingerprint_dataset(real_data_v2)
    assert v1.name == "thermal_v1" and len(v1.recordings) == 8 and len(v2.recordings) == 19
    assert v1.digest != v2.digest
    assert fingerprint_dataset(load_dataset("thermal_v1")).digest == v1.digest  # stable
    # V2 holds V1's 8 recordings (files differ only in their 'created_at' attribute)
    shared = v1.shared_recordings(v2)
    assert shared == {r: r for r in v1.recordings}
    assert DatasetFingerprint.from_dict(v2.to_dict()) == v2
    tampered = {**v2.to_dict(), "annotations": "0" * 64}
    with pytest.raises(DataError, match="ckpt: 'digest' does not match"):
        DatasetFingerprint.from_dict(tampered, "ckpt")
    with pytest.raises(DataError, match="ckpt: needs 'name'"):
        DatasetFingerprint.from_dict({"name": "x"}, "ckpt")


def test_test_only_dataset_loads(dataset_copy: Path) -> None:
    """A new room's labelled test recordings: only val.json, no raw annotations, unlabelled extras."""
    (dataset_copy / "annotations" / "train.json").unlink()
    shutil.rmtree(dataset_copy / "raw_annotations")
    data = load_dataset(dataset_copy)
    assert len(data.keyframes) == 73 and {k.given_split for k in data.keyframes} == {"val"}
    assert not any(k.others_known for k in data.keyframes)
    splits = build_standard_splits(data, ClipConfig())
    assert "given" not in splits  # nothing to train on in the given split; session/lorecording stay
    assert [len(f.test) for f in splits["session"].folds] == [33, 40]
    # a recording nobody annotated is no problem: it is listed as unlabelled
    shutil.copy(dataset_copy / "frames" / "SL18_R1.h5", dataset_copy / "frames" / "spare.h5")
    assert load_dataset(dataset_copy).unlabelled_recordings() == ["spare"]


def test_unreadable_recording_is_skipped_when_lenient(dataset_copy: Path) -> None:
    target = dataset_copy / "frames" / "SL18_R2.h5"
    target.write_bytes(target.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"SL18_R2\.h5: not a readable HDF5 file"):
        load_dataset(dataset_copy)
    warnings: list[str] = []
    data = load_dataset(dataset_copy, lenient=True, warn=warnings.append)
    assert "SL18_R2" not in data.recordings and len(data.recordings) == 7
    assert len(data.keyframes) == 387 - 54  # its keyframes go with it, without one warning each
    assert len(warnings) == 1 and warnings[0].endswith("; skipping the recording and its keyframes")


def test_absent_recording_is_one_problem(dataset_copy: Path) -> None:
    (dataset_copy / "frames" / "SL14_R3.h5").unlink()
    with pytest.raises(DataError) as info:
        load_dataset(dataset_copy)
    assert str(info.value) == (
        f"42 keyframe(s) in train.json, val.json name recording 'SL14_R3', but "
        f"{dataset_copy / 'frames' / 'SL14_R3.h5'} does not exist"
    )
    warnings: list[str] = []
    data = load_dataset(dataset_copy, lenient=True, warn=warnings.append)
    assert len(warnings) == 1 and len(data.keyframes) == 387 - 42


def test_missing_pieces_are_named(tmp_path: Path, dataset_copy: Path) -> None:
    with pytest.raises(DataError, match="dataset directory not found"):
        load_dataset(tmp_path / "nowhere")
    (dataset_copy / "annotations" / "val.json").unlink()
    (dataset_copy / "annotations" / "train.json").unlink()
    with pytest.raises(
        DataError, match=r"annotations: no annotation file \(train\.json or val\.json\) found"
    ):
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
    with pytest.raises(
        DataError,
        match=r"1 keyframe\(s\) in train\.json name recording 'SL99_R1', but .*frames/SL99_R1\.h5 does not exist$",
    ):
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
