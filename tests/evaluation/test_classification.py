from __future__ import annotations

import pytest

from thermact.evaluation.classification import classification_report, confusion_matrix


def test_confusion_matrix_counts() -> None:
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_hand_computed_report() -> None:
    # class 0: 3 true, 2 right; class 1: 1 true, right; class 2: absent from GT, predicted once
    rep = classification_report([0, 0, 0, 1], [0, 0, 2, 1], 3)
    assert rep.accuracy == pytest.approx(0.75)
    c0, c1, c2 = rep.per_class
    assert (c0.precision, c0.recall) == (1.0, pytest.approx(2 / 3))
    assert c0.f1 == pytest.approx(0.8)
    assert (c1.precision, c1.recall, c1.f1) == (1.0, 1.0, 1.0)
    assert (c2.support, c2.predicted, c2.precision, c2.recall, c2.f1) == (0, 1, 0.0, None, None)
    assert rep.macro_f1 == pytest.approx(0.9)  # mean over the two classes present
    assert rep.balanced_accuracy == pytest.approx((2 / 3 + 1) / 2)


def test_majority_guess_has_low_balanced_accuracy() -> None:
    y = [0] * 9 + [1]
    rep = classification_report(y, [0] * 10, 2)
    assert rep.accuracy == pytest.approx(0.9)
    assert rep.balanced_accuracy == pytest.approx(0.5)
    assert rep.per_class[1].f1 == 0.0


def test_empty_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        classification_report([], [], 3)
