"""Scaling out with Dask: score image arrays chunk by chunk, search on a cluster.

**Scoring a Dask array.** :func:`score_dask_array` maps the fitted estimator's method you
name (``decision_function``, ``score_samples``, ``predict`` or ``transform``) over the chunks of
a ``dask.array`` of images, so a data set larger than memory is scored in parallel. The
fitted estimator is sent to each worker once (scattered when a ``dask.distributed`` client
is active). dask-ml's ``ParallelPostFit`` does not fit here: it has no
``decision_function``/``score_samples`` and assumes 2-D inputs.

**Grid search on a cluster.** scikit-learn parallelises searches with joblib, and joblib
runs on ``dask.distributed`` through its Dask backend::

    import joblib
    from dask.distributed import Client

    client = Client("scheduler-address:8786")      # or Client(LocalCluster(...))
    with joblib.parallel_config(backend="dask"):
        search.fit(X, y)                            # OneClassGridSearchCV(..., n_jobs=-1)

**One GPU per worker.** Fine-tuning fills a GPU; two fits sharing one run out of memory
and gain nothing. Give each Dask worker one GPU and one thread, and keep
``device="auto"`` (or ``"cuda"``) so that each fit uses the GPU its worker sees as
``cuda:0``:

* one machine: ``dask_cuda.LocalCUDACluster()`` (package ``dask-cuda``) starts one
  worker per GPU with ``CUDA_VISIBLE_DEVICES`` set to that GPU, one thread each;
* by hand: on each GPU ``i`` run
  ``CUDA_VISIBLE_DEVICES=i dask worker SCHEDULER:8786 --nworkers 1 --nthreads 1``.

On CPU workers, use one thread per worker process and set ``torch.set_num_threads`` (or
``OMP_NUM_THREADS``) to the cores each worker may use; joblib's own ``loky`` backend
(``n_jobs > 1`` without Dask) already limits each worker's threads to its share of the
cores.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["score_dask_array"]

_METHODS = ("decision_function", "score_samples", "predict", "transform")


def _apply(block, estimator, method):
    return getattr(estimator, method)(block)


def _n_features_out(estimator) -> int | None:
    """Columns of ``transform``'s output, from scikit-learn's ``get_feature_names_out``
    (``None`` where the estimator, or a step of a Pipeline, does not name its output)."""
    try:
        return len(estimator.get_feature_names_out())
    except (AttributeError, ValueError):  # NotFittedError is both
        return None


def _estimator_in_graph(estimator):
    """A handle on the estimator that ships it to the workers once, not once per chunk."""
    import dask

    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no dask.distributed, or no client running
        client = None
    if client is not None:
        return client.scatter(estimator, broadcast=True, hash=False)
    return dask.delayed(estimator, pure=True)


def score_dask_array(estimator, X, method=None):
    """Apply a fitted estimator's ``method`` to a Dask array, one chunk of samples at a time.

    Parameters
    ----------
    estimator : fitted estimator
        :class:`~skmsc.MeanShiftedContrastiveDetector`, :class:`~skmsc.KNNDetector`,
        :class:`~skmsc.MeanShiftedFeatures` or a pipeline of them.
    X : dask.array.Array of shape (n_samples, ...)
        Images of any size (or features shaped like the training data). Chunks may split the sample
        axis only; the other axes are merged into one chunk if needed.
    method : {"decision_function", "score_samples", "predict", "transform"}, default=None
        The estimator's method to apply. Name it: ``"score_samples"`` is the normality
        score (higher = more normal); ``"decision_function"`` is ``score_samples -
        offset_`` (negative = anomaly), a different number for the same image.
        ``None`` applies ``"decision_function"`` with a ``FutureWarning``: a later
        version will require ``method``.

    Returns
    -------
    result : dask.array.Array
        Shape ``(n_samples,)`` (``(n_samples, n_features_out)`` for ``transform``), chunked
        like ``X``'s sample axis. Call ``.compute()`` to run it.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.parallel import score_dask_array
    >>> X = np.random.default_rng(0).normal(size=(100, 4))
    >>> det = MeanShiftedContrastiveDetector().fit(X)
    >>> lazy = score_dask_array(det, da.from_array(X, chunks=25), method="decision_function")
    >>> bool(np.allclose(lazy.compute(scheduler="synchronous"), det.decision_function(X)))
    True
    """
    import dask.array as da

    if method is None:
        warnings.warn(
            "score_dask_array was called without method, so it returns "
            "decision_function (score_samples - offset_: negative = anomaly), not "
            "score_samples (the normality score, higher = more normal): the two differ by "
            "the threshold. Pass method='decision_function' to keep this and silence the "
            "warning, or method='score_samples'. A later version will require method.",
            FutureWarning, stacklevel=2,
        )
        method = "decision_function"
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not one of {_METHODS}.")
    if not hasattr(estimator, method):
        raise ValueError(f"{type(estimator).__name__} has no method {method!r}.")
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array; got {type(X).__name__}. Call "
            f"estimator.{method}(X) directly on in-memory data."
        )
    if X.ndim < 2:
        raise ValueError(f"X has shape {X.shape}; expected (n_samples, ...) samples.")
    # Each block must hold whole samples.
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    handle = _estimator_in_graph(estimator)
    other_axes = list(range(1, X.ndim))
    if method == "transform":
        n_out = _n_features_out(estimator) or estimator.transform(X[:1].compute()).shape[1]
        return X.map_blocks(
            _apply, handle, method, drop_axis=other_axes[1:] if X.ndim > 2 else [],
            chunks=(X.chunks[0], (n_out,)), dtype=np.float32,
            meta=np.empty((0, 0), dtype=np.float32),
        )
    dtype = np.int64 if method == "predict" else np.float64
    return X.map_blocks(
        _apply, handle, method, drop_axis=other_axes, dtype=dtype,
        meta=np.empty((0,), dtype=dtype),
    )
