"""Recording sessions found from the data: the same device, recordings close in time.

A *session* is a stretch of recordings of one device with no pause longer than
:data:`SESSION_GAP_S` between them: sort a device's recordings by start time and start a new
session whenever a recording begins more than ``gap_s`` after every earlier recording of the
current session has ended. File names play no part in *finding* sessions (only in naming them).

Why 5 minutes (measured on the bundled ``thermal_v2``, one device): within a session the pauses
between recordings are at most 63 s (SL19_R2 → SL19_R3; SL14_R4 → SL14_R7 is 36 s), most
recordings overlap the next by ≈24 s, and the sensor's own longest dropout inside a recording is
2.6 s. Sessions SL14 and SL19 were recorded the same night, 13 min 39 s apart (SL14_R9 ends
22:59:10 UTC, SL19_R1 starts 23:12:50), in another scene; SL18 two days later. Any threshold
between 63 s and 819 s separates them; 300 s sits between the two with a factor of ≈2.7-4.8 on
either side: a pause of minutes is long enough for the scene (furniture, people, heating) to
change, which is what a cross-session test must not share with training.

A session is named after the ``<prefix>`` its recording ids share (``SL14`` for ``SL14_R1`` ..
``SL14_R9``), else after its first recording's id; a name used twice gets ``-2``, ``-3`` appended
in time order.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from thermact.data.recording import Recording

SESSION_GAP_S = 300.0
"""A pause longer than this (seconds) between recordings of one device starts a new session."""

SESSION_PATTERN = re.compile(r"^(.*)_R\d+$")
"""Recording ids ``<prefix>_R<n>``: a session whose recordings share the prefix is named after it."""


def device_of(recording: Recording) -> str | None:
    """The recording's device (``mac_address`` attribute), or None when unknown."""
    mac = recording.data.attrs.get("mac_address")
    return str(mac) if mac not in (None, "") else None


def same_device(a: Recording, b: Recording) -> bool:
    """True when two recordings may come from one sensor (unknown devices match everything)."""
    da, db = device_of(a), device_of(b)
    return da is None or db is None or da == db


@dataclasses.dataclass(frozen=True)
class Session:
    """Recordings of one device without a pause longer than the session gap between them.

    Attributes:
        name: e.g. ``"SL14"``.
        device: the devices' MAC address, None when the recordings do not say.
        recordings: recording ids in order of start time.
        start_ms, end_ms: absolute Unix milliseconds of the first and last frame.
        gap_before_s: pause since the previous session of the same device ended (None: the first).
    """

    name: str
    device: str | None
    recordings: tuple[str, ...]
    start_ms: int
    end_ms: int
    gap_before_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "recordings": list(self.recordings),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_s": round((self.end_ms - self.start_ms) / 1000.0, 3),
            "gap_before_s": self.gap_before_s,
        }


def _base_name(recording_ids: Sequence[str]) -> str:
    prefixes = {m.group(1) if (m := SESSION_PATTERN.match(r)) else None for r in recording_ids}
    if len(prefixes) == 1:
        (prefix,) = prefixes
        if prefix:
            return prefix
    return recording_ids[0]


def _clusters(recordings: Sequence[Recording], gap_ms: float) -> list[list[Recording]]:
    """Recordings of one device, sorted by start, cut wherever the pause exceeds ``gap_ms``."""
    clusters: list[list[Recording]] = []
    end = 0
    for rec in sorted(recordings, key=lambda r: (r.start_ms, r.recording_id)):
        if not clusters or rec.start_ms - end > gap_ms:
            clusters.append([rec])
            end = rec.end_ms
        else:
            clusters[-1].append(rec)
            end = max(end, rec.end_ms)
    return clusters


def find_sessions(recordings: Mapping[str, Recording], gap_s: float = SESSION_GAP_S) -> list[Session]:
    """The sessions of ``recordings`` (see the module docstring), in order of start time."""
    if not gap_s >= 0:
        raise ValueError(f"gap_s must be >= 0, got {gap_s}")
    by_device: dict[str | None, list[Recording]] = {}
    for rec in recordings.values():
        by_device.setdefault(device_of(rec), []).append(rec)
    found: list[tuple[int, str | None, list[Recording], float | None]] = []
    for device, recs in by_device.items():
        previous_end: int | None = None
        for cluster in _clusters(recs, gap_s * 1000.0):
            start = cluster[0].start_ms
            gap = None if previous_end is None else round((start - previous_end) / 1000.0, 3)
            found.append((start, device, cluster, gap))
            previous_end = max(r.end_ms for r in cluster)
    found.sort(key=lambda item: (item[0], item[1] is None, item[1] or ""))  # unknown device last
    sessions: list[Session] = []
    used: dict[str, int] = {}
    for start, device, cluster, gap in found:
        ids = tuple(r.recording_id for r in cluster)
        base = _base_name(ids)
        used[base] = used.get(base, 0) + 1
        name = base if used[base] == 1 else f"{base}-{used[base]}"
        sessions.append(Session(name, device, ids, start, max(r.end_ms for r in cluster), gap))
    return sessions


def session_groups(sessions: Sequence[Session]) -> dict[str, str]:
    """Recording id → session name."""
    return {rid: s.name for s in sessions for rid in s.recordings}
