"""Tests of thermact.models.losses with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from thermact.data.source import load_dataset
from thermact.models.losses import (
    ActionLoss,
    class_groups,
    class_weights_from_counts,
    cross_entropy_loss,
    distillation_loss,
    group_nll_loss,
    sigmoid_bce_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
)

LN3 = math.log(3.0)


def _two_class() -> tuple[torch.Tensor, torch.Tensor]:
    # row 0: p = (1/4, 3/4); row 1: p = (3/4, 1/4)
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]], dtype=torch.float64)
    return logits, torch.tensor([1, 1])


def test_cross_entropy_hand_values() -> None:
    logits, t = _two_class()
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert cross_entropy_loss(logits, t).item() == pytest.approx(expected, rel=1e-12)
    # class weights: weighted mean normalised by the sum of target weights
    w = torch.tensor([1.0, 3.0])
    same_rows = logits[[0, 0]]  # both rows p = (1/4, 3/4)
    assert cross_entropy_loss(same_rows, torch.tensor([0, 1]), weight=w).item() == pytest.approx(
        (1 * -math.log(0.25) + 3 * -math.log(0.75)) / 4, rel=1e-12
    )
    # label smoothing 0.1 on 2 classes: target distribution (0.05, 0.95) for row 0
    ls = cross_entropy_loss(logits[:1], torch.tensor([1]), label_smoothing=0.1).item()
    assert ls == pytest.approx(-(0.95 * math.log(0.75) + 0.05 * math.log(0.25)), rel=1e-12)
    # ignored rows contribute nothing
    assert cross_entropy_loss(logits, torch.tensor([1, -100])).item() == pytest.approx(-math.log(0.75))


def test_softmax_focal_hand_values_and_gamma_zero_equals_ce() -> None:
    logits, t = _two_class()
    fl = softmax_focal_loss(logits, t, gamma=2.0).item()
    expected = (0.25**2 * -math.log(0.75) + 0.75**2 * -math.log(0.25)) / 2
    assert fl == pytest.approx(expected, rel=1e-12)
    torch.manual_seed(0)
    z = torch.randn(7, 5, dtype=torch.float64)
    y = torch.tensor([0, 4, 2, 2, -100, 1, 3])
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0], dtype=torch.float64)
    for weight in (None, w):
        torch.testing.assert_close(
            softmax_focal_loss(z, y, gamma=0.0, weight=weight), cross_entropy_loss(z, y, weight=weight)
        )
        torch.testing.assert_close(
            softmax_focal_loss(z, y, gamma=0.0, weight=weight, reduction="sum"),
            cross_entropy_loss(z, y, weight=weight, reduction="sum"),
        )
    # focal down-weights easy examples: per-sample loss <= CE
    per = softmax_focal_loss(z, y, gamma=2.0, reduction="none")
    ce = cross_entropy_loss(z, y, reduction="none")
    assert bool((per <= ce + 1e-12).all())


def test_sigmoid_losses_hand_values() -> None:
    logits = torch.tensor([[0.0, LN3]], dtype=torch.float64)  # p = (1/2, 3/4)
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    bce = (math.log(2.0) + -math.log(0.25)) / 2
    assert sigmoid_bce_loss(logits, t).item() == pytest.approx(bce, rel=1e-12)
    assert sigmoid_focal_loss(logits, t, gamma=0.0, alpha=None).item() == pytest.approx(bce, rel=1e-12)
    # gamma 2, alpha 0.25: class 0 positive p_t = 1/2; class 1 negative p_t = 1/4
    sf = sigmoid_focal_loss(logits, t, gamma=2.0, alpha=0.25).item()
    assert sf == pytest.approx(
        (0.25 * 0.5**2 * math.log(2.0) + 0.75 * 0.75**2 * -math.log(0.25)) / 2, rel=1e-12
    )
    w = torch.tensor([2.0, 0.5], dtype=torch.float64)
    assert sigmoid_bce_loss(logits, t, weight=w).item() == pytest.approx(
        (2 * math.log(2.0) + 0.5 * -math.log(0.25)) / 2, rel=1e-12
    )
    assert sigmoid_focal_loss(logits, t, gamma=0.0, alpha=None, weight=w).item() == pytest.approx(
        sigmoid_bce_loss(logits, t, weight=w).item(), rel=1e-12
    )


def test_class_weights_from_counts() -> None:
    torch.testing.assert_close(class_weights_from_counts([1, 3], "inverse"), torch.tensor([1.5, 0.5]))
    s = 1 / math.sqrt(3)
    torch.testing.assert_close(
        class_weights_from_counts([1, 3], "sqrt_inverse"), torch.tensor([2 / (1 + s), 2 * s / (1 + s)])
    )
    # beta 0.5: (1 - b) / (1 - b^n) = 1 for n = 1 and 2/3 for n = 2 -> normalised (1.2, 0.8)
    torch.testing.assert_close(
        class_weights_from_counts([1, 2], "effective", beta=0.5), torch.tensor([1.2, 0.8])
    )
    # effective weights approach inverse ones as beta -> 1 and uniform ones at beta = 0
    torch.testing.assert_close(
        class_weights_from_counts([10, 40], "effective", beta=1 - 1e-9),
        class_weights_from_counts([10, 40], "inverse"),
        rtol=1e-5,
        atol=1e-6,
    )
    torch.testing.assert_close(class_weights_from_counts([10, 40], "effective", beta=0.0), torch.ones(2))
    # zero counts are treated as one
    torch.testing.assert_close(class_weights_from_counts([0, 1], "inverse"), torch.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        class_weights_from_counts([-1, 2])
    with pytest.raises(ValueError, match="scheme"):
        class_weights_from_counts([1, 2], "log")  # type: ignore[arg-type]


def test_action_loss_module_dispatch_buffer_and_empty_batch() -> None:
    logits, t = _two_class()
    w = [1.0, 3.0]
    loss = ActionLoss("ce", class_weights=w)
    assert "class_weights" in loss.state_dict()
    loss = loss.to(torch.float64)
    assert loss.class_weights is not None and loss.class_weights.dtype == torch.float64
    torch.testing.assert_close(loss(logits, t), cross_entropy_loss(logits, t, weight=torch.tensor(w)))
    focal = ActionLoss("focal", gamma=2.0)
    torch.testing.assert_close(focal(logits, t), softmax_focal_loss(logits, t, gamma=2.0))
    multi = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert ActionLoss("bce").multi_label and not ActionLoss("ce").multi_label
    torch.testing.assert_close(ActionLoss("bce")(logits, multi), sigmoid_bce_loss(logits, multi))
    torch.testing.assert_close(
        ActionLoss("sigmoid_focal", gamma=1.0, alpha=None)(logits, multi),
        sigmoid_focal_loss(logits, multi, gamma=1.0, alpha=None),
    )
    for kind, target in (
        ("ce", torch.zeros(0, dtype=torch.long)),
        ("focal", torch.zeros(0, dtype=torch.long)),
        ("bce", torch.zeros(0, 3)),
        ("sigmoid_focal", torch.zeros(0, 3)),
    ):
        z = torch.zeros(0, 3, requires_grad=True)
        value = ActionLoss(kind)(z, target)  # type: ignore[arg-type]
        assert value.item() == 0.0
        value.backward()
        assert z.grad is not None


def test_loss_validation() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="integer class indices"):
        cross_entropy_loss(z, torch.zeros(2))
    with pytest.raises(ValueError, match="multi-hot"):
        sigmoid_bce_loss(z, torch.zeros(2))
    with pytest.raises(ValueError, match="class weights"):
        softmax_focal_loss(z, torch.zeros(2, dtype=torch.long), weight=torch.ones(2))
    with pytest.raises(ValueError, match="label_smoothing"):
        ActionLoss("bce", label_smoothing=0.1)
    with pytest.raises(ValueError, match="unknown loss kind"):
        ActionLoss("mse")  # type: ignore[arg-type]


def test_group_nll_hand_values() -> None:
    groups = class_groups(["sitting", "lying down-a", "lying down-b", "lower-x", "lower-y"])
    assert groups == [0, 1, 1, 2, 2]
    logits = torch.log(torch.tensor([[0.1, 0.3, 0.2, 0.2, 0.2], [0.5, 0.1, 0.1, 0.1, 0.2]]))
    targets = torch.tensor([2, 4])
    loss = group_nll_loss(logits, targets, torch.tensor(groups))
    expected = -(math.log(0.5) + math.log(0.3)) / 2  # lying group 0.3 + 0.2, lower group 0.1 + 0.2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    weighted = group_nll_loss(logits, targets, torch.tensor(groups), torch.tensor([1.0, 1, 3, 1, 1]))
    assert weighted.item() == pytest.approx(-(3 * math.log(0.5) + math.log(0.3)) / 4, rel=1e-6)
    full = ActionLoss("ce", groups=groups, group_weight=0.5)
    plain = ActionLoss("ce")
    assert full(logits, targets).item() == pytest.approx(
        plain(logits, targets).item() + 0.5 * expected, rel=1e-6
    )
    with pytest.raises(ValueError, match="group_weight"):
        ActionLoss("bce", groups=groups, group_weight=0.5)


def test_group_nll_ignores_ignored_targets_and_the_real_class_names() -> None:
    names = load_dataset(with_raw=False).classes.names
    groups = class_groups(names)
    # lying down, transition and lower position are the three groups of more than one class
    sizes = sorted(groups.count(g) for g in set(groups))
    assert sizes[-3:] == [2, 3, 4] and len(set(groups)) == 8
    logits = torch.randn(3, len(names), generator=torch.Generator().manual_seed(0))
    kept = group_nll_loss(logits[:2], torch.tensor([3, 10]), torch.tensor(groups))
    with_ignored = group_nll_loss(logits, torch.tensor([3, 10, -100]), torch.tensor(groups))
    assert with_ignored.item() == pytest.approx(kept.item(), rel=1e-6)


def test_distillation_hand_values_gradient_and_no_gradient_into_the_teacher() -> None:
    # student p = (1/4, 3/4), teacher q = (3/4, 1/4) at T = 1: KL(q || p) = (3/4 - 1/4) * ln 3 per box
    student, _ = _two_class()
    teacher = student.flip(1)
    assert float(distillation_loss(student[:1], teacher[:1], 1.0)) == pytest.approx(0.5 * LN3)
    # at T = 2 both are softened: p = softmax(z / 2) = (1, sqrt 3) / (1 + sqrt 3); times T^2 = 4
    r3 = math.sqrt(3.0)
    p, q = torch.tensor([1.0, r3]) / (1 + r3), torch.tensor([r3, 1.0]) / (1 + r3)
    expected = 4.0 * float((q * (q / p).log()).sum())
    assert float(distillation_loss(student, teacher, 2.0)) == pytest.approx(expected)
    # the same distribution (logits shifted by a constant) costs nothing
    assert float(distillation_loss(student, student + 5.0, 3.0)) == pytest.approx(0.0, abs=1e-6)  # float32
    # d/dz of T^2 KL = T (softmax(z / T) - q) / K; the teacher gets no gradient
    z = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    t = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    distillation_loss(z, t, 2.0).backward()
    assert z.grad is not None and t.grad is None
    grad = 2.0 * (torch.softmax(z.detach() / 2, 1) - torch.softmax(t.detach() / 2, 1)) / 5
    assert torch.allclose(z.grad, grad.float().double(), atol=1e-6)
    empty = torch.zeros(0, 4, requires_grad=True)
    out = distillation_loss(empty, torch.zeros(0, 4))
    out.backward()
    assert float(out.detach()) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(student, teacher, 0.0)
