"""Item: a fit that will take long says so up front, with an estimate measured on its own
first steps and the settings that fit faster. The clock is faked (``skmsc.nn._eta.clock``):
no test waits."""

import warnings

import numpy as np
import pytest
from conftest import FAST

import skmsc.nn._eta as eta
import skmsc.nn._training
from skmsc import MeanShiftedContrastiveDetector, SlowFitWarning


class FakeClock:
    """Each reading advances by ``step`` seconds: every batch appears to take ``step`` s."""

    def __init__(self, step):
        self.step, self.now = step, 0.0

    def __call__(self):
        self.now += self.step
        return self.now


@pytest.fixture
def images(digits):
    X, y = digits
    return X[y == 0][:32]  # 4 extraction batches of 8 (warm-up + 3 timed), 4 steps an epoch


def test_a_slow_fit_warns_before_fine_tuning_with_a_measured_estimate(images, monkeypatch):
    clock = FakeClock(step=10.0)  # feature batches appear to take 10 s
    monkeypatch.setattr(eta, "clock", clock)
    seen_before_fine_tuning = []
    fine_tune = skmsc.nn._training.fine_tune

    def slower_fine_tune(*args, **kwargs):
        seen_before_fine_tuning.extend(str(w.message) for w in caught)
        clock.step = 100.0  # fine-tuning steps appear to take 100 s
        return fine_tune(*args, **kwargs)

    monkeypatch.setattr(skmsc.nn._training, "fine_tune", slower_fine_tune)
    det = MeanShiftedContrastiveDetector(**FAST, epochs=4, early_stopping=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.fit(images)
    slow = [w for w in caught if issubclass(w.category, SlowFitWarning)]
    assert len(slow) == 2
    first, second = (str(w.message) for w in slow)
    # Up front, from the pretrained extraction's timed batches (10 s per 8 images): 32 + 32
    # extractions, and at least 2 views x 8 images per step for 4 x 4 steps: 400 s.
    assert seen_before_fine_tuning == [first]
    assert first.startswith("This fit will take at least 7 min on cpu:")
    assert "1.25 s per image for features" in first
    assert "16 fine-tuning steps and 64 feature extractions" in first
    for text in ("preset('cpu')", "fewer epochs", "verbose=True"):
        assert text in first
    # Then from the measured fine-tuning steps: 64 x 1.25 s + 16 x 100 s = 28 min.
    assert second.startswith("This fit will take about 28 min on cpu:")
    assert "100 s per fine-tuning step of 8 images" in second
    assert all(w.filename == __file__ for w in slow)  # they point at the caller's fit


def test_faster_settings_named_depend_on_the_settings():
    timer = eta.FitTimer(n_images=1000, epochs=20, batch_size=64, early_stopping=True,
                         backbone="resnet152", image_size=224, device="cpu")
    text = timer._faster()
    for option in ("preset('cpu')", "backbone='efficientnet_lite0'",
                   "a smaller image_size (e.g. 112)", "fewer epochs (e.g. 3"):
        assert option in text
    small = eta.FitTimer(n_images=1000, epochs=3, batch_size=64, early_stopping=True,
                         backbone="efficientnet_lite0", image_size=64, device="cuda:0")
    assert small._faster() == "To go faster: fewer or smaller training images, or a GPU."
    assert timer.planned == {"extract": 1000 + 20 * 1000, "tune": 20 * 16}


def test_a_fit_on_the_cpu_preset_is_not_told_to_use_it():
    from skmsc.presets import preset

    settings = {k: preset("cpu")[k] for k in ("backbone", "image_size", "epochs")}
    timer = eta.FitTimer(n_images=1000, batch_size=32, early_stopping=True, device="cpu",
                         **settings)
    assert "preset('cpu')" not in timer._faster()
    other = eta.FitTimer(n_images=1000, batch_size=32, early_stopping=True, device="cpu",
                         **{**settings, "epochs": settings["epochs"] + 1})
    assert "preset('cpu')" in other._faster()


def test_a_quick_fit_is_silent(images, monkeypatch):
    monkeypatch.setattr(eta, "clock", FakeClock(step=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowFitWarning)
        # 10 held out by the safeguard, 22 fine-tuned: 3 steps, then the epoch's extraction.
        MeanShiftedContrastiveDetector(**FAST, epochs=1).fit(images)


def test_the_estimate_is_the_planned_work_times_the_measured_rates(monkeypatch):
    monkeypatch.setattr(eta, "clock", FakeClock(step=2.0))
    timer = eta.FitTimer(n_images=100, epochs=2, batch_size=10, early_stopping=False,
                         backbone="resnet18", image_size=224, device="cpu")
    timer.begin("extract")
    for _ in range(4):  # warm-up + 3 timed batches of 10 images: 0.2 s per image
        timer.step("extract", 10)
    assert timer.rate("extract") == pytest.approx(0.2)
    # 200 extractions x 0.2 s + 20 steps x (at least 2 x 10 x 0.2 s)
    assert timer.estimate() == (pytest.approx(200 * 0.2 + 20 * 4.0), True)
    timer.begin("tune")
    timer.step("tune", 1)
    timer.step("tune", 1)
    timer.finish("tune")  # an epoch shorter than the timed window still settles
    assert timer.rate("tune") == pytest.approx(2.0)
    assert timer.estimate() == (pytest.approx(200 * 0.2 + 20 * 2.0), False)


def test_the_command_line_prints_the_warning_as_one_line(image_folder, tmp_path,
                                                        monkeypatch, capsys):
    from skmsc.cli import main

    monkeypatch.setattr(eta, "clock", FakeClock(step=60.0))
    code = main([str(a) for a in [
        "fit", image_folder.root / "normal", "-o", tmp_path / "m", "--backbone",
        "efficientnet_lite0", "--epochs", "1", "--batch-size", "4", "--image-size", "32",
        "-q"]])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "SlowFitWarning" in line]
    assert lines and lines[0].startswith("skmsc: SlowFitWarning: This fit will take")
    assert np.all(["preset('cpu')" in line for line in lines])
