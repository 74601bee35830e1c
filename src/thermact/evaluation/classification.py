"""Classification metrics of actions on ground-truth person boxes.

With GT boxes the detector's job is removed and what remains is action quality: for each GT
person the predicted class is the arg-max of the scores. Reported: accuracy, macro-F1,
balanced accuracy (mean recall), per-class precision / recall / F1 / support, and the confusion
matrix ``[true, predicted]``.

Averages run over the classes *present in the evaluated ground truth*; a class with no GT
box is reported with ``support = 0`` and ``None`` recall, and does not enter macro-F1 or
balanced accuracy (its false positives still lower the precision of nothing, but appear in the
confusion matrix column).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


@dataclasses.dataclass(frozen=True)
class PerClass:
    label: int
    support: int
    predicted: int
    precision: float | None
    recall: float | None
    f1: float | None


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    balanced_accuracy: float
    per_class: list[PerClass]
    confusion: list[list[int]]
    """confusion[true][predicted] counts."""
    num_samples: int


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
    """Counts ``[num_classes, num_classes]`` indexed ``[true, predicted]``."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def classification_report(
    y_true: Sequence[int] | npt.ArrayLike, y_pred: Sequence[int] | npt.ArrayLike, num_classes: int
) -> ClassificationReport:
    """Metrics of predicted vs true labels (see module docstring)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("classification_report needs at least one sample")
    per_class: list[PerClass] = []
    for c in range(num_classes):
        tp = int(cm[c, c])
        support = int(cm[c].sum())
        predicted = int(cm[:, c].sum())
        precision = tp / predicted if predicted else (0.0 if support else None)
        recall = tp / support if support else None
        f1: float | None
        if recall is None:
            f1 = None
        elif precision is None or precision + recall == 0:
            f1 = 0.0
        else:
            f1 = 2 * precision * recall / (precision + recall)
        per_class.append(PerClass(c, support, predicted, precision, recall, f1))
    present = [pc for pc in per_class if pc.support > 0]
    return ClassificationReport(
        accuracy=float(np.trace(cm)) / n,
        macro_f1=float(np.mean([pc.f1 for pc in present])),
        balanced_accuracy=float(np.mean([pc.recall for pc in present])),
        per_class=per_class,
        confusion=cm.tolist(),
        num_samples=n,
    )
