"""Tests for thermact.baselines.classifier: box cues of real keyframes, the prior and gradient-boosting rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermact.baselines.classifier import (
    FeatureTable,
    cue_matrix,
    feature_table,
    fit_predict,
    prior_scores,
)
from thermact.data.clips import ClipConfig
from thermact.data.source import ThermalData
from thermact.data.splits import resolve_split
from thermact.engine.run import keyframes_by_id
from thermact.errors import ConfigError
from thermact.evaluation.evaluate import score_predictions
from thermact.models.box_cues import CUE_NAMES, NETWORK_CUES, radial_cues

CLIP = ClipConfig(2.7, 8, "causal")


@pytest.fixture(scope="module")
def session_fold(real_data: ThermalData) -> tuple[FeatureTable, FeatureTable]:
    """Fold 0 of the session split of the bundled V1: train on SL18, test on SL14."""
    fold = resolve_split(real_data, "session", CLIP).folds[0]
    assert fold.name == "SL18->SL14"
    train = feature_table(real_data.recordings, keyframes_by_id(real_data, fold.train, "training"), CLIP)
    test = feature_table(real_data.recordings, keyframes_by_id(real_data, fold.test, "test"), CLIP)
    return train, test


def test_rows_of_some_keyframes_are_their_own_table(real_data: ThermalData) -> None:
    keyframes = real_data.keyframes[:60]
    table = feature_table(real_data.recordings, keyframes, CLIP)
    chosen = [k.keyframe_id for k in keyframes[40:50]] + [k.keyframe_id for k in keyframes[3:9]]
    part = table.of_keyframes(chosen)
    direct = feature_table(real_data.recordings, keyframes_by_id(real_data, chosen, "test"), CLIP)
    assert part.keyframe_ids == direct.keyframe_ids and len(part) > 16  # some keyframes hold two people
    assert part.recording_ids == direct.recording_ids
    for name in ("features", "labels", "keyframe_ms", "boxes", "track_ids"):
        np.testing.assert_array_equal(getattr(part, name), getattr(direct, name), err_msg=name)
    assert len(table.of_keyframes([])) == 0 and table.of_keyframes([]).features.shape == (0, len(CUE_NAMES))


def test_feature_table_rows_are_the_person_boxes(real_data: ThermalData) -> None:
    keyframes = real_data.keyframes[:50]
    table = feature_table(real_data.recordings, keyframes, CLIP)
    persons = [(k, b) for k in keyframes for b in k.persons]
    assert len(table) == len(persons) and table.features.shape == (len(persons), len(CUE_NAMES))
    assert table.keyframe_ids == [k.keyframe_id for k, _ in persons]
    assert table.keyframe_ms.tolist() == [k.timestamp_ms for k, _ in persons]
    assert table.labels.tolist() == [b.label for _, b in persons]
    np.testing.assert_allclose(table.boxes[0], persons[0][1].xyxy, rtol=1e-6)
    width = table.features[:, CUE_NAMES.index("width_px")]
    np.testing.assert_allclose(width, table.boxes[:, 2] - table.boxes[:, 0], rtol=1e-5)
    preds = table.predictions(np.full((len(table), 14), 1 / 14))
    assert preds.recording_ids == table.recording_ids and preds.scores.dtype == np.float32
    with pytest.raises(ValueError, match="3 score rows"):
        table.predictions(np.zeros((3, 14)))


def test_prior_scores_are_the_training_frequencies() -> None:
    scores = prior_scores(np.array([0, 0, 0, 2]), 4, 3)
    np.testing.assert_allclose(scores, [[0.75, 0.0, 0.25, 0.0]] * 3)


def test_box_gbm_beats_the_prior_on_the_session_split(
    session_fold: tuple[FeatureTable, FeatureTable],
) -> None:
    train, test = session_fold
    assert (len(train), len(test)) == (216, 284)
    prior = score_predictions(fit_predict("prior", train, test, 14), 14)
    gbm = score_predictions(fit_predict("box_gbm", train, test, 14), 14)
    assert prior.frame_map.map == pytest.approx(0.156, abs=0.002)  # chance ranking
    assert prior.classification.accuracy == pytest.approx(0.391, abs=0.002)  # all "lying with risk"
    assert gbm.frame_map.map is not None and gbm.frame_map.map > prior.frame_map.map + 0.08
    assert gbm.classification.balanced_accuracy > 2 * prior.classification.balanced_accuracy
    assert gbm.classification.accuracy > prior.classification.accuracy + 0.1


def test_fit_predict_refuses_an_empty_training_table(session_fold: tuple[FeatureTable, FeatureTable]) -> None:
    test = session_fold[1]
    empty = feature_table({}, [], CLIP)
    assert len(empty) == 0 and empty.features.shape == (0, len(CUE_NAMES))
    with pytest.raises(ValueError, match="no labelled person boxes"):
        fit_predict("prior", empty, test, 14)


def test_cue_sets_are_columns_of_the_table(session_fold: tuple[FeatureTable, FeatureTable]) -> None:
    test = session_fold[1]
    np.testing.assert_array_equal(cue_matrix(test, "all"), test.features)
    network = cue_matrix(test, "network")
    assert network.shape == (284, len(NETWORK_CUES))
    np.testing.assert_array_equal(network[:, 0], test.features[:, CUE_NAMES.index("width_px")])
    np.testing.assert_array_equal(network[:, -1], test.features[:, CUE_NAMES.index("warming")])
    radial = cue_matrix(test, "radial")
    assert test.frame_size == (40, 60) and radial.shape == (284, len(NETWORK_CUES) + 2)
    np.testing.assert_array_equal(radial[:, : len(NETWORK_CUES)], network)
    expected = radial_cues(torch.from_numpy(test.boxes).double(), (40, 60)).numpy()
    np.testing.assert_allclose(radial[:, -2:], expected, rtol=1e-12)
    with pytest.raises(ConfigError, match="unknown cue set 'box'"):
        cue_matrix(test, "box")  # type: ignore[arg-type]
    # the gradient boosting fits what it is given: fewer cues, other scores
    full = fit_predict("box_gbm", session_fold[0], test, 14).scores
    fewer = fit_predict("box_gbm", session_fold[0], test, 14, cues="network").scores
    assert np.abs(full - fewer).max() > 0.1
