"""A feature bank of pooled person features at keyframes, the memory of the interaction head.

AlphAction's IA structure lets each person attend to the features of the persons seen at
neighbouring keyframes of the same video. Those features come from a bank filled
*asynchronously*: during training, each step reads the features written by earlier steps (of this
or the previous epoch) and then writes its own, detached; at evaluation, a first pass fills a bank
from the evaluated data only and a second pass classifies; on a stream, features of past
keyframes are written as they are computed.

:class:`FeatureBank` is keyed by ``(recording id, keyframe time in ms)`` and holds, per keyframe,
detached float32 features ``[N, D]`` of its ``N`` persons and their track ids ``[N]``, on the CPU.
:meth:`FeatureBank.gather` returns, for every person of a batch, the features of the keyframes of
the same recording within ``window_s`` of its own keyframe (the keyframe itself excluded), nearest
in time first, at most ``max_length``, optionally only those of the same track, as a
:class:`MemoryContext` ``[K, M, D]`` with a mask and the time offsets. The bank holds at most
``capacity`` keyframes (the oldest written are dropped first).

:meth:`FeatureBank.state_dict` holds only tensors, ints, floats, bools, strings and lists of them,
so a checkpoint that contains it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from thermact.errors import CheckpointError

__all__ = ["FeatureBank", "MemoryContext"]


@dataclasses.dataclass(frozen=True)
class MemoryContext:
    """The memory of ``K`` persons, padded to ``M`` entries.

    Attributes:
        features: float ``[K, M, D]`` features of the memory entries (zeros where padded).
        mask: bool ``[K, M]``, True for real entries.
        offsets_ms: int64 ``[K, M]`` time of each entry minus the person's keyframe time (ms;
            negative for the past); 0 where padded.
    """

    features: Tensor
    mask: Tensor
    offsets_ms: Tensor

    def __post_init__(self) -> None:
        if self.features.dim() != 3:
            raise ValueError(f"memory features must be [K, M, D], got {list(self.features.shape)}")
        km = tuple(self.features.shape[:2])
        if tuple(self.mask.shape) != km or tuple(self.offsets_ms.shape) != km:
            raise ValueError(
                f"memory mask {list(self.mask.shape)} and offsets {list(self.offsets_ms.shape)} must be "
                f"[K, M] = {list(km)}"
            )
        if self.mask.dtype != torch.bool:
            raise ValueError(f"memory mask must be bool, got {self.mask.dtype}")

    @staticmethod
    def empty(num_persons: int, dim: int, device: torch.device | str = "cpu") -> MemoryContext:
        """No memory for any of ``num_persons`` persons (``M = 0``)."""
        return MemoryContext(
            torch.zeros(num_persons, 0, dim, device=device),
            torch.zeros(num_persons, 0, dtype=torch.bool, device=device),
            torch.zeros(num_persons, 0, dtype=torch.int64, device=device),
        )

    def to(self, device: torch.device | str) -> MemoryContext:
        return MemoryContext(self.features.to(device), self.mask.to(device), self.offsets_ms.to(device))


@dataclasses.dataclass(frozen=True)
class _Entry:
    features: Tensor  # [N, D] float32, CPU
    track_ids: Tensor  # [N] int64, CPU


class FeatureBank:
    """Detached person features by ``(recording id, keyframe ms)`` (see the module docstring).

    Args:
        dim: feature size ``D``.
        window_s: memory window: keyframes at most this many seconds before or after count.
        max_length: at most this many memory entries per person (the nearest in time).
        same_track: only entries of the person's own track id (default: every person, as AlphAction).
        capacity: at most this many keyframes are kept; writing more drops the oldest written.
    """

    def __init__(
        self,
        dim: int,
        window_s: float,
        max_length: int = 32,
        same_track: bool = False,
        capacity: int = 20_000,
    ) -> None:
        if dim < 1 or max_length < 1 or capacity < 1:
            raise ValueError(
                f"dim, max_length and capacity must be >= 1, got {dim}, {max_length}, {capacity}"
            )
        if not window_s > 0 or not math.isfinite(window_s):
            raise ValueError(f"window_s must be a positive number, got {window_s}")
        self.dim = int(dim)
        self.window_s = float(window_s)
        self.max_length = int(max_length)
        self.same_track = bool(same_track)
        self.capacity = int(capacity)
        self._entries: dict[tuple[str, int], _Entry] = {}  # insertion order = write order
        self._times: dict[str, list[int]] = {}  # sorted keyframe times per recording

    @property
    def window_ms(self) -> int:
        return round(self.window_s * 1000.0)

    def __len__(self) -> int:
        """Number of keyframes held."""
        return len(self._entries)

    def __contains__(self, key: tuple[str, int]) -> bool:
        return (str(key[0]), int(key[1])) in self._entries

    def clear(self) -> None:
        self._entries.clear()
        self._times.clear()

    # ------------------------------------------------------------------------------------ write

    def put(self, recording_id: str, keyframe_ms: int, features: Tensor, track_ids: Tensor) -> None:
        """Store (replace) the features ``[N, D]`` and track ids ``[N]`` of one keyframe."""
        if features.dim() != 2 or int(features.shape[1]) != self.dim:
            raise ValueError(f"features must be [N, {self.dim}], got {list(features.shape)}")
        if track_ids.shape != (features.shape[0],):
            raise ValueError(f"track_ids must be [{features.shape[0]}], got {list(track_ids.shape)}")
        key = (str(recording_id), int(keyframe_ms))
        if key in self._entries:
            del self._entries[key]  # re-inserted at the end: the newest write
        else:
            bisect.insort(self._times.setdefault(key[0], []), key[1])
        self._entries[key] = _Entry(
            features.detach().to("cpu", torch.float32).clone(),
            track_ids.detach().to("cpu", torch.int64).clone(),
        )
        while len(self._entries) > self.capacity:
            self._remove(next(iter(self._entries)))

    def write(
        self,
        recording_ids: Sequence[str],
        keyframe_ms: Tensor | Sequence[int],
        features: Tensor,
        batch_index: Tensor,
        track_ids: Tensor,
    ) -> None:
        """Store the features ``[K, D]`` of a batch of ``B`` keyframes.

        ``batch_index`` ``[K]`` names the keyframe (``0..B-1``) of each person, ``track_ids``
        ``[K]`` its track. Every keyframe of the batch is written, those without persons as
        ``N = 0`` entries.
        """
        index = batch_index.detach().to("cpu", torch.int64)
        tracks = track_ids.detach().to("cpu", torch.int64)
        feats = features.detach()
        times = [int(t) for t in (keyframe_ms.tolist() if isinstance(keyframe_ms, Tensor) else keyframe_ms)]
        if len(times) != len(recording_ids):
            raise ValueError(f"{len(recording_ids)} recording ids but {len(times)} keyframe times")
        for b, (rec, t) in enumerate(zip(recording_ids, times, strict=True)):
            rows = torch.nonzero(index == b).flatten()
            self.put(rec, t, feats[rows.to(feats.device)], tracks[rows])

    def drop_older_than(self, recording_id: str, keyframe_ms: int) -> int:
        """Forget the keyframes of ``recording_id`` before ``keyframe_ms``; returns how many."""
        times = self._times.get(str(recording_id), [])
        old = times[: bisect.bisect_left(times, int(keyframe_ms))]
        for t in old:
            self._remove((str(recording_id), t))
        return len(old)

    def _remove(self, key: tuple[str, int]) -> None:
        del self._entries[key]
        times = self._times[key[0]]
        del times[bisect.bisect_left(times, key[1])]
        if not times:
            del self._times[key[0]]

    # ------------------------------------------------------------------------------------ read

    def neighbours(self, recording_id: str, keyframe_ms: int) -> list[int]:
        """Times of the stored keyframes within the window of ``keyframe_ms`` (itself excluded),
        nearest first (ties: earlier first)."""
        times = self._times.get(str(recording_id), [])
        t = int(keyframe_ms)
        lo = bisect.bisect_left(times, t - self.window_ms)
        hi = bisect.bisect_right(times, t + self.window_ms)
        return sorted((u for u in times[lo:hi] if u != t), key=lambda u: (abs(u - t), u))

    def gather(
        self,
        recording_ids: Sequence[str],
        keyframe_ms: Tensor | Sequence[int],
        batch_index: Tensor,
        track_ids: Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> MemoryContext:
        """The memory of each of the ``K`` persons of a batch of ``B`` keyframes.

        Args:
            recording_ids: ``B`` recording ids.
            keyframe_ms: ``[B]`` keyframe times (ms).
            batch_index: ``[K]`` keyframe of each person (``0..B-1``).
            track_ids: ``[K]`` track of each person (needed with ``same_track``).
            device: where the result goes (default: ``batch_index``'s device).

        Returns:
            :class:`MemoryContext` ``[K, M, D]``: per person the persons of the neighbouring
            keyframes (nearest keyframe first, within a keyframe in stored order), at most
            ``max_length``; ``M`` is the largest count (0 when the bank has nothing to offer).
        """
        out_device = batch_index.device if device is None else torch.device(device)
        index = batch_index.detach().to("cpu", torch.int64).tolist()
        times = [int(t) for t in (keyframe_ms.tolist() if isinstance(keyframe_ms, Tensor) else keyframe_ms)]
        if self.same_track and track_ids is None:
            raise ValueError("a same-track memory needs the track ids of the persons")
        tracks = None if track_ids is None else track_ids.detach().to("cpu", torch.int64).tolist()
        per_clip: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        chosen: list[tuple[Tensor, Tensor]] = []  # per person: (features [m, D], offsets [m])
        for k, b in enumerate(index):
            if b not in per_clip:
                per_clip[b] = self._candidates(recording_ids[b], times[b])
            feats, offsets, cand_tracks = per_clip[b]
            if self.same_track:
                assert tracks is not None
                keep = cand_tracks == tracks[k]
                feats, offsets = feats[keep], offsets[keep]
            chosen.append((feats[: self.max_length], offsets[: self.max_length]))
        M = max((int(f.shape[0]) for f, _ in chosen), default=0)
        features = torch.zeros(len(chosen), M, self.dim)
        offsets_ms = torch.zeros(len(chosen), M, dtype=torch.int64)
        mask = torch.zeros(len(chosen), M, dtype=torch.bool)
        for k, (f, o) in enumerate(chosen):  # plain tensors built here: no autograd involved
            m = int(f.shape[0])
            features[k, :m] = f
            offsets_ms[k, :m] = o
            mask[k, :m] = True
        return MemoryContext(features, mask, offsets_ms).to(out_device)

    def _candidates(self, recording_id: str, keyframe_ms: int) -> tuple[Tensor, Tensor, Tensor]:
        """Features ``[n, D]``, offsets ``[n]`` and tracks ``[n]`` of the window, nearest first."""
        feats: list[Tensor] = []
        offsets: list[Tensor] = []
        tracks: list[Tensor] = []
        for u in self.neighbours(recording_id, keyframe_ms):
            entry = self._entries[(str(recording_id), u)]
            n = int(entry.features.shape[0])
            feats.append(entry.features)
            offsets.append(torch.full((n,), u - int(keyframe_ms), dtype=torch.int64))
            tracks.append(entry.track_ids)
        if not feats:
            empty = torch.zeros(0, dtype=torch.int64)
            return torch.zeros(0, self.dim), empty, empty
        return torch.cat(feats), torch.cat(offsets), torch.cat(tracks)

    # ------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The bank as tensors and plain types (loadable with ``torch.load(weights_only=True)``).

        Keys: ``dim``, ``window_s``, ``max_length``, ``same_track``, ``capacity`` (settings);
        ``recordings`` (list of str); per keyframe, in write order, ``recording_index`` and
        ``keyframe_ms`` (int64 ``[E]``) and ``offsets`` (int64 ``[E + 1]``, rows of each keyframe
        in ``features`` float32 ``[N, D]`` and ``track_ids`` int64 ``[N]``).
        """
        recordings = sorted(self._times)
        rec_index = {r: i for i, r in enumerate(recordings)}
        keys = list(self._entries)
        counts = [int(self._entries[k].features.shape[0]) for k in keys]
        offsets = torch.zeros(len(keys) + 1, dtype=torch.int64)
        if keys:
            offsets[1:] = torch.cumsum(torch.tensor(counts, dtype=torch.int64), 0)
        return {
            "dim": self.dim,
            "window_s": self.window_s,
            "max_length": self.max_length,
            "same_track": self.same_track,
            "capacity": self.capacity,
            "recordings": recordings,
            "recording_index": torch.tensor([rec_index[r] for r, _ in keys], dtype=torch.int64),
            "keyframe_ms": torch.tensor([t for _, t in keys], dtype=torch.int64),
            "offsets": offsets,
            "features": (
                torch.cat([self._entries[k].features for k in keys]) if keys else torch.zeros(0, self.dim)
            ),
            "track_ids": (
                torch.cat([self._entries[k].track_ids for k in keys])
                if keys
                else torch.zeros(0, dtype=torch.int64)
            ),
        }

    def load_state_dict(self, state: Mapping[str, Any], where: str = "memory bank") -> None:
        """Replace the stored features by those of ``state`` (settings must match ``dim``).

        Raises :class:`CheckpointError` naming ``where`` when ``state`` is malformed.
        """
        try:
            dim = int(state["dim"])
            recordings = [str(r) for r in state["recordings"]]
            rec_index = _int_tensor(state["recording_index"], "recording_index")
            times = _int_tensor(state["keyframe_ms"], "keyframe_ms")
            offsets = _int_tensor(state["offsets"], "offsets")
            features = state["features"]
            track_ids = _int_tensor(state["track_ids"], "track_ids")
        except KeyError as err:
            raise CheckpointError(f"{where}: lacks the entry {err}") from err
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: {err}") from err
        E = int(times.shape[0])
        if dim != self.dim:
            raise CheckpointError(f"{where}: features of size {dim}, but the model's are {self.dim}")
        if not isinstance(features, Tensor) or features.dim() != 2 or int(features.shape[1]) != dim:
            raise CheckpointError(f"{where}: 'features' must be a [N, {dim}] tensor")
        N = int(features.shape[0])
        bad = (
            rec_index.shape != (E,)
            or offsets.shape != (E + 1,)
            or track_ids.shape != (N,)
            or (E > 0 and (int(rec_index.min()) < 0 or int(rec_index.max()) >= len(recordings)))
            or int(offsets[0]) != 0
            or int(offsets[-1]) != N
            or bool((offsets[1:] < offsets[:-1]).any())
        )
        if bad:
            raise CheckpointError(f"{where}: inconsistent index tensors (keyframes {E}, feature rows {N})")
        self.clear()
        for e in range(E):
            lo, hi = int(offsets[e]), int(offsets[e + 1])
            self.put(recordings[int(rec_index[e])], int(times[e]), features[lo:hi], track_ids[lo:hi])

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], where: str = "memory bank") -> FeatureBank:
        """A bank with the settings and contents of ``state``."""
        try:
            bank = cls(
                dim=int(state["dim"]),
                window_s=float(state["window_s"]),
                max_length=int(state["max_length"]),
                same_track=bool(state["same_track"]),
                capacity=int(state["capacity"]),
            )
        except KeyError as err:
            raise CheckpointError(f"{where}: lacks the entry {err}") from err
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: {err}") from err
        bank.load_state_dict(state, where)
        return bank


def _int_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor) or value.dtype != torch.int64:
        raise TypeError(f"{name!r} must be an int64 tensor")
    return value
