"""``thermact data inspect``: what is in a dataset and what is wrong with it.

:func:`build_report` (pure, JSON-able) gathers:

* the sessions found from the data (:func:`thermact.data.sessions.find_sessions`: device and
  pauses between recordings), with their recordings, span and the pause before each;
* which recordings have raw annotations (hot objects, furniture: optional per recording) and
  which have no keyframe at all (unlabelled);
* per recording: device, time span, frames, duration, mean fps, median interval, the gaps over
  one second, duplicates / out-of-order frames removed, frames with at least one invalid pixel,
  how many rows such frames have invalid (the sensor drops whole blocks of rows), the keyframe
  clips (frames sampled with the given :class:`~thermact.data.clips.ClipConfig`) that contain
  such a frame, and the time shared with other recordings of the same device;
* person boxes per class for each part of each standard split (given, session, leave one
  recording out), classes absent from a part listed;
* person / other boxes per keyframe (histograms);
* leakage per split: test keyframes whose clip window shares absolute time with a training clip
  (see :func:`thermact.data.splits.leakage`), in keyframes and seconds; for the standard splits
  built now and for every split file the dataset ships in ``splits/`` (with whether a standard
  one still equals what ``thermact data split`` would write);
* every annotation problem: those the loader reported (the dataset is read leniently so all are
  listed), plus these checks on the loaded keyframes:

  ``overlapping_persons``  two person boxes of one keyframe with IoU > :data:`MAX_PERSON_IOU`;
  ``tiny_box``             a person box narrower or lower than :data:`MIN_BOX_SIDE_PX`;
  ``class_flicker``        a track labelled A, B, A on three consecutive keyframes spanning at
                           most :data:`FLICKER_WINDOW_MS` (a one-keyframe label change);
  ``track_jump``           a track whose box centre moves more than :data:`MAX_JUMP_PX` between
                           keyframes at most :data:`JUMP_WINDOW_MS` apart (a possible id swap);
  ``box_on_invalid``       a person box whose pixels are mostly (> 50 %) invalid in the keyframe.

  The checks flag what deserves a look; they are not errors.

:func:`format_report` renders it as text; ``thermact data inspect`` (:mod:`thermact.commands.data`) is
the command: problems found while loading are all listed, then it fails with :func:`problems_error`
(exit status 2, one ``error:`` line naming the first) unless ``--lenient`` accepts them.
"""

from __future__ import annotations

import datetime
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thermact.data.annotations import Box, Keyframe
from thermact.data.clips import ClipConfig, clip_indices, clip_window
from thermact.data.sessions import SESSION_GAP_S, device_of, find_sessions, same_device
from thermact.data.source import ThermalData
from thermact.data.splits import (
    STANDARD_SPLITS,
    SplitDefinition,
    build_standard_splits,
    leakage,
    load_split,
)
from thermact.errors import DataError

MAX_PERSON_IOU = 0.7
MIN_BOX_SIDE_PX = 2.0
FLICKER_WINDOW_MS = 3000
MAX_JUMP_PX = 12.0
JUMP_WINDOW_MS = 2000
INVALID_BOX_FRACTION = 0.5


# ---------------------------------------------------------------------------------------------
# Report pieces


def _iou(a: Box, b: Box) -> float:
    ax1, ay1, ax2, ay2 = a.xyxy
    bx1, by1, bx2, by2 = b.xyxy
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def _recording_report(
    data: ThermalData, rid: str, keyframes: Sequence[Keyframe], clip: ClipConfig
) -> dict[str, Any]:
    rec = data.recording(rid)
    timing = rec.timing
    ts = rec.timestamps
    frame_invalid = np.asarray(~rec.valid.all(axis=(1, 2)), dtype=np.bool_)
    diffs = np.diff(ts)
    gaps = [
        {"at_s": round(float(ts[i] - ts[0]) / 1000.0, 3), "gap_ms": int(diffs[i])}
        for i in np.nonzero(diffs > 1000)[0]
    ]
    affected = [
        k.keyframe_id for k in keyframes if bool(frame_invalid[clip_indices(ts, k.timestamp_ms, clip)].any())
    ]
    rows_hist = Counter(int(n) for n in (~rec.valid[frame_invalid]).any(axis=2).sum(axis=1))
    on_invalid = sum(
        1 for k in keyframes if (i := rec.exact_index(k.timestamp_ms)) is not None and frame_invalid[i]
    )
    overlaps = {
        other_id: round(max(0, min(rec.end_ms, other.end_ms) - max(rec.start_ms, other.start_ms)) / 1000.0, 3)
        for other_id, other in data.recordings.items()
        if other_id != rid
        and same_device(rec, other)
        and min(rec.end_ms, other.end_ms) > max(rec.start_ms, other.start_ms)
    }
    return {
        "device": device_of(rec),
        "raw_annotations": any(k.others_known for k in keyframes),
        "start_ms": rec.start_ms,
        "end_ms": rec.end_ms,
        "frames": timing.num_frames,
        "duration_s": timing.duration_s,
        "fps": round(timing.fps, 4),
        "median_interval_ms": timing.median_interval_ms,
        "max_gap_ms": timing.max_gap_ms,
        "gaps_over_1s": timing.gaps_over_1s,
        "gaps": gaps,
        "duplicates_removed": timing.duplicates_removed,
        "out_of_order": timing.out_of_order,
        "invalid_pixel_frames": int(frame_invalid.sum()),
        "invalid_pixel_fraction": round(float((~rec.valid).mean()), 6),
        "invalid_rows_per_frame": {str(n): rows_hist[n] for n in sorted(rows_hist)},
        "keyframes_on_invalid_frames": on_invalid,
        "keyframes": len(keyframes),
        "clips_with_invalid_frames": len(affected),
        "clips_with_invalid_frames_ids": affected,
        "overlaps_s": overlaps,
    }


def _class_table(data: ThermalData, split: SplitDefinition) -> dict[str, Any]:
    index = {k.keyframe_id: k for k in data.keyframes}
    out: dict[str, Any] = {}
    for fold in split.folds:
        parts: dict[str, Any] = {}
        for part in ("train", "test"):
            counts = data.annotations.class_counts(index[k] for k in getattr(fold, part))
            parts[part] = counts
        parts["absent"] = {part: [c for c, n in parts[part].items() if n == 0] for part in ("train", "test")}
        parts["test_only"] = [
            c for c in data.classes.names if parts["train"][c] == 0 and parts["test"][c] > 0
        ]
        out[fold.name] = parts
    return out


def annotation_checks(data: ThermalData) -> list[dict[str, Any]]:
    """The extra annotation checks listed in the module docstring, in keyframe order."""
    found: list[dict[str, Any]] = []

    def add(kind: str, keyframe: str, message: str) -> None:
        found.append({"kind": kind, "keyframe": keyframe, "message": f"keyframe {keyframe}: {message}"})

    for kf in data.keyframes:
        for a, b in itertools.combinations(kf.persons, 2):
            iou = _iou(a, b)
            if iou > MAX_PERSON_IOU:
                add(
                    "overlapping_persons",
                    kf.keyframe_id,
                    f"persons {a.track_id} and {b.track_id} overlap (IoU {iou:.2f})",
                )
        for p in kf.persons:
            w, h = p.xyxy[2] - p.xyxy[0], p.xyxy[3] - p.xyxy[1]
            if min(w, h) < MIN_BOX_SIDE_PX:
                add("tiny_box", kf.keyframe_id, f"person {p.track_id} box is {w:.1f}x{h:.1f} px")
        rec = data.recordings.get(kf.recording_id)
        idx = rec.exact_index(kf.timestamp_ms) if rec is not None else None
        if rec is not None and idx is not None:
            valid = rec.valid[idx]
            for p in kf.persons:
                x1, y1 = int(np.floor(p.xyxy[0])), int(np.floor(p.xyxy[1]))
                x2, y2 = int(np.ceil(p.xyxy[2])), int(np.ceil(p.xyxy[3]))
                patch = valid[y1:y2, x1:x2]
                if patch.size and float((~patch).mean()) > INVALID_BOX_FRACTION:
                    add(
                        "box_on_invalid",
                        kf.keyframe_id,
                        f"person {p.track_id} box is {100 * float((~patch).mean()):.0f}% invalid pixels",
                    )
    for rid, kfs in data.annotations.by_recording().items():
        tracks: dict[int, list[tuple[Keyframe, Box]]] = {}
        for kf in kfs:
            for p in kf.persons:
                tracks.setdefault(p.track_id, []).append((kf, p))
        for track, seq in sorted(tracks.items()):
            for (ka, a), (kb, b), (kc, c) in zip(seq, seq[1:], seq[2:], strict=False):
                if a.label == c.label != b.label and kc.timestamp_ms - ka.timestamp_ms <= FLICKER_WINDOW_MS:
                    add(
                        "class_flicker",
                        kb.keyframe_id,
                        f"track {track} of {rid} is {b.name!r} between two {a.name!r} keyframes "
                        f"({(kc.timestamp_ms - ka.timestamp_ms) / 1000:.1f} s)",
                    )
            for (ka, a), (kb, b) in itertools.pairwise(seq):
                dt = kb.timestamp_ms - ka.timestamp_ms
                ca = ((a.xyxy[0] + a.xyxy[2]) / 2, (a.xyxy[1] + a.xyxy[3]) / 2)
                cb = ((b.xyxy[0] + b.xyxy[2]) / 2, (b.xyxy[1] + b.xyxy[3]) / 2)
                dist = float(np.hypot(cb[0] - ca[0], cb[1] - ca[1]))
                if dt <= JUMP_WINDOW_MS and dist > MAX_JUMP_PX:
                    add(
                        "track_jump",
                        kb.keyframe_id,
                        f"track {track} of {rid} moved {dist:.1f} px in {dt / 1000:.2f} s (id swap?)",
                    )
    return found


def _leakage_section(data: ThermalData, splits: Mapping[str, SplitDefinition]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, split in splits.items():
        report = leakage(data, split)
        out[name] = {"leaky": split.leaky, **report.to_dict()}
    return out


def _split_files_section(
    data: ThermalData, clip: ClipConfig, built: Mapping[str, SplitDefinition]
) -> dict[str, Any]:
    """Every ``splits/*.json`` of the dataset: its leakage on the data, and for a standard split
    made for ``clip`` whether it still equals the one built now (``current``; None: not comparable).
    A file that cannot be read is a problem of ``data.problems``."""
    out: dict[str, Any] = {}
    folder = data.root / "splits"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            split = load_split(path, data)
        except DataError as err:
            data.problems.report(str(err), consequence="ignoring the split file")
            out[path.name] = {"error": str(err)}
            continue
        fresh = built.get(path.stem) if path.stem in STANDARD_SPLITS and split.clip == clip else None
        current = None if fresh is None else fresh.to_dict() == split.to_dict()
        out[path.name] = {"leaky": split.leaky, "current": current, **leakage(data, split).to_dict()}
    return out


def _labels_section(data: ThermalData) -> dict[str, Any]:
    """Which recordings have keyframes, and which have raw (hot-object / furniture) annotations."""
    by_rec = data.annotations.by_recording()
    with_raw = sorted(r for r, kfs in by_rec.items() if any(k.others_known for k in kfs))
    return {
        "unlabelled_recordings": data.unlabelled_recordings(),
        "raw_annotations": with_raw,
        "without_raw_annotations": sorted(r for r in by_rec if r not in with_raw),
        "keyframes_without_raw_annotations": sum(1 for k in data.keyframes if not k.others_known),
    }


def _sessions_section(data: ThermalData, gap_s: float) -> dict[str, Any]:
    by_rec = data.annotations.by_recording()
    sessions = []
    for s in find_sessions(data.recordings, gap_s):
        keyframes = sum(len(by_rec.get(r, [])) for r in s.recordings)
        sessions.append({**s.to_dict(), "keyframes": keyframes})
    return {"gap_s": gap_s, "sessions": sessions}


def build_report(
    data: ThermalData,
    clip: ClipConfig,
    splits: Mapping[str, SplitDefinition] | None = None,
    session_gap_s: float = SESSION_GAP_S,
) -> dict[str, Any]:
    """Everything :mod:`thermact.data.inspect` reports, as plain JSON types.

    ``splits`` defaults to :func:`thermact.data.splits.build_standard_splits` for ``clip``.
    """
    splits = splits if splits is not None else build_standard_splits(data, clip, session_gap_s=session_gap_s)
    split_files = _split_files_section(data, clip, splits)
    by_rec = data.annotations.by_recording()
    recordings = {
        rid: _recording_report(data, rid, by_rec.get(rid, []), clip) for rid in sorted(data.recordings)
    }
    person_hist = Counter(len(k.persons) for k in data.keyframes)
    other_hist = Counter(len(k.others) for k in data.keyframes)
    checks = annotation_checks(data)
    return {
        "dataset": {
            "root": str(data.root),
            "name": data.root.name,
            "recordings": len(data.recordings),
            "keyframes": len(data.keyframes),
            "person_boxes": data.annotations.num_persons(),
            "other_boxes": sum(len(k.others) for k in data.keyframes),
            "classes": list(data.classes.names),
            "class_counts": data.annotations.class_counts(),
        },
        "clip": {
            "window_s": clip.window_s,
            "num_frames": clip.num_frames,
            "keyframe_position": clip.keyframe_position,
            "window_ms": list(clip_window(0, clip)),
        },
        "sessions": _sessions_section(data, session_gap_s),
        "labels": _labels_section(data),
        "recordings": recordings,
        "invalid_pixels": {
            "frames": sum(r["invalid_pixel_frames"] for r in recordings.values()),
            "total_frames": sum(r["frames"] for r in recordings.values()),
            "clips_with_invalid_frames": sum(r["clips_with_invalid_frames"] for r in recordings.values()),
            "keyframes_on_invalid_frames": sum(r["keyframes_on_invalid_frames"] for r in recordings.values()),
            "keyframes": len(data.keyframes),
        },
        "classes_per_split": {name: _class_table(data, split) for name, split in splits.items()},
        "boxes_per_keyframe": {
            "persons": {str(n): person_hist[n] for n in sorted(person_hist)},
            "others": {str(n): other_hist[n] for n in sorted(other_hist)},
        },
        "leakage": _leakage_section(data, splits),
        "split_files": split_files,
        "problems": {
            "loader": list(data.problems.problems),
            "checks": checks,
            "counts": dict(sorted(Counter(c["kind"] for c in checks).items())),
        },
    }


# ---------------------------------------------------------------------------------------------
# Text


def _utc(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000.0, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _format_sessions(report: Mapping[str, Any]) -> list[str]:
    sec = report["sessions"]
    lines = [f"sessions (found from the data: same device, no pause over {sec['gap_s']:g} s)"]
    for s in sec["sessions"]:
        pause = (
            "" if s["gap_before_s"] is None else f", {_duration(s['gap_before_s'])} after the previous one"
        )
        lines.append(
            f"  {s['name']:<10} {_utc(s['start_ms'])} .. {_utc(s['end_ms'])[11:]} UTC{pause}: "
            f"{len(s['recordings'])} recordings ({', '.join(s['recordings'])}), {s['keyframes']} keyframes"
        )
    labels = report["labels"]
    if labels["unlabelled_recordings"]:
        lines.append(f"  recordings without any keyframe: {', '.join(labels['unlabelled_recordings'])}")
    if labels["without_raw_annotations"]:
        lines.append(
            f"  raw annotations (hot objects, furniture) for {len(labels['raw_annotations'])} of "
            f"{len(labels['raw_annotations']) + len(labels['without_raw_annotations'])} labelled recordings; "
            f"none for {', '.join(labels['without_raw_annotations'])}"
        )
    return lines


def _format_leakage(report: Mapping[str, Any]) -> list[str]:
    lines = ["leakage (test clips sharing time with training clips)"]
    for split_name, leak in report["leakage"].items():
        flag = " LEAKY" if leak["leaky"] else ""
        lines.append(
            f"  {split_name:<12} {leak['leaky_keyframes']:>4} keyframe(s), {leak['overlap_s']:.1f} s{flag}"
        )
        for f in leak["folds"]:
            if f["leaky_keyframes"]:
                per = ", ".join(f"{c}={n}" for c, n in f["per_class"].items() if n)
                lines.append(
                    f"    {f['fold']}: {f['leaky_keyframes']} of {f['num_test']} ({f['overlap_s']:.1f} s; {per})"
                )
    for name, entry in report["split_files"].items():
        if "error" in entry:
            lines.append(f"  splits/{name}: unreadable")
            continue
        state = {True: "current", False: "STALE (regenerate with thermact data split)", None: ""}[
            entry["current"]
        ]
        flag = " LEAKY" if entry["leaky"] else ""
        lines.append(
            f"  splits/{name:<16} {entry['leaky_keyframes']:>4} keyframe(s), {entry['overlap_s']:.1f} s{flag} {state}"
        )
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """A readable summary of :func:`build_report`'s output."""
    ds = report["dataset"]
    clip = report["clip"]
    lines = [
        f"dataset {ds['name']} ({ds['root']})",
        f"  {ds['recordings']} recordings, {ds['keyframes']} keyframes, {ds['person_boxes']} person boxes, "
        f"{ds['other_boxes']} other boxes, {len(ds['classes'])} classes",
        f"  clips: {clip['num_frames']} frames over {clip['window_s']} s, keyframe {clip['keyframe_position']}",
        "",
        *_format_sessions(report),
        "",
        "recordings",
        f"  {'id':<10} {'frames':>6} {'dur_s':>6} {'fps':>5} {'med_ms':>6} {'max_gap':>7} {'gaps>1s':>7} "
        f"{'inv.frames':>10} {'keyframes':>9} {'inv.clips':>9}",
    ]
    for rid, r in report["recordings"].items():
        lines.append(
            f"  {rid:<10} {r['frames']:>6} {r['duration_s']:>6.1f} {r['fps']:>5.2f} {r['median_interval_ms']:>6.0f} "
            f"{r['max_gap_ms']:>7} {r['gaps_over_1s']:>7} {r['invalid_pixel_frames']:>10} {r['keyframes']:>9} "
            f"{r['clips_with_invalid_frames']:>9}"
        )
    inv = report["invalid_pixels"]
    lines.append(
        f"  invalid-pixel frames: {inv['frames']} of {inv['total_frames']}; keyframe clips containing one: "
        f"{inv['clips_with_invalid_frames']} of {inv['keyframes']}; keyframes that are one: "
        f"{inv['keyframes_on_invalid_frames']}"
    )
    overl = [
        f"{rid}~{o} {s:.1f}s"
        for rid, r in report["recordings"].items()
        for o, s in r["overlaps_s"].items()
        if rid < o
    ]
    if overl:
        lines.append(f"  recordings overlapping in time (same device): {', '.join(overl)}")
    lines += ["", "boxes per keyframe"]
    for kind, hist in report["boxes_per_keyframe"].items():
        lines.append(f"  {kind:<8} " + ", ".join(f"{n}: {c}" for n, c in hist.items()))
    lines += ["", "person boxes per class, train/test per fold (- = absent from that part)"]
    names = ds["classes"]
    width = max(len(c) for c in names)
    for split_name, folds in report["classes_per_split"].items():
        fold_names = list(folds)
        cols = [max(len(f), 9) for f in fold_names]
        lines.append(
            f"  {split_name:<{width}} " + " ".join(f"{f:>{w}}" for f, w in zip(fold_names, cols, strict=True))
        )
        for c in names:
            cells = []
            for f, w in zip(fold_names, cols, strict=True):
                tr, te = folds[f]["train"][c], folds[f]["test"][c]
                cells.append(f"{(str(tr) if tr else '-') + '/' + (str(te) if te else '-'):>{w}}")
            lines.append(f"  {c:<{width}} " + " ".join(cells))
        for f in fold_names:
            if folds[f]["test_only"]:
                lines.append(f"  {f}: tested but never trained: {', '.join(folds[f]['test_only'])}")
    lines += ["", *_format_leakage(report)]
    probs = report["problems"]
    lines += ["", f"problems: {len(probs['loader'])} from loading, {len(probs['checks'])} from checks"]
    lines += [f"  {m}" for m in probs["loader"]]
    if probs["counts"]:
        lines.append("  " + ", ".join(f"{k}: {n}" for k, n in probs["counts"].items()))
    lines += [f"  [{c['kind']}] {c['message']}" for c in probs["checks"]]
    return "\n".join(lines)


def problems_error(data: ThermalData) -> DataError:
    """The one error of a dataset whose loading found problems: the first, and how many in all."""
    first = data.problems.messages[0]
    more = (
        f" (and {data.problems.count - 1} more problem(s), listed above)" if data.problems.count > 1 else ""
    )
    return DataError(f"{first}{more}; pass --lenient to skip such records")


__all__ = ["annotation_checks", "build_report", "format_report", "problems_error"]
