"""Fitted state that every reader sees whole: built aside, swapped in with one assignment.

An estimator's fitted state is its ``__dict__``. A fitting method decorated with
:func:`fits_aside` runs on a stand-in whose ``__dict__`` is a copy of the estimator's;
only when it returns does the estimator get the stand-in's dictionary, in one assignment.
So a fit that fails (an error, an interrupt, a divergence) leaves the estimator exactly
as it was, and never half-fitted, whatever attributes the classes add.

A reader (scoring, ``transform``, ``save``) takes :func:`snapshot` once at its start
and reads every attribute from it: the dictionary it copies is never changed by a fit,
so a call sees the model that was in place when it started, the old or the new one,
never a mix, even while another thread fits the same estimator.

Thread safety, as documented for users (``docs/guide/persistence.rst``): scoring
methods, ``transform`` and ``save`` may run in several threads at once, also while
another thread fits the same object; two fits of one object at once end with the one
that finishes last; parameters changed (``set_params``) while a fit runs are lost.
"""

from __future__ import annotations

import functools

__all__ = ["fits_aside", "snapshot"]


def _stand_in(estimator, state: dict):
    other = object.__new__(type(estimator))
    other.__dict__ = state
    return other


def fits_aside(method):
    """Run a fitting method on a copy of the estimator; swap its state in if it returns.

    The copy is shallow: a fitting method must build new fitted objects (arrays, lists,
    networks) rather than change the current ones in place, or those changes would be
    seen before the swap and kept after a failure. (``fit`` builds a new network; a
    method that trains the fitted network further must copy it first.)

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> from skmsc._estimators._state import fits_aside
    >>> class Model(BaseEstimator):
    ...     @fits_aside
    ...     def fit(self, X):
    ...         self.n_samples_ = len(X)
    ...         self.mean_ = sum(X) / len(X)  # fails on an empty X, after n_samples_
    ...         return self
    >>> model = Model().fit([1.0, 3.0])
    >>> try:
    ...     model.fit([])
    ... except ZeroDivisionError:
    ...     pass
    >>> model.n_samples_, model.mean_  # untouched by the failed fit
    (2, 2.0)
    """

    @functools.wraps(method)
    def fit_aside(self, *args, **kwargs):
        other = _stand_in(self, dict(self.__dict__))
        result = method(other, *args, **kwargs)
        self.__dict__ = other.__dict__  # the one assignment readers can observe
        return self if result is other else result

    return fit_aside


def snapshot(estimator):
    """The estimator as it is now, for one reading call (a stand-in over a copy of its
    state: a fit swapping in new state meanwhile does not change it)."""
    return _stand_in(estimator, dict(estimator.__dict__))
