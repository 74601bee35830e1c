"""Person tracking: optimal assignment, a time-aware Kalman tracker and identity metrics."""

from thermact.tracking.assignment import AssignmentResult, gated_assignment, linear_assignment
from thermact.tracking.metrics import EvalFrame, IdMetrics, evaluate_ids
from thermact.tracking.tracker import Track, TrackedBox, Tracker, TrackerConfig, pairwise_iou

__all__ = [
    "AssignmentResult",
    "EvalFrame",
    "IdMetrics",
    "Track",
    "TrackedBox",
    "Tracker",
    "TrackerConfig",
    "evaluate_ids",
    "gated_assignment",
    "linear_assignment",
    "pairwise_iou",
]
