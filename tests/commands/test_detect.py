"""``thermact detect``: JSONL, AVA CSV, GIF and summary outputs; errors naming the bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageSequence

from thermact.commands.detect import main as main_detect
from thermact.data.ava import read_ava_csv, read_label_map
from thermact.data.recording import Recording
from thermact.data.source import find_recordings
from thermact.errors import CheckpointError, ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


@pytest.fixture(scope="module")
def detect_run(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("detect") / "out"
    args = [
        f"checkpoint={action_ckpt}",
        f"detector={detector_ckpt}",
        f"out={out}",
        "every=4",
        "animation=gif",
    ]
    assert main_detect(str(short_recordings), [*args, "lying_min_s=0"], False) == 0
    return out


def test_jsonl_has_one_parsable_line_per_frame(detect_run: Path, short_recordings: Path) -> None:
    summary = json.loads((detect_run / "summary.json").read_text())
    classes = summary["classes"]
    assert summary["clip"] == {"window_s": 2.7, "num_frames": 8, "position": "causal"}
    for rec_summary in summary["recordings"]:
        rid = rec_summary["recording_id"]
        rec = Recording(short_recordings / f"{rid}.h5")
        lines = [json.loads(line) for line in (detect_run / f"{rid}.jsonl").read_text().splitlines()]
        assert len(lines) == rec.num_frames == rec_summary["frames"]
        assert [d["timestamp_ms"] for d in lines] == rec.timestamps.tolist()
        assert [d["frame_index"] for d in lines] == list(range(rec.num_frames))
        persons = [p for d in lines for p in d["persons"]]
        assert persons, rid
        for p in persons:
            assert len(p["scores"]) == len(classes) and math.isclose(sum(p["scores"]), 1.0, abs_tol=1e-3)
            assert p["top_label"] == classes[p["top_class"]] and p["top_score"] == max(p["scores"])
            x1, y1, x2, y2 = p["box"]
            assert 0 <= x1 < x2 <= 60 and 0 <= y1 < y2 <= 40
        assert sum(p["fresh"] for p in persons) == rec_summary["classifications"]


def test_csv_has_a_row_per_class_of_each_fresh_classification(detect_run: Path) -> None:
    rows = read_ava_csv(detect_run / "detections.csv", kind="detections", num_classes=14)
    fresh: list[tuple[str, int, dict[str, Any]]] = []
    for path in sorted(detect_run.glob("SL*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            fresh.extend((d["recording"], d["timestamp_ms"], p) for p in d["persons"] if p["fresh"])
    assert len(rows) == 14 * len(fresh) > 0
    rid, t, p = fresh[0]
    box = np.array(p["box"]) / [60, 40, 60, 40]  # 8 official columns: a person is its box
    mine = [
        r
        for r in rows
        if r.recording_id == rid and r.timestamp_ms == t and np.allclose(r.box, box, atol=1e-4)
    ]
    assert all(r.person_id is None for r in rows)
    assert [r.class_id for r in mine] == list(range(14))
    np.testing.assert_allclose(
        [float(r.score or 0.0) for r in mine], np.array(p["scores"]) * p["det_score"], atol=1e-4
    )
    assert read_label_map(detect_run / "label_map.pbtxt").names[3] == "lying down-lying with risk"


def test_csv_reads_in_the_official_ava_readers(detect_run: Path, official_ava: Any) -> None:
    """Keyed ``video_id,int(timestamp)`` as the official evaluator does: every row is read and each
    frame with a fresh classification has its own key (none merged with another)."""
    read = official_ava(detect_run / "detections.csv")
    assert read.rows == len(read_ava_csv(detect_run / "detections.csv", "detections", 14)) > 0
    frames = set()
    for path in sorted(detect_run.glob("SL*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if any(p["fresh"] for p in d["persons"]):
                frames.add(f"{d['recording']},{d['timestamp_ms']:04d}")
    assert read.keys == frames
    fresh_per_frame = [len(v) // 14 for v in read.entries.values()]
    assert all(len(v) % 14 == 0 for v in read.entries.values()) and sum(fresh_per_frame) * 14 == read.rows


def test_gif_is_valid_and_shows_every_nth_frame(detect_run: Path, short_recordings: Path) -> None:
    for h5 in sorted(short_recordings.glob("*.h5")):
        n = Recording(h5).num_frames
        with Image.open(detect_run / f"{h5.stem}.gif") as im:
            assert im.format == "GIF" and im.size == (360, 240)
            assert sum(1 for _ in ImageSequence.Iterator(im)) == math.ceil(n / 4)


def test_events_file_matches_the_lying_classifications(detect_run: Path) -> None:
    events = [json.loads(line) for line in (detect_run / "events.jsonl").read_text().splitlines()]
    lying = set()
    for path in sorted(detect_run.glob("SL*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            lying |= {
                (d["recording"], p["track_id"]) for p in d["persons"] if p["fresh"] and p["top_class"] == 3
            }
    raised = {(e["sensor_id"], e["track_id"]) for e in events if e["kind"] == "raised"}
    assert lying and raised == lying  # lying_min_s=0: every track classified lying once raises one event
    # every raised event is cleared by the recording's end (a track may raise again after clearing)
    assert sum(e["kind"] == "cleared" for e in events) == sum(e["kind"] == "raised" for e in events)


def test_bad_inputs_raise_errors_naming_the_file(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path, tmp_path: Path
) -> None:
    ok = [f"checkpoint={action_ckpt}", f"detector={detector_ckpt}", f"out={tmp_path / 'o'}", "animation=none"]
    missing = tmp_path / "nope.h5"
    with pytest.raises(DataError, match=str(missing)):
        main_detect(str(missing), ok, False)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match=f"{text}: not a readable HDF5 file"):
        main_detect(str(text), ok, False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .h5 recordings"):
        find_recordings(str(empty))
    with pytest.raises(CheckpointError, match=f"{detector_ckpt}: is a person-detector checkpoint"):
        main_detect(
            str(short_recordings), [f"checkpoint={detector_ckpt}", f"detector={detector_ckpt}"], False
        )
    with pytest.raises(CheckpointError, match=f"{action_ckpt}: not a person-detector checkpoint"):
        main_detect(str(short_recordings), [f"checkpoint={action_ckpt}", f"detector={action_ckpt}"], False)
    with pytest.raises(CheckpointError, match="nothing.pt: checkpoint not found"):
        main_detect(
            str(short_recordings),
            [f"checkpoint={tmp_path / 'nothing.pt'}", f"detector={detector_ckpt}"],
            False,
        )
    with pytest.raises(ConfigError, match="'detector': must not be empty"):
        main_detect(str(short_recordings), [f"checkpoint={action_ckpt}", "detector="], False)
    with pytest.raises(CheckpointError, match="did you mean 'person_detector_live'"):
        main_detect(
            str(short_recordings), [f"checkpoint={action_ckpt}", "detector=person_detector_liv"], False
        )
    with pytest.raises(ConfigError, match="cadence_s"):
        main_detect(str(short_recordings), [*ok, "cadence_s=0"], False)
    assert not (tmp_path / "o").exists()  # nothing written by a failed run


def test_lenient_skips_a_bad_recording(
    action_ckpt: Path,
    detector_ckpt: Path,
    short_recordings: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.h5").write_bytes(b"\x00" * 64)
    src = short_recordings / "SL18_R2.h5"
    (mixed / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "o"
    args = [
        f"checkpoint={action_ckpt}",
        f"detector={detector_ckpt}",
        f"out={out}",
        "animation=none",
        "cadence_s=5",
    ]
    with pytest.raises(DataError, match="broken.h5"):
        main_detect(str(mixed), args, False)
    assert main_detect(str(mixed), args, True) == 0
    printed = capsys.readouterr()
    assert "broken.h5" in printed.err
    assert "(per recording .jsonl, detections.csv" in printed.out  # animation=none: no "+ animation"
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["SL18_R2.jsonl", "events.jsonl"]


def test_threads_apply_while_detect_runs_and_are_restored(
    action_ckpt: Path,
    detector_ckpt: Path,
    short_recordings: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from thermact.commands import detect

    seen: list[int] = []
    original = detect.detect_recording

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(detect, "detect_recording", spy)
    args = [f"checkpoint={action_ckpt}", f"detector={detector_ckpt}", "animation=none", "cadence_s=5"]
    assert torch.get_num_threads() == 1  # the one_thread fixture
    assert main_detect(str(short_recordings), [*args, f"out={tmp_path / 'a'}", "threads=2"], False) == 0
    assert seen and set(seen) == {2} and torch.get_num_threads() == 1
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["options"]["threads"] == 2
    with pytest.raises(ConfigError, match="'threads'"):
        main_detect(str(short_recordings), [*args, f"out={tmp_path / 'b'}", "threads=0"], False)
