"""Identity metrics of a tracker against annotated track ids (CLEAR MOT counts and IDF1).

Input: one recording as a sequence of :class:`EvalFrame` (ground-truth boxes with their
``object_id`` and predicted boxes with their track ids, pixel XYXY). A GT box and a predicted box
*can* match when their IoU is at least ``iou_threshold`` (0.5 by default).

Per-frame matching (CLEAR MOT)
    Frames are processed in time order. First, every GT identity keeps the track it was last
    matched to (in any earlier frame), if that track is present in this frame with enough IoU.
    The remaining GT and predicted boxes are then matched by optimal assignment maximising the
    summed IoU (:func:`thermact.tracking.assignment.gated_assignment`). A matched pair is a
    *match*; an unmatched GT box a *miss*; an unmatched prediction a *false positive*.

Id switch
    A GT identity matched to a different track id than at its previous match (the most recent
    earlier frame where it was matched, however long ago).

Fragmentation
    A GT identity's run of matched frames interrupted by a miss and resumed later: counted once
    per interruption (frames where the identity is not annotated do not count as misses).

IDF1 (Ristani et al., 2016)
    One global one-to-one assignment of GT identities to track ids, maximising the number of
    frames in which the two match (IoU >= threshold) — solved exactly with
    :func:`thermact.tracking.assignment.linear_assignment`. ``IDTP`` is that number, ``IDFN`` the
    GT boxes and ``IDFP`` the predicted boxes not covered; ``IDF1 = 2 IDTP / (2 IDTP + IDFP +
    IDFN)``.

:class:`IdMetrics` objects of several recordings add up (``a + b``); the rates are computed from
the summed counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from thermact.tracking.assignment import gated_assignment, linear_assignment
from thermact.tracking.tracker import pairwise_iou

__all__ = ["EvalFrame", "IdMetrics", "evaluate_ids"]


@dataclasses.dataclass(frozen=True)
class EvalFrame:
    """Ground truth and predictions of one frame.

    Attributes:
        timestamp_ms: frame time.
        gt_boxes: ``[G, 4]`` pixel XYXY annotated boxes.
        gt_ids: ``[G]`` annotated identities (``object_id``), unique within the frame.
        pred_boxes: ``[P, 4]`` pixel XYXY tracked boxes.
        pred_ids: ``[P]`` track ids, unique within the frame.
    """

    timestamp_ms: int
    gt_boxes: npt.NDArray[np.float64]
    gt_ids: npt.NDArray[np.int64]
    pred_boxes: npt.NDArray[np.float64]
    pred_ids: npt.NDArray[np.int64]

    @classmethod
    def build(
        cls,
        timestamp_ms: int,
        gt_boxes: npt.ArrayLike,
        gt_ids: npt.ArrayLike,
        pred_boxes: npt.ArrayLike,
        pred_ids: npt.ArrayLike,
    ) -> EvalFrame:
        """Convert and check the arrays (``ValueError`` on bad shapes or repeated ids)."""
        gb = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        gi = np.asarray(gt_ids, dtype=np.int64).reshape(-1)
        pb = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        pi = np.asarray(pred_ids, dtype=np.int64).reshape(-1)
        for boxes, ids, what in ((gb, gi, "gt"), (pb, pi, "pred")):
            if boxes.shape[0] != ids.shape[0]:
                raise ValueError(
                    f"frame {timestamp_ms}: {boxes.shape[0]} {what} boxes but {ids.shape[0]} {what} ids"
                )
            if np.unique(ids).size != ids.size:
                raise ValueError(f"frame {timestamp_ms}: repeated {what} id in {ids.tolist()}")
        return cls(int(timestamp_ms), gb, gi, pb, pi)


@dataclasses.dataclass(frozen=True)
class IdMetrics:
    """Tracking counts of one or more recordings (see the module docstring for the definitions)."""

    num_frames: int = 0
    num_gt: int = 0
    """GT boxes."""
    num_pred: int = 0
    """Predicted boxes."""
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    id_switches: int = 0
    fragmentations: int = 0
    iou_sum: float = 0.0
    """Summed IoU of the matches (for MOTP)."""
    idtp: int = 0
    idfp: int = 0
    idfn: int = 0
    num_gt_ids: int = 0
    num_pred_ids: int = 0

    def __add__(self, other: IdMetrics) -> IdMetrics:
        return IdMetrics(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )

    @property
    def mota(self) -> float:
        """``1 - (misses + false positives + id switches) / GT boxes`` (NaN without GT)."""
        if self.num_gt == 0:
            return float("nan")
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / self.num_gt

    @property
    def motp_iou(self) -> float:
        """Mean IoU of the matches (NaN without matches)."""
        return self.iou_sum / self.matches if self.matches else float("nan")

    @property
    def idf1(self) -> float:
        denom = 2 * self.idtp + self.idfp + self.idfn
        return 2 * self.idtp / denom if denom else float("nan")

    @property
    def idp(self) -> float:
        denom = self.idtp + self.idfp
        return self.idtp / denom if denom else float("nan")

    @property
    def idr(self) -> float:
        denom = self.idtp + self.idfn
        return self.idtp / denom if denom else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(mota=self.mota, motp_iou=self.motp_iou, idf1=self.idf1, idp=self.idp, idr=self.idr)
        return out


def _frame_correspondences(
    frame: EvalFrame,
    iou: npt.NDArray[np.float64],
    ok: npt.NDArray[np.bool_],
    last_match: dict[int, int],
    iou_threshold: float,
) -> list[tuple[int, int]]:
    """The (gt index, prediction index) matches of one frame: the last correspondences that are
    still valid first, then an optimal assignment of the rest (maximising the summed IoU)."""
    g, p = frame.gt_ids.shape[0], frame.pred_ids.shape[0]
    pairs: list[tuple[int, int]] = []
    pred_pos = {int(pid): j for j, pid in enumerate(frame.pred_ids.tolist())}
    free_g = np.ones(g, dtype=bool)
    free_p = np.ones(p, dtype=bool)
    for gi, gid in enumerate(frame.gt_ids.tolist()):
        prev = last_match.get(gid)
        pj = pred_pos.get(prev) if prev is not None else None
        if pj is not None and free_p[pj] and ok[gi, pj]:
            pairs.append((gi, pj))
            free_g[gi] = False
            free_p[pj] = False
    rest_g, rest_p = np.nonzero(free_g)[0], np.nonzero(free_p)[0]
    if rest_g.size and rest_p.size:
        sub = iou[np.ix_(rest_g, rest_p)]
        cost = np.where(sub >= iou_threshold, 1.0 - sub, np.inf)
        res = gated_assignment(cost, 1.0)
        pairs.extend((int(rest_g[i]), int(rest_p[j])) for i, j in res.matches)
    return pairs


def _idf1_true_positives(
    gt_count: dict[int, int], pred_count: dict[int, int], pair_hits: dict[tuple[int, int], int]
) -> int:
    """IDTP of IDF1: the global identity assignment maximising co-matched frames."""
    gt_list, pred_list = sorted(gt_count), sorted(pred_count)
    if not gt_list or not pred_list:
        return 0
    weight = np.zeros((len(gt_list), len(pred_list)))
    gpos = {gid: i for i, gid in enumerate(gt_list)}
    ppos = {pid: j for j, pid in enumerate(pred_list)}
    for (gid, pid), n in pair_hits.items():
        weight[gpos[gid], ppos[pid]] = n
    rows, cols = linear_assignment(-weight)
    return int(weight[rows, cols].sum())


def evaluate_ids(frames: Iterable[EvalFrame], iou_threshold: float = 0.5) -> IdMetrics:
    """Id switches, fragmentations, MOTA counts and IDF1 of one recording.

    Args:
        frames: the recording's frames (any order; sorted by timestamp, stable). GT ids and track
            ids are identities within this recording.
        iou_threshold: minimum IoU for a GT box and a prediction to match.

    Returns:
        :class:`IdMetrics` with ``num_gt_ids`` / ``num_pred_ids`` the distinct identities seen.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"evaluate_ids: iou_threshold must be in (0, 1], got {iou_threshold!r}")
    ordered = sorted(frames, key=lambda f: f.timestamp_ms)
    last_match: dict[int, int] = {}  # gt id -> track id at its most recent match
    was_matched: dict[int, bool] = {}  # gt id -> matched at its most recent annotated frame
    interrupted: dict[int, bool] = {}  # gt id -> missed since its last match
    pair_hits: dict[tuple[int, int], int] = {}
    gt_count: dict[int, int] = {}
    pred_count: dict[int, int] = {}
    counts = dict(matches=0, misses=0, false_positives=0, id_switches=0, fragmentations=0)
    iou_sum = 0.0
    num_gt = num_pred = 0
    for frame in ordered:
        g, p = frame.gt_ids.shape[0], frame.pred_ids.shape[0]
        num_gt += g
        num_pred += p
        for gid in frame.gt_ids.tolist():
            gt_count[gid] = gt_count.get(gid, 0) + 1
        for pid in frame.pred_ids.tolist():
            pred_count[pid] = pred_count.get(pid, 0) + 1
        iou = pairwise_iou(frame.gt_boxes, frame.pred_boxes) if g and p else np.zeros((g, p))
        ok = iou >= iou_threshold
        for gi, pj in zip(*np.nonzero(ok), strict=True):
            key = (int(frame.gt_ids[gi]), int(frame.pred_ids[pj]))
            pair_hits[key] = pair_hits.get(key, 0) + 1
        pairs = _frame_correspondences(frame, iou, ok, last_match, iou_threshold)
        matched_g = {gi: pj for gi, pj in pairs}
        for gi, gid in enumerate(frame.gt_ids.tolist()):
            if gi in matched_g:
                pid = int(frame.pred_ids[matched_g[gi]])
                counts["matches"] += 1
                iou_sum += float(iou[gi, matched_g[gi]])
                if gid in last_match and last_match[gid] != pid:
                    counts["id_switches"] += 1
                if interrupted.get(gid, False):
                    counts["fragmentations"] += 1
                last_match[gid] = pid
                was_matched[gid] = True
                interrupted[gid] = False
            else:
                counts["misses"] += 1
                if was_matched.get(gid, False):
                    interrupted[gid] = True
                was_matched[gid] = False
        counts["false_positives"] += p - len(pairs)

    gt_list, pred_list = sorted(gt_count), sorted(pred_count)
    idtp = _idf1_true_positives(gt_count, pred_count, pair_hits)
    return IdMetrics(
        num_frames=len(ordered),
        num_gt=num_gt,
        num_pred=num_pred,
        iou_sum=iou_sum,
        idtp=idtp,
        idfp=num_pred - idtp,
        idfn=num_gt - idtp,
        num_gt_ids=len(gt_list),
        num_pred_ids=len(pred_list),
        **counts,
    )
