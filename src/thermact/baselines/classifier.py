"""The simple baselines of every results table: the class prior, and gradient boosting on box cues.

Both see exactly what a network sees (the clips of the same split fold, ground-truth person boxes)
and are scored by the same code (:func:`thermact.evaluation.evaluate.score_predictions`), so a
results table shows what a network adds over the box and its heat:

``prior``
    every box gets the training class frequencies as scores: its frame-mAP is what ranking by
    chance gives, its arg-max is the majority class.
``box_gbm``
    :class:`sklearn.ensemble.HistGradientBoostingClassifier` with balanced class weights on the
    box cues of each box in °C (scikit-learn is the optional extra ``thermact[baselines]``); which
    cues is a :data:`CueSet` (:func:`cue_matrix`): ``all`` the
    :data:`~thermact.models.box_cues.CUE_NAMES` (the box centre included), ``network`` the
    :data:`~thermact.models.box_cues.NETWORK_CUES` (no position), ``radial`` those and the
    :data:`~thermact.models.box_cues.RADIAL_CUE_NAMES` (the place relative to the optical axis).

:func:`feature_table` computes the cues of a set of keyframes once; :func:`fit_predict` fits a
baseline on one table and scores the boxes of another. ``thermact baseline``
(:mod:`thermact.commands.baseline`) runs a baseline on every fold of a protocol.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch

from thermact.data.annotations import Keyframe, boxes_array
from thermact.data.clips import ClipConfig, clip_indices
from thermact.data.recording import Recording
from thermact.errors import ConfigError
from thermact.evaluation.evaluate import Predictions
from thermact.models.box_cues import CUE_NAMES, HOT_DELTA_C, NETWORK_CUES, box_cues, radial_cues

__all__ = [
    "BASELINE_KINDS",
    "CUE_SETS",
    "BaselineKind",
    "CueSet",
    "FeatureTable",
    "cue_matrix",
    "feature_table",
    "fit_predict",
    "gbm_scores",
    "prior_scores",
    "sklearn_ensemble",
]

BaselineKind = Literal["prior", "box_gbm"]
BASELINE_KINDS: tuple[BaselineKind, ...] = get_args(BaselineKind)
CueSet = Literal["all", "network", "radial"]
CUE_SETS: tuple[CueSet, ...] = get_args(CueSet)

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class FeatureTable:
    """Box cues of a set of keyframes, one row per labelled person box (rows aligned across fields)."""

    features: FloatArray
    """``[K, len(CUE_NAMES)]`` (temperatures in °C)."""
    labels: npt.NDArray[np.int64]
    """``[K]`` ground-truth class of each box."""
    keyframe_ids: list[str]
    recording_ids: list[str]
    keyframe_ms: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float32]
    """``[K, 4]`` pixel XYXY."""
    track_ids: npt.NDArray[np.int64]
    frame_size: tuple[int, int] = (40, 60)
    """``(H, W)`` of the frames the boxes lie in."""

    def __len__(self) -> int:
        return len(self.keyframe_ids)

    def of_keyframes(self, keyframe_ids: Sequence[str]) -> FeatureTable:
        """The rows of ``keyframe_ids``, keyframe after keyframe in that order (what
        :func:`feature_table` of those keyframes gives, without computing the cues again)."""
        rows_of: dict[str, list[int]] = {}
        for row, kf_id in enumerate(self.keyframe_ids):
            rows_of.setdefault(kf_id, []).append(row)
        rows = np.asarray([r for kf_id in keyframe_ids for r in rows_of.get(kf_id, [])], dtype=np.int64)
        return FeatureTable(
            features=self.features[rows],
            labels=self.labels[rows],
            keyframe_ids=[self.keyframe_ids[r] for r in rows],
            recording_ids=[self.recording_ids[r] for r in rows],
            keyframe_ms=self.keyframe_ms[rows],
            boxes=self.boxes[rows],
            track_ids=self.track_ids[rows],
            frame_size=self.frame_size,
        )

    def predictions(self, scores: npt.NDArray[np.floating[Any]]) -> Predictions:
        """The boxes of this table with class ``scores`` ``[K, C]``, ready for scoring."""
        if scores.shape[0] != len(self):
            raise ValueError(f"{scores.shape[0]} score rows for {len(self)} boxes")
        return Predictions(
            keyframe_ids=list(self.keyframe_ids),
            recording_ids=list(self.recording_ids),
            keyframe_ms=self.keyframe_ms.copy(),
            boxes=self.boxes.copy(),
            labels=self.labels.copy(),
            track_ids=self.track_ids.copy(),
            scores=np.asarray(scores, dtype=np.float32),
        )


def feature_table(
    recordings: Mapping[str, Recording], keyframes: Sequence[Keyframe], clip: ClipConfig
) -> FeatureTable:
    """:func:`~thermact.models.box_cues.box_cues` (°C, float64) of every labelled person box of ``keyframes``.

    Each keyframe's clip is the one a model fed ``clip`` sees (:func:`clip_indices`); the keyframe
    itself is the clip frame nearest to its timestamp.
    """
    rows: list[FloatArray] = []
    labels: list[int] = []
    kf_ids: list[str] = []
    rec_ids: list[str] = []
    kf_ms: list[int] = []
    boxes: list[npt.NDArray[np.float32]] = []
    tracks: list[int] = []
    frame_size = (40, 60)
    for kf in keyframes:
        persons = [b for b in kf.persons if b.label is not None]
        if not persons:
            continue
        rec = recordings[kf.recording_id]
        idx = clip_indices(rec.timestamps, kf.timestamp_ms, clip)
        key_index = int(np.argmin(np.abs(rec.timestamps[idx] - kf.timestamp_ms)))
        xyxy = boxes_array(persons)
        frames = torch.from_numpy(np.ascontiguousarray(rec.frames[idx], dtype=np.float64))
        frame_size = (int(frames.shape[-2]), int(frames.shape[-1]))
        rois = torch.cat(
            [torch.zeros(len(persons), 1, dtype=torch.float64), torch.from_numpy(xyxy).double()], 1
        )
        rows.append(box_cues(frames[None], rois, key_index, HOT_DELTA_C).numpy())
        boxes.append(xyxy)
        for b in persons:
            labels.append(int(b.label))  # type: ignore[arg-type]  # filtered above
            tracks.append(b.track_id)
            kf_ids.append(kf.keyframe_id)
            rec_ids.append(kf.recording_id)
            kf_ms.append(kf.timestamp_ms)
    return FeatureTable(
        features=np.concatenate(rows) if rows else np.zeros((0, len(CUE_NAMES))),
        labels=np.asarray(labels, dtype=np.int64),
        keyframe_ids=kf_ids,
        recording_ids=rec_ids,
        keyframe_ms=np.asarray(kf_ms, dtype=np.int64),
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        track_ids=np.asarray(tracks, dtype=np.int64),
        frame_size=frame_size,
    )


def cue_matrix(table: FeatureTable, cues: CueSet = "all") -> FloatArray:
    """``[len(table), n]`` the ``cues`` columns of ``table`` (``radial`` computes its two cues
    from the boxes)."""
    match cues:
        case "all":
            return table.features
        case "network":
            return table.features[:, [CUE_NAMES.index(n) for n in NETWORK_CUES]]
        case "radial":
            radial = radial_cues(torch.from_numpy(table.boxes).double(), table.frame_size).numpy()
            return np.concatenate([cue_matrix(table, "network"), radial], axis=1)
        case _:
            raise ConfigError(f"unknown cue set {cues!r}; use one of {', '.join(CUE_SETS)}")


def prior_scores(train_labels: npt.NDArray[np.int64], num_classes: int, num_rows: int) -> FloatArray:
    """``[num_rows, num_classes]``: every row the class frequencies of ``train_labels``."""
    freq = np.bincount(train_labels, minlength=num_classes).astype(np.float64)
    return np.tile(freq / freq.sum(), (num_rows, 1))


def sklearn_ensemble() -> Any:
    """``sklearn.ensemble`` (untyped: Any); a :class:`ConfigError` saying how to install it when absent."""
    try:
        return importlib.import_module("sklearn.ensemble")
    except ModuleNotFoundError as err:
        raise ConfigError(
            "the box_gbm baseline needs scikit-learn (the optional extra thermact[baselines]): "
            "pip install 'thermact[baselines]'"
        ) from err


def gbm_scores(
    train: FeatureTable, test: FeatureTable, num_classes: int, seed: int = 0, cues: CueSet = "all"
) -> FloatArray:
    """Class probabilities ``[len(test), num_classes]`` of gradient boosting fit on the ``cues`` of
    ``train``.

    Balanced class weights (each class contributes equally to the loss); classes absent from
    ``train`` get probability 0. Without scikit-learn a :class:`ConfigError` says how to install it.
    """
    model = sklearn_ensemble().HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    model.fit(cue_matrix(train, cues), train.labels)
    out = np.zeros((len(test), num_classes), dtype=np.float64)
    out[:, model.classes_] = model.predict_proba(cue_matrix(test, cues))
    return out


def fit_predict(
    kind: BaselineKind,
    train: FeatureTable,
    test: FeatureTable,
    num_classes: int,
    seed: int = 0,
    cues: CueSet = "all",
) -> Predictions:
    """Fit baseline ``kind`` on ``train`` (``box_gbm``: on its ``cues``); its predictions for every
    box of ``test``."""
    if len(train) == 0:
        raise ValueError("no labelled person boxes to fit the baseline on")
    match kind:
        case "prior":
            scores = prior_scores(train.labels, num_classes, len(test))
        case "box_gbm":
            scores = gbm_scores(train, test, num_classes, seed, cues)
        case _:
            raise ConfigError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINE_KINDS)}")
    return test.predictions(scores)
