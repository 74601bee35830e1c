"""``thermact stream``: replay of recordings as sensors, events printed, summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from thermact.commands.stream import load_stream_options, run_stream
from thermact.commands.stream import main as main_stream
from thermact.data.recording import Recording
from thermact.errors import ConfigError, DataError
from thermact.inference.streaming import interleave

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread


def test_interleave_merges_by_time_and_puts_dead_pixels_back(short_recordings: Path) -> None:
    recs = [Recording(p) for p in sorted(short_recordings.glob("*.h5"))]
    offsets = [0, recs[0].start_ms - recs[1].start_ms]  # align the second with the first
    items = list(interleave(recs, offsets))
    assert len(items) == sum(r.num_frames for r in recs)
    times = [t for t, _, _ in items]
    assert times == sorted(times)
    assert {s for _, s, _ in items} == {"SL14_R1", "SL18_R2"}
    dead = sum(bool((f < -273).any()) for _, s, f in items if s == "SL14_R1")
    assert dead == int((~recs[0].valid).any(axis=(1, 2)).sum()) >= 10


def test_stream_at_max_speed_prints_events_and_a_summary(
    action_ckpt: Path,
    detector_ckpt: Path,
    short_recordings: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "summary.json"
    args = [
        f"checkpoint={action_ckpt}",
        f"detector={detector_ckpt}",
        "speed=max",
        "lying_min_s=0",
        f"out={out}",
    ]
    assert main_stream(str(short_recordings), args, False) == 0
    text = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["sensors"] == ["SL14_R1", "SL18_R2"] and summary["backend"] == "pytorch"
    frames = sum(Recording(p).num_frames for p in short_recordings.glob("*.h5"))
    assert summary["counters"]["accepted"] == frames
    assert summary["counters"]["classifications"] > 10
    raised = [e for e in summary["events"] if e["kind"] == "raised"]
    assert raised and text.count("RAISED") == len(raised)
    assert text.count("CLEARED") == len(raised)  # every sensor is closed at the end
    assert "frames/s" in text and "p99" in text and "detector" in text
    # the same through onnxruntime, 5 s of stream
    summary = run_stream(
        str(short_recordings), load_stream_options([*args[:3], "onnx=true", "limit_s=5"]), echo=False
    )
    assert summary["backend"] == "onnxruntime" and 40 <= summary["counters"]["accepted"] < frames


def test_real_speed_follows_the_timestamps(
    action_ckpt: Path, detector_ckpt: Path, short_recordings: Path
) -> None:
    opts = load_stream_options(
        [f"checkpoint={action_ckpt}", f"detector={detector_ckpt}", "speed=10", "limit_s=4"]
    )
    t0 = time.perf_counter()
    summary = run_stream(str(short_recordings / "SL18_R2.h5"), opts, echo=False)
    assert time.perf_counter() - t0 >= 0.35 and summary["wall_s"] >= 0.35  # 4 s of stream at 10x
    # latencies are measured, not judged here (they depend on the machine's load: benchmarks/)
    p50, p99 = summary["frame_latency_ms"]["p50"], summary["frame_latency_ms"]["p99"]
    assert 0 <= p50 <= p99 < float("inf")


def test_bad_options_and_inputs(tmp_path: Path, detector_ckpt: Path) -> None:
    with pytest.raises(ConfigError, match="speed"):
        load_stream_options(["speed=0"])
    with pytest.raises(ConfigError, match="speed"):
        load_stream_options(["speed=fast"])
    assert load_stream_options(["speed=max"]).speed == "max"
    with pytest.raises(ConfigError, match="'onnx', 'tta'"):
        load_stream_options(["onnx=true", "tta=flips"])
    assert load_stream_options(["tta=flips"]).tta == "flips"
    with pytest.raises(DataError, match="nowhere"):
        run_stream(str(tmp_path / "nowhere"), load_stream_options([]), echo=False)


def test_heat_growth_option_reaches_the_detector(
    tmp_path: Path, action_ckpt: Path, detector_ckpt: Path
) -> None:
    """``heat_growth=false``: the detector's boxes as decoded, with PyTorch and with onnxruntime
    (the export carries the growth otherwise)."""
    from thermact.commands.stream import _models
    from thermact.inference.runners import DetectorRunner
    from thermact.models.heat_boxes import HeatGrowth

    base = [f"checkpoint={action_ckpt}", f"detector={detector_ckpt}"]
    for onnx in ("false", "true"):
        grown = _models(load_stream_options([*base, f"onnx={onnx}"]), tmp_path)[1]
        plain = _models(load_stream_options([*base, f"onnx={onnx}", "heat_growth=false"]), tmp_path)[1]
        assert isinstance(grown, DetectorRunner) and isinstance(plain, DetectorRunner)
        assert grown.heat_growth == HeatGrowth() and plain.heat_growth is None
    with pytest.raises(ConfigError, match="heat_growth"):
        load_stream_options(["heat_growth=maybe"])
