"""`thermact data inspect` on the bundled dataset: timing, invalid pixels, classes, leakage, problems."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from thermact.data.annotations import AnnotationSet
from thermact.data.clips import ClipConfig
from thermact.data.inspect import annotation_checks, build_report, format_report
from thermact.data.source import ThermalData, load_dataset

SL14 = ("SL14_R1", "SL14_R2", "SL14_R3", "SL14_R4")
SL18 = ("SL18_R1", "SL18_R2", "SL18_R3", "SL18_R4")


@pytest.fixture(scope="module")
def data() -> ThermalData:
    return load_dataset()


@pytest.fixture(scope="module")
def report(data: ThermalData) -> dict[str, Any]:
    return build_report(data, ClipConfig())


def test_report_is_json(report: dict[str, Any]) -> None:
    assert json.loads(json.dumps(report)) == report


def test_recording_timing(report: dict[str, Any]) -> None:
    recs = report["recordings"]
    assert [recs[r]["frames"] for r in SL14 + SL18] == [498, 491, 482, 480, 504, 507, 507, 507]
    assert recs["SL14_R1"]["fps"] == pytest.approx(5.8992, abs=1e-4)
    assert recs["SL14_R1"]["duration_s"] == pytest.approx(84.248)
    assert [recs[r]["gaps_over_1s"] for r in SL14] == [10, 12, 11, 21]
    assert [recs[r]["max_gap_ms"] for r in SL14] == [1388, 1826, 1826, 2633]
    assert len(recs["SL14_R4"]["gaps"]) == 21 and max(g["gap_ms"] for g in recs["SL14_R4"]["gaps"]) == 2633
    assert recs["SL14_R1"]["gaps"][0] == {"at_s": 5.917, "gap_ms": 1048}
    assert all(recs[r]["gaps_over_1s"] == 0 and recs[r]["max_gap_ms"] < 600 for r in SL18)
    assert recs["SL18_R1"]["median_interval_ms"] == 164.0
    assert recs["SL14_R2"]["overlaps_s"] == {"SL14_R1": 23.718, "SL14_R3": 24.55}
    assert recs["SL14_R1"]["device"] == recs["SL18_R4"]["device"] == "02:00:1a:62:51:67"


def test_invalid_pixels(report: dict[str, Any]) -> None:
    recs = report["recordings"]
    assert [recs[r]["invalid_pixel_frames"] for r in SL14] == [39, 52, 54, 63]
    assert all(
        recs[r]["invalid_pixel_frames"] == 0 and recs[r]["clips_with_invalid_frames"] == 0 for r in SL18
    )
    # Blocks of whole rows: mostly rows 30-39 (10 rows), sometimes 20, 29 or 39 rows.
    assert recs["SL14_R1"]["invalid_rows_per_frame"] == {"10": 31, "20": 3, "29": 2, "39": 3}
    # With the default clip (16 frames over 2.7 s) 112 of the 171 SL14 keyframe clips (65.5 %)
    # sample a frame with invalid pixels, although no keyframe itself is such a frame.
    assert [recs[r]["clips_with_invalid_frames"] for r in SL14] == [25, 32, 29, 26]
    inv = report["invalid_pixels"]
    assert (inv["frames"], inv["total_frames"], inv["clips_with_invalid_frames"]) == (208, 3976, 112)
    assert inv["keyframes_on_invalid_frames"] == 0


def test_invalid_clips_depend_on_clip(data: ThermalData) -> None:
    short = build_report(data, ClipConfig(window_s=1.0, num_frames=16))
    assert short["invalid_pixels"]["clips_with_invalid_frames"] == 75  # 44 % of SL14's 171


def test_classes_and_boxes(report: dict[str, Any]) -> None:
    assert report["dataset"]["keyframes"] == 387 and report["dataset"]["person_boxes"] == 500
    assert report["boxes_per_keyframe"]["persons"] == {"1": 274, "2": 113}
    assert report["boxes_per_keyframe"]["others"] == {"0": 4, "1": 92, "2": 160, "3": 100, "4": 29, "5": 2}
    given = report["classes_per_split"]["given"]["train->val"]
    assert given["train"]["standing"] == 123 and given["test"]["standing"] == 25
    assert given["absent"]["train"] == ["leaning", "lower position-other", "other"]
    assert "sitting" in given["absent"]["test"]
    session = report["classes_per_split"]["session"]
    assert session["SL18->SL14"]["test_only"] == ["lower position-crouching"]
    assert session["SL14->SL18"]["test_only"] == [
        "lying down-lying on the bed/couch",
        "transition-lying on the bed transition",
    ]
    assert sorted(report["classes_per_split"]) == ["given", "lorecording", "session"]


def test_leakage_section(report: dict[str, Any]) -> None:
    leak = report["leakage"]
    assert leak["given"]["leaky"] and leak["given"]["leaky_keyframes"] == 73
    assert leak["given"]["overlap_s"] == pytest.approx(171.442)
    assert leak["session"]["leaky_keyframes"] == 0 and not leak["session"]["leaky"]
    assert leak["lorecording"]["leaky_keyframes"] == 0


def test_problems(report: dict[str, Any]) -> None:
    probs = report["problems"]
    assert probs["loader"] == []
    assert probs["counts"] == {"class_flicker": 3, "track_jump": 4}
    first = probs["checks"][0]
    assert first["kind"] == "class_flicker" and first["keyframe"] == "SL14_R1_1760482273221"


def test_extra_checks_fire(data: ThermalData) -> None:
    kf = next(k for k in data.keyframes if k.recording_id == "SL14_R1" and len(k.persons) == 2)
    a = kf.persons[0]
    twin = dataclasses.replace(a, xyxy=(a.xyxy[0] + 0.2, a.xyxy[1], a.xyxy[2] + 0.2, a.xyxy[3]), track_id=7)
    tiny = dataclasses.replace(a, xyxy=(1.0, 1.0, 2.5, 9.0), track_id=8)
    # A frame of SL14_R1 with rows 31-39 invalid, annotated with a box there.
    rec = data.recordings["SL14_R1"]
    t = int(next(i for i in range(rec.num_frames) if not rec.valid[i, 31:].any() and rec.valid[i, :30].all()))
    on_bad = dataclasses.replace(a, xyxy=(10.0, 31.0, 20.0, 39.0), track_id=9)
    bad_kf = dataclasses.replace(
        kf, keyframe_id="bad", timestamp_ms=int(rec.timestamps[t]), persons=(on_bad,)
    )
    changed = dataclasses.replace(kf, persons=(a, twin, tiny))
    fake = dataclasses.replace(data, annotations=AnnotationSet(data.classes, [changed, bad_kf]))
    kinds = sorted(c["kind"] for c in annotation_checks(fake))
    assert kinds == ["box_on_invalid", "overlapping_persons", "tiny_box"]


def test_format_report(report: dict[str, Any]) -> None:
    text = format_report(report)
    assert "SL14_R4       480   83.4  5.75     38    2633      21         63        37        26" in text
    assert "keyframe clips containing one: 112 of 387" in text
    assert "given          73 keyframe(s), 171.4 s LEAKY" in text
    assert "[track_jump] keyframe SL18_R4_1760639403342" in text
