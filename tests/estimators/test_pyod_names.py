"""Issue #25 item 6: PyOD's names (decision_scores_, threshold_, labels_, predict_proba,
predict_confidence) with PyOD's meanings, derived from the detector's own threshold."""

import pickle
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skmsc import KNNDetector
from skmsc.parallel import score_dask_array


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[7] += 12  # one far outlier among the training samples
    return X, rng.normal(size=(200, 3))


def test_pyod_attributes_are_the_leave_one_out_scores_and_threshold(data):
    X, _ = data
    det = KNNDetector(contamination=0.1).fit(X)
    # PyOD: outlier scores of the training data, higher = more abnormal.
    np.testing.assert_array_equal(det.decision_scores_, -det.train_scores_)
    assert det.decision_scores_.argmax() == 7 and det.decision_scores_.shape == (400,)
    assert det.threshold_ == -det.offset_
    assert det.labels_.dtype.kind == "i" and set(np.unique(det.labels_)) == {0, 1}
    np.testing.assert_array_equal(det.labels_, det.decision_scores_ > det.threshold_)
    assert det.labels_[7] == 1
    assert abs(det.labels_.mean() - 0.1) <= 1 / len(X)
    # The same rule as predict: a new sample whose score equals a training sample's LOO
    # score is labelled the same way.
    np.testing.assert_array_equal(det.labels_ == 1, det.train_scores_ - det.offset_ < 0)


def test_pyod_attributes_follow_set_threshold_pickle_and_save(data, tmp_path):
    X, _ = data
    det = KNNDetector(contamination=0.1).fit(X)
    det.set_threshold(0.25)
    assert det.threshold_ == -det.offset_
    assert abs(det.labels_.mean() - 0.25) <= 1 / len(X)
    for loaded in (pickle.loads(pickle.dumps(det)), KNNDetector.load(det.save(tmp_path / "m"))):
        np.testing.assert_array_equal(loaded.decision_scores_, det.decision_scores_)
        assert loaded.threshold_ == det.threshold_
        np.testing.assert_array_equal(loaded.labels_, det.labels_)


def test_unfitted_detector_has_no_pyod_attributes():
    det = KNNDetector()
    for name in ("decision_scores_", "threshold_", "labels_"):
        assert not hasattr(det, name)
    with pytest.raises(AttributeError, match="not fitted"):
        det.labels_  # noqa: B018
    for method in (det.predict_proba, det.predict_confidence):
        with pytest.raises(NotFittedError):
            method(np.zeros((2, 3)))


def test_predict_proba_is_the_conformal_pvalue_and_its_complement(data):
    X, X_new = data
    det = KNNDetector().fit(X)
    queries = np.vstack([X_new, X_new[:1] + 30])
    proba = det.predict_proba(queries)
    assert proba.shape == (len(queries), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 0], det.conformal_pvalues(queries))
    # Farther out, more anomalous; beyond every training sample: n / (n + 1).
    assert proba[-1, 1] == pytest.approx(len(X) / (len(X) + 1))
    order = np.argsort(det.score_samples(queries))
    assert np.all(np.diff(proba[order, 1]) <= 0)
    # For new normal samples P(anomaly) >= 1 - alpha about alpha of the time.
    assert np.mean(proba[:-1, 1] >= 0.9) < 0.2


def test_predict_confidence_is_exceed(data):
    X, _ = data
    det = KNNDetector(contamination=0.1).fit(X)
    near = det.offset_ + np.array([-1e-9, 1e-9])  # scores either side of the threshold
    points = np.array([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    confidence = det.predict_confidence(points)
    assert confidence.shape == (2,) and np.all((confidence >= 0) & (confidence <= 1))
    assert confidence[0] > 0.99 and confidence[1] > 0.99  # deep inside / far outside
    # At the threshold the prediction could go either way: confidence near one half.
    from skmsc._estimators._base import exceed_confidence
    at = exceed_confidence(det.train_scores_, near, det.contamination_)
    assert np.all(np.abs(at - 0.5) < 0.1)


def test_score_dask_array_names_what_it_returns(data):
    X, X_new = data
    det = KNNDetector().fit(X)
    lazy = da.from_array(X_new, chunks=50)
    with pytest.warns(FutureWarning, match="decision_function.*score_samples"):
        result = score_dask_array(det, lazy)
    np.testing.assert_allclose(result.compute(scheduler="synchronous"),
                               det.decision_function(X_new))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = score_dask_array(det, lazy, method="score_samples")
        positional = score_dask_array(det, lazy, "decision_function")
    np.testing.assert_allclose(explicit.compute(scheduler="synchronous"),
                               det.score_samples(X_new))
    np.testing.assert_allclose(positional.compute(scheduler="synchronous"),
                               det.decision_function(X_new))
