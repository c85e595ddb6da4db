"""Dask: OneClassGridSearchCV on a dask.distributed LocalCluster (joblib's Dask backend), and
scoring Dask arrays of images chunk by chunk."""

import joblib
import numpy as np
import pytest
from conftest import FAST

from skmsc import MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc.model_selection import OneClassGridSearchCV, OneClassKFold, normal_roc_auc_scorer
from skmsc.parallel import score_dask_array

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")



@pytest.fixture
def client():
    # Threaded workers (processes=False): worker processes would each spend most of the
    # test importing torch; the tasks still go through the scheduler to the workers.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_grid_search_runs_on_the_cluster(client, digits):
    X, y = digits
    images = np.concatenate([X[y == 0][:24], X[y != 0][:12]])
    labels = np.r_[np.ones(24), np.zeros(12)].astype(int)

    def search(n_jobs):
        return OneClassGridSearchCV(
            MeanShiftedContrastiveDetector(**FAST, epochs=1), {"n_neighbors": [1, 3]},
            cv=OneClassKFold(2), scoring=normal_roc_auc_scorer, n_jobs=n_jobs,
        )

    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        on_cluster = search(-1).fit(images, labels)
    # 2 candidates x 2 folds ran as tasks on the cluster's workers.
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 4 and workers <= set(client.scheduler_info()["workers"])
    local = search(1).fit(images, labels)
    np.testing.assert_array_equal(
        on_cluster.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert on_cluster.best_score_ > 0.8
    assert len(on_cluster.best_estimator_.train_features_) == 24  # refit on the normals


@pytest.mark.parametrize("method", ["decision_function", "score_samples", "predict"])
def test_scoring_a_dask_array_on_the_cluster_matches_in_memory(client, fitted_lite0, digits,
                                                               method):
    X = digits[0][:90]
    lazy = score_dask_array(fitted_lite0, da.from_array(X, chunks=(25, 4, 8)), method)
    assert lazy.shape == (90,) and lazy.chunks == ((25, 25, 25, 15),)
    with distributed.get_task_stream(client) as stream:
        result = lazy.compute()
    assert len(stream.data) >= 4  # one task per chunk, at least
    np.testing.assert_array_equal(result, getattr(fitted_lite0, method)(X))


def test_features_of_a_dask_array_without_a_cluster(digits):
    X = digits[0][:30]
    features = MeanShiftedFeatures(**FAST, epochs=0).fit(X[:10])
    lazy = score_dask_array(features, da.from_array(X, chunks=(8, 8, 8)), "transform")
    assert lazy.shape == (30, 1280)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), features.transform(X))


def test_bad_inputs_are_refused(fitted_lite0, digits):
    with pytest.raises(TypeError, match="must be a dask array"):
        score_dask_array(fitted_lite0, digits[0][:4])
    with pytest.raises(ValueError, match="not one of"):
        score_dask_array(fitted_lite0, da.zeros((4, 8, 8)), "fit")
    with pytest.raises(ValueError, match="has no method 'transform'"):
        score_dask_array(fitted_lite0, da.zeros((4, 8, 8)), "transform")
