"""Growing detected person boxes to the body heat around them (person-detector post-processing).

In a room it never saw, the person detector finds lying people but draws their boxes short: on
leave-one-session-out its median long side of a lying person is 0.80-0.89 of the annotated one,
while standing boxes are right (README, Results). The heat is still there: a lying body is a warm
blob a few degrees above the floor. :func:`grow_to_heat` extends each box to the connected warm
region that its own warm pixels belong to, looking no further than a margin around the box:

1. background of a box: the warmer of (a) the median of its frame outside the boxes to grow and
   the *context* boxes (confident detections, which keep other people's heat out of it) and (b) the
   median of its surroundings, the ring between the box and the box grown by ``margin`` times its
   width and height on every side (:func:`~thermact.models.box_cues.frame_backgrounds` and
   :func:`~thermact.models.box_cues.midpoint_median`).
   (b) keeps a warm corner of the room (a desk, a sunlit wall 2-3 °C above the floor) beside a
   person out of the growth: with (a) alone at 2.5 °C, half of the standing people of a V1
   session got boxes too wide to match;
2. warm pixels: at least ``hot_delta`` above that background;
3. seeds: the warm pixels of the box (pixel-centre rule of :func:`~thermact.models.box_cues.
   box_pixel_masks`); a box without any is left as it is;
4. flood fill (4-connected) from the seeds through the warm pixels of the grown box (the frame
   clips it);
5. the box becomes the union of itself and the bounding box of the filled pixels (pixel ``i``
   covering ``[i, i + 1)``): boxes only grow, and never past the margin.

:func:`grow_person_boxes` applies it to the person rows of frames'
:class:`~thermact.models.postprocess.Detections` (the runner's ``heat_growth`` setting, see
:class:`HeatGrowth`). Temperatures may be in °C or in normalised units (``hot_delta`` then in the
same units): only differences from the background count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from thermact.models.box_cues import box_pixel_masks, frame_backgrounds, midpoint_median
from thermact.models.postprocess import PERSON, Detections

__all__ = ["HeatGrowth", "grow_person_boxes", "grow_to_heat"]


@dataclasses.dataclass(frozen=True)
class HeatGrowth:
    """Settings of :func:`grow_person_boxes` (the detector config's ``eval.heat_growth_*`` keys).

    Attributes:
        hot_delta_c: a pixel this much above the background (°C) is body heat.
        margin: farthest growth, as a fraction of the box's width / height on each side.
        context_score: detections at least this confident are kept out of the background.
    """

    hot_delta_c: float = 3.0
    margin: float = 0.3
    context_score: float = 0.3

    def __post_init__(self) -> None:
        if not self.hot_delta_c > 0 or not self.margin >= 0 or not 0 <= self.context_score <= 1:
            raise ValueError(
                f"HeatGrowth needs hot_delta_c > 0, margin >= 0 and 0 <= context_score <= 1, got {self}"
            )


def _expand(boxes: Tensor, margin: float, frame_size: tuple[int, int]) -> Tensor:
    """``[N, 4]`` pixel XYXY boxes grown by ``margin`` x their size on each side, clipped to the frame."""
    height, width = frame_size
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    grown = boxes + margin * size * torch.tensor(
        [-1.0, -1.0, 1.0, 1.0], dtype=boxes.dtype, device=boxes.device
    )
    limits = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return torch.minimum(grown.clamp_min(0), limits)


def _fill_runs(reached: Tensor, allowed: Tensor, dim: int) -> Tensor:
    """``reached`` spread along ``dim`` over every run of consecutive ``allowed`` pixels it touches."""
    run = torch.cumsum(~allowed, dim=dim)  # the same number along a run of allowed pixels
    shape = list(allowed.shape)
    shape[dim] += 1
    touched = torch.zeros(shape, dtype=torch.uint8, device=allowed.device)
    touched = touched.scatter_reduce(dim, run, reached.to(torch.uint8), "amax")
    return allowed & touched.gather(dim, run).bool()


def _flood_fill(seeds: Tensor, allowed: Tensor) -> Tensor:
    """Bool ``[N, H, W]``: the pixels of ``allowed`` 4-connected to ``seeds`` through ``allowed``
    (whole runs along rows, then along columns, until nothing changes: a few rounds)."""
    reached = seeds & allowed
    while True:
        grown = _fill_runs(_fill_runs(reached, allowed, 2), allowed, 1)
        if torch.equal(grown, reached):
            return reached
        reached = grown


def grow_to_heat(
    frames: Tensor,
    boxes: Tensor,
    index: Tensor,
    context: Tensor,
    context_index: Tensor,
    hot_delta: float,
    margin: float,
) -> Tensor:
    """``boxes`` grown to the warm blobs they cover (steps of the module docstring).

    Args:
        frames: ``[B, H, W]`` temperatures (°C or normalised units).
        boxes: ``[N, 4]`` pixel XYXY boxes to grow, box ``n`` on frame ``index[n]`` (``index [N]``).
        context: ``[M, 4]`` pixel XYXY boxes kept out of the background of frame ``context_index [M]``.
        hot_delta: body-heat threshold above the background, in the units of ``frames``.
        margin: farthest growth as a fraction of each box's width / height on every side.

    Returns:
        ``[N, 4]`` pixel XYXY boxes (dtype of ``boxes``), each containing its input box.
    """
    if frames.dim() != 3 or boxes.dim() != 2 or boxes.shape[1] != 4 or context.dim() != 2:
        raise ValueError(
            f"expected frames [B, H, W], boxes [N, 4], context [M, 4], got {list(frames.shape)}, "
            f"{list(boxes.shape)}, {list(context.shape)}"
        )
    if boxes.shape[0] == 0:
        return boxes.clone()
    size = (int(frames.shape[1]), int(frames.shape[2]))
    b = boxes.float()
    key = frames.to(b)
    masks = box_pixel_masks(torch.cat([b, context.float()]), size)
    background = frame_backgrounds(key, masks, torch.cat([index, context_index]))[index]  # [N]
    # the rest in a window around each box's reach, the same size for all
    reach = _expand(b, margin, size)
    origin = (reach[:, :2].floor() - 1).clamp_min(0)  # [N, 2] (x, y)
    extent = (reach[:, 2:].ceil() - origin + 1).amax(dim=0)
    win_w, win_h = min(int(extent[0]), size[1]), min(int(extent[1]), size[0])
    rows = (origin[:, 1:].long() + torch.arange(win_h, device=b.device)).clamp_max(size[0] - 1)  # [N, h]
    cols = (origin[:, :1].long() + torch.arange(win_w, device=b.device)).clamp_max(size[1] - 1)  # [N, w]
    window = key[index[:, None, None], rows[:, :, None], cols[:, None, :]]  # [N, h, w]
    shift = origin.repeat(1, 2)
    own = box_pixel_masks(b - shift, (win_h, win_w))
    region = box_pixel_masks(reach - shift, (win_h, win_w))
    ring = (region & ~own).flatten(1)  # each box's surroundings (all its window when empty)
    surroundings = midpoint_median(window.flatten(1), ring | ~ring.any(dim=1, keepdim=True))
    warm = window >= (torch.maximum(background, surroundings) + hot_delta)[:, None, None]
    reached = _flood_fill(own & warm, warm & region)
    in_row, in_col = reached.any(dim=2), reached.any(dim=1)  # [N, h], [N, w]
    ys = origin[:, 1:] + torch.arange(win_h, dtype=b.dtype, device=b.device)
    xs = origin[:, :1] + torch.arange(win_w, dtype=b.dtype, device=b.device)
    inf = torch.tensor(float("inf"), device=b.device)
    blob = torch.stack(
        [
            torch.where(in_col, xs, inf).amin(dim=1),
            torch.where(in_row, ys, inf).amin(dim=1),
            torch.where(in_col, xs + 1, -inf).amax(dim=1),
            torch.where(in_row, ys + 1, -inf).amax(dim=1),
        ],
        dim=1,
    )
    union = torch.cat([torch.minimum(b[:, :2], blob[:, :2]), torch.maximum(b[:, 2:], blob[:, 2:])], dim=1)
    return torch.where(in_row.any(dim=1)[:, None], union, b).to(boxes.dtype)


def grow_person_boxes(
    frames: Tensor, dets: Sequence[Detections], growth: HeatGrowth, unit_c: float = 1.0
) -> list[Detections]:
    """The detections ``dets[i]`` of each frame ``frames[i]`` (``[B, H, W]``) with their person boxes
    grown by :func:`grow_to_heat`, all frames at once.

    Args:
        frames: ``[B, H, W]`` the frames the detections are of (on the detections' device).
        dets: ``B`` frames' detections (persons and non-persons; every confident one is context).
        growth: the settings.
        unit_c: °C per unit of ``frames`` (normalised frames: the normalisation's ``std_c``).
    """
    if len(dets) != frames.shape[0]:
        raise ValueError(f"{len(dets)} detections for {frames.shape[0]} frames")
    if not dets:
        return []
    boxes = torch.cat([d.boxes for d in dets])
    scores = torch.cat([d.scores for d in dets])
    persons = torch.cat([d.labels for d in dets]) == PERSON
    frame_of = torch.cat([torch.full((len(d),), i, dtype=torch.int64) for i, d in enumerate(dets)])
    frame_of = frame_of.to(boxes.device)
    if not bool(persons.any()):
        return list(dets)
    confident = scores >= growth.context_score
    grown = boxes.clone()
    grown[persons] = grow_to_heat(
        frames,
        boxes[persons],
        frame_of[persons],
        boxes[confident],
        frame_of[confident],
        growth.hot_delta_c / unit_c,
        growth.margin,
    )
    out, start = [], 0
    for d in dets:
        out.append(Detections(grown[start : start + len(d)], d.scores, d.labels))
        start += len(d)
    return out
