"""Inference on raw recordings and live streams: the models behind NumPy calls
(:mod:`~thermact.inference.runners`), per-sensor state (:mod:`~thermact.inference.sensor`),
detection + tracking + action classification (:mod:`~thermact.inference.pipeline`), streaming for
many sensors (:mod:`~thermact.inference.streaming`), events (:mod:`~thermact.inference.events`) and
the animations of ``thermact detect`` (:mod:`~thermact.inference.render`)."""

from thermact.inference.events import ClassDurationEvent, Event, EventRule, LyingWithRiskEvent
from thermact.inference.pipeline import FrameInput, FrameResult, InferencePipeline, PersonResult
from thermact.inference.runners import ActionModelLike, ActionRunner, DetectorLike, DetectorRunner
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
