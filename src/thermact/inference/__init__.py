"""Inference on raw recordings and live streams: detection + tracking + action classification
(:mod:`~thermact.inference.pipeline`), streaming for many sensors
(:mod:`~thermact.inference.streaming`), events (:mod:`~thermact.inference.events`) and the
``thermact detect`` / ``thermact stream`` commands."""

from thermact.inference.events import ClassDurationEvent, Event, EventRule, LyingWithRiskEvent
from thermact.inference.pipeline import (
    ActionModelLike,
    ActionRunner,
    DetectorLike,
    DetectorRunner,
    FrameInput,
    FrameResult,
    InferencePipeline,
    PersonResult,
)
from thermact.inference.streaming import StreamingPredictor, StreamStats

__all__ = [
    "ActionModelLike",
    "ActionRunner",
    "ClassDurationEvent",
    "DetectorLike",
    "DetectorRunner",
    "Event",
    "EventRule",
    "FrameInput",
    "FrameResult",
    "InferencePipeline",
    "LyingWithRiskEvent",
    "PersonResult",
    "StreamStats",
    "StreamingPredictor",
]
