"""Issue #25 item 9: one progress bar at a time, so a log that is not a terminal stays
readable (the safeguard's feature extraction ran a second bar inside fine-tuning's)."""

import numpy as np
from conftest import FAST

import skmsc.nn._training as training
from skmsc import MeanShiftedContrastiveDetector


def test_a_bar_inside_another_is_hidden():
    with training._progress(3, True, "outer") as outer:
        assert not outer.disable
        with training._progress(2, True, "inner") as inner:
            assert inner.disable
    with training._progress(2, True, "next") as after:  # the depth was restored
        assert not after.disable


def test_a_verbose_fit_with_the_safeguard_shows_one_bar_at_a_time(digits, monkeypatch):
    real = training.tqdm
    shown, open_now, most = [], [0], [0]

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._counted = not self.disable
            if self._counted:
                shown.append(self.desc)
                open_now[0] += 1
                most[0] = max(most[0], open_now[0])

        def close(self):
            if getattr(self, "_counted", False):
                open_now[0] -= 1
                self._counted = False
            super().close()

    monkeypatch.setattr(training, "tqdm", Recording)
    X, y = digits
    # 30 images: the fewest the safeguard holds 10 out of; one epoch, then its extraction.
    MeanShiftedContrastiveDetector(**FAST, epochs=1, verbose=True).fit(
        (X[y == 0][:30] * 255).astype(np.uint8))
    assert "fine-tuning" in shown and "features" in shown
    assert most[0] == 1
