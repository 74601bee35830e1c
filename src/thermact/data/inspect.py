"""``thermact data inspect``: what is in a dataset and what is wrong with it.

:func:`build_report` (pure, JSON-able) gathers:

* per recording: device, time span, frames, duration, mean fps, median interval, the gaps over
  one second, duplicates / out-of-order frames removed, frames with at least one invalid pixel,
  how many rows such frames have invalid (the sensor drops whole blocks of rows), the keyframe
  clips (frames sampled with the given :class:`~thermact.data.clips.ClipConfig`) that contain
  such a frame, and the time shared with other recordings of the same device;
* person boxes per class for each part of each standard split (given, session, leave one
  recording out), classes absent from a part listed;
* person / other boxes per keyframe (histograms);
* leakage per split: test keyframes whose clip window shares absolute time with a training clip
  (see :func:`thermact.data.splits.leakage`), in keyframes and seconds;
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

:func:`format_report` renders it as text; ``thermact data inspect`` (:mod:`thermact.commands.data`) is the command.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thermact.data.annotations import Box, Keyframe
from thermact.data.clips import ClipConfig, clip_indices, clip_window
from thermact.data.source import ThermalData
from thermact.data.splits import (
    SplitDefinition,
    build_standard_splits,
    device_of,
    leakage,
    same_device,
)

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


def build_report(
    data: ThermalData, clip: ClipConfig, splits: Mapping[str, SplitDefinition] | None = None
) -> dict[str, Any]:
    """Everything :mod:`thermact.data.inspect` reports, as plain JSON types.

    ``splits`` defaults to :func:`thermact.data.splits.build_standard_splits` for ``clip``.
    """
    splits = splits if splits is not None else build_standard_splits(data, clip)
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
        "problems": {
            "loader": list(data.problems.problems),
            "checks": checks,
            "counts": dict(sorted(Counter(c["kind"] for c in checks).items())),
        },
    }


# ---------------------------------------------------------------------------------------------
# Text


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
    lines += ["", "leakage (test clips sharing time with training clips)"]
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
    probs = report["problems"]
    lines += ["", f"problems: {len(probs['loader'])} from loading, {len(probs['checks'])} from checks"]
    lines += [f"  {m}" for m in probs["loader"]]
    if probs["counts"]:
        lines.append("  " + ", ".join(f"{k}: {n}" for k, n in probs["counts"].items()))
    lines += [f"  [{c['kind']}] {c['message']}" for c in probs["checks"]]
    return "\n".join(lines)


__all__ = ["annotation_checks", "build_report", "format_report"]
