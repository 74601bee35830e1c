"""AVA-style CSV and label map: exact round trip on the bundled annotations, formats, errors."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermact.data.annotations import ClassList
from thermact.data.ava import (
    AvaRow,
    ava_rows_to_keyframes,
    detection_rows,
    format_timestamp,
    keyframes_to_ava_rows,
    parse_timestamp,
    read_ava_csv,
    read_label_map,
    write_ava_csv,
    write_label_map,
)
from thermact.data.source import ThermalData, load_dataset
from thermact.errors import DataError, ProblemLog


@pytest.fixture(scope="module")
def data() -> ThermalData:
    return load_dataset(with_raw=False)


def test_timestamps() -> None:
    assert format_timestamp(1760482260170, "s") == "1760482260.170"
    assert format_timestamp(1760482260005) == "1760482260005"  # default: integer ms
    assert format_timestamp(-1500, "s") == "-1.500"
    assert parse_timestamp("1760482260.170", "s") == 1760482260170
    assert parse_timestamp("1760482260.17", "s") == 1760482260170
    assert parse_timestamp("1760482260170") == 1760482260170
    with pytest.raises(ValueError, match="whole number of milliseconds"):
        parse_timestamp("1.0005", "s")
    with pytest.raises(ValueError, match="integer milliseconds"):
        parse_timestamp("1760482260.170")
    with pytest.raises(ValueError, match="not a number"):
        parse_timestamp("noon")


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_round_trip_real_annotations(data: ThermalData, tmp_path: Path, unit: str) -> None:
    rows = keyframes_to_ava_rows(data.keyframes, data.annotations.frame_size)
    assert len(rows) == 500
    path = tmp_path / "gt.csv"
    assert write_ava_csv(path, rows, time_unit=unit) == 500  # type: ignore[arg-type]
    back = read_ava_csv(path, num_classes=len(data.classes), time_unit=unit, recordings=data.recordings)  # type: ignore[arg-type]
    assert back == rows  # exact: shortest repr floats, integer ms
    keyframes = ava_rows_to_keyframes(back, data.annotations.frame_size, data.classes)
    assert len(keyframes) == 387
    by_id = {k.keyframe_id: k for k in data.keyframes}
    for kf in keyframes:
        orig = by_id[kf.keyframe_id]
        assert (kf.recording_id, kf.timestamp_ms) == (orig.recording_id, orig.timestamp_ms)
        assert [(p.label, p.name, p.track_id) for p in kf.persons] == [
            (p.label, p.name, p.track_id) for p in orig.persons
        ]
        np.testing.assert_allclose(
            [p.xyxy for p in kf.persons], [p.xyxy for p in orig.persons], rtol=0, atol=1e-9
        )


def test_file_layout(data: ThermalData, tmp_path: Path) -> None:
    kf = data.keyframes[0]  # SL14_R1 at 1760482260170, person 0 standing (class 1)
    rows = keyframes_to_ava_rows([kf], data.annotations.frame_size)
    path = tmp_path / "gt.csv"
    write_ava_csv(path, rows, decimals=3, time_unit="s")
    first = next(csv.reader(path.open()))
    assert first == ["SL14_R1", "1760482260.170", "0.250", "0.482", "0.464", "0.640", "2", "0"]
    write_ava_csv(path, rows)  # the default: integer ms
    first = next(csv.reader(path.open()))
    assert first[1] == "1760482260170" and first[6] == "2" and len(first) == 8
    # The official evaluator keys images with "%s,%04d" % (video_id, int(timestamp)): needs "ms".
    assert f"{first[0]},{int(first[1]):04d}" == "SL14_R1,1760482260170"


def test_detections(tmp_path: Path) -> None:
    boxes = np.array([[6.0, 4.0, 18.0, 20.0], [30.0, 10.0, 42.0, 30.0]])
    scores = np.array([[0.1, 0.7, 0.2], [0.05, 0.05, 0.9]])
    rows = detection_rows("SL18_R1", 1760639223610, boxes, scores, (40, 60), min_score=0.15)
    assert [(r.class_id, r.score) for r in rows] == [(1, 0.7), (2, 0.2), (2, 0.9)]
    assert rows[0].box == pytest.approx((0.1, 0.1, 0.3, 0.5))
    path = tmp_path / "det.csv"
    write_ava_csv(path, rows)
    first = next(csv.reader(path.open()))
    assert first == ["SL18_R1", "1760639223610", "0.1", "0.1", "0.3", "0.5", "2", "0.7"]
    assert read_ava_csv(path, "detections", num_classes=3) == rows
    one = detection_rows("SL18_R1", 5, boxes, [0.4, 0.8], (40, 60), labels=[0, 2], person_ids=[3, 4])
    write_ava_csv(path, one, detection_person_ids=True)
    assert next(csv.reader(path.open()))[6:] == ["1", "3", "0.4"]
    assert read_ava_csv(path, "detections") == one
    with pytest.raises(ValueError, match="need labels"):
        detection_rows("x", 0, boxes, [0.4, 0.8], (40, 60))
    with pytest.raises(ValueError, match="mixes"):
        write_ava_csv(path, [*one, AvaRow("x", 0, (0, 0, 1, 1), 0, 1)])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(text)
    return path


GOOD = "SL14_R1,12.000,0.1,0.2,0.3,0.4,1,0\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SL14_R1,12.000,0.1,0.2,0.3,0.4,15,0", r"in\.csv:2: unknown action id 15 \(valid: 1\.\.14"),
        ("SL14_R1,12.000,0.1,0.2,0.3,0.4,0,0", r"in\.csv:2: unknown action id 0"),
        ("SL14_R1,12.000,0.1,0.2,1.3,0.4,1,0", r"in\.csv:2: box .* outside \[0, 1\]"),
        ("SL14_R1,12.000,0.3,0.2,0.1,0.4,1,0", r"in\.csv:2: box .* x2 <= x1"),
        ("SL14_R1,12.000,0.1,0.2,0.3,nan,1,0", r"in\.csv:2: y2 'nan' is not finite"),
        ("SL14_R1,12.000,0.1,0.2,0.3,0.4,1", r"in\.csv:2: expected 8 \(like the first row\) columns"),
        ("SL14_R1,noon,0.1,0.2,0.3,0.4,1,0", r"in\.csv:2: timestamp 'noon' is not a number"),
        ("SL99_R1,12.000,0.1,0.2,0.3,0.4,1,0", r"in\.csv:2: unknown recording 'SL99_R1'"),
        ("SL14_R1,12.000,0.1,0.2,0.3,0.4,1,zero", r"in\.csv:2: person id 'zero' is not an integer"),
    ],
)
def test_read_errors(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, GOOD + line + "\n")
    with pytest.raises(DataError, match=message):
        read_ava_csv(path, num_classes=14, recordings=["SL14_R1"])
    warnings: list[str] = []
    rows = read_ava_csv(
        path, num_classes=14, recordings=["SL14_R1"], problems=ProblemLog(True, warnings.append)
    )
    assert len(rows) == 1 and len(warnings) == 1 and "in.csv:2" in warnings[0]


def test_read_header_blank_and_tolerance(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "video_id,timestamp,x1,y1,x2,y2,action_id,person_id\n\n" + "a,1.5,-0.0000001,0,1.0000001,1,3,2\n",
    )
    (row,) = read_ava_csv(path, time_unit="s")
    assert row == AvaRow("a", 1500, (0.0, 0.0, 1.0, 1.0), 2, 2, None)
    with pytest.raises(DataError, match="not found"):
        read_ava_csv(tmp_path / "none.csv")
    with pytest.raises(DataError, match="expected 8 or 9 columns for detections"):
        read_ava_csv(_write(tmp_path, "a,1.5,0,0,1,1,3\n"), "detections")


def test_label_map(data: ThermalData, tmp_path: Path) -> None:
    path = tmp_path / "labels.pbtxt"
    write_label_map(path, data.classes)
    text = path.read_text()
    assert text.startswith('item {\n  name: "sitting"\n  id: 1\n}\nitem {\n  name: "standing"\n  id: 2\n}\n')
    assert '  name: "lying down-lying on the bed/couch"\n  id: 5\n' in text
    assert read_label_map(path) == data.classes
    # Parsed the way the official evaluator's read_labelmap does it (line prefixes).
    ids = [int(line.strip().split(" ")[-1]) for line in text.splitlines() if line.startswith("  id:")]
    assert ids == list(range(1, 15))
    write_label_map(path, ['say "hi"', "back\\slash"])
    assert read_label_map(path) == ClassList(('say "hi"', "back\\slash"))
    path.write_text('item {\n  name: "a"\n  id: 2\n}\n')
    with pytest.raises(DataError, match=r"ids must be 1\.\.1"):
        read_label_map(path)


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_official_readers_keep_every_keyframe_apart(
    which: str,
    real_data: ThermalData,
    real_data_v2: ThermalData,
    official_ava: Callable[[Path], Any],
    tmp_path: Path,
) -> None:
    """Read as the official evaluator / PySlowFast do (key ``video_id,int(timestamp)``): every row
    is read, and the keys are exactly the keyframes, none merged; integer seconds would merge some."""
    ds = real_data if which == "v1" else real_data_v2
    gt = keyframes_to_ava_rows(ds.keyframes, ds.annotations.frame_size)
    dets = [
        row
        for kf in ds.keyframes
        for row in detection_rows(
            kf.recording_id,
            kf.timestamp_ms,
            np.array([p.xyxy for p in kf.persons]),
            np.full((len(kf.persons), len(ds.classes)), 0.5),
            ds.annotations.frame_size,
        )
    ]
    keyframes = {f"{k.recording_id},{k.timestamp_ms:04d}" for k in ds.keyframes}
    assert len(keyframes) == len(ds.keyframes)
    for name, rows in (("gt.csv", gt), ("det.csv", dets)):
        write_ava_csv(tmp_path / name, rows)
        read = official_ava(tmp_path / name)
        assert read.rows == len(rows) == sum(len(v) for v in read.entries.values())
        assert read.keys == {f"{k.recording_id},{k.timestamp_ms:04d}" for k in ds.keyframes if k.persons}
    by_key = official_ava(tmp_path / "gt.csv").entries
    for kf in ds.keyframes:  # each keyframe's boxes and 1-based action ids, under its own key
        got = sorted((a, n) for a, *_, n in by_key.get(f"{kf.recording_id},{kf.timestamp_ms:04d}", []))
        assert got == sorted((p.label + 1, float(p.track_id)) for p in kf.persons if p.label is not None)
    # why milliseconds: V2's keyframes come as little as 157 ms apart; integer seconds merge 167
    seconds = {(k.recording_id, k.timestamp_ms // 1000) for k in ds.keyframes}
    assert len(keyframes) - len(seconds) == {"v1": 0, "v2": 167}[which]
    write_ava_csv(tmp_path / "s.csv", gt, time_unit="s")
    with pytest.raises(ValueError, match="invalid literal for int"):
        official_ava(tmp_path / "s.csv")  # the "s" unit is for thermact only
