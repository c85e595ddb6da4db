"""How long a fit will take, estimated from its own first steps, and a warning when it is long.

A fit runs two kinds of steps: feature extraction (the pretrained features, the
safeguard's features after each epoch, the final features) and fine-tuning steps. The
loops report each finished batch to a :class:`FitTimer`; after the first few timed
batches of a kind (the very first is left out: it pays for allocation and warm-up), the
timer multiplies the measured time per image or per step by the work the fit has planned.
Before any fine-tuning step is measured, a fine-tuning step is counted as at least the
forward passes of its two augmented views (a lower bound; the backward pass comes on
top). If the estimate exceeds :data:`SLOW_FIT_SECONDS`, a :class:`SlowFitWarning` says so,
with settings that fit faster: at the first measured extraction batches (seconds into the
fit), and once more when the measured fine-tuning steps show it is longer still.

The clock is the module attribute :data:`clock`, which tests replace.
"""

from __future__ import annotations

import math
import time
import warnings

from .._checks import caller_stacklevel
from ..presets import PRESETS

__all__ = ["SLOW_FIT_SECONDS", "FitTimer", "SlowFitWarning", "clock"]

#: Fits estimated to take longer than this (seconds) warn up front.
SLOW_FIT_SECONDS = 300.0
# Batches of each kind timed before estimating (after one untimed warm-up batch).
TIMED_BATCHES = 3
# A second warning only if the measured estimate exceeds the first by this factor.
REWARN_FACTOR = 1.5
#: The time source (seconds); tests replace it with a fake clock.
clock = time.perf_counter


class SlowFitWarning(UserWarning):
    """A fit is estimated, from its first measured steps, to take longer than a few minutes.

    The message gives the estimate, what it was measured on, and settings that fit faster.

    Examples
    --------
    >>> import warnings
    >>> from skmsc import SlowFitWarning
    >>> warnings.simplefilter("ignore", SlowFitWarning)  # to silence it
    >>> issubclass(SlowFitWarning, UserWarning)
    True
    """


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class FitTimer:
    """Times a fit's batches and warns when the whole fit will be slow.

    Parameters
    ----------
    n_images : int
        Training images.
    epochs : int
        Fine-tuning epochs planned (``early_stopping`` may end sooner).
    batch_size : int
    early_stopping : bool
        Whether features of every image are extracted after each epoch.
    backbone : str
    image_size : int
    device : torch.device or str
    """

    def __init__(self, *, n_images, epochs, batch_size, early_stopping, backbone, image_size,
                 device):
        after_epochs = epochs * n_images if early_stopping else (n_images if epochs else 0)
        self.planned = {"extract": n_images + after_epochs,
                        "tune": epochs * math.ceil(n_images / batch_size)}
        self.batch_size = batch_size
        self.early_stopping = early_stopping and epochs > 0
        self.settings = dict(backbone=backbone, image_size=image_size, epochs=epochs)
        self.device = str(device)
        self._last = {}  # kind -> clock at the end of its previous batch
        self._seen = {"extract": 0, "tune": 0}  # batches reported, warm-up included
        self._timed = {"extract": [0.0, 0], "tune": [0.0, 0]}  # seconds, units
        self._settled = {"extract": False, "tune": False}
        self._warned_at = None  # the estimate the last warning gave

    def begin(self, kind: str) -> None:
        """A loop of ``kind`` ("extract" or "tune") starts: its next batch is timed from now."""
        self._last[kind] = clock()

    def step(self, kind: str, units: int) -> None:
        """A batch of ``kind`` finished: ``units`` images ("extract") or steps ("tune")."""
        now = clock()
        start = self._last.get(kind, now)
        self._last[kind] = now
        self._seen[kind] += 1
        if self._seen[kind] == 1 or self._settled[kind]:
            return  # the warm-up batch; or this kind is measured already
        self._timed[kind][0] += now - start
        self._timed[kind][1] += units
        if self._seen[kind] == TIMED_BATCHES + 1:
            self._settle(kind)

    def finish(self, kind: str) -> None:
        """A loop of ``kind`` ended: estimate from its timed batches if not done yet."""
        if not self._settled[kind] and self._timed[kind][1]:
            self._settle(kind)

    def rate(self, kind: str) -> float | None:
        """Measured seconds per image ("extract") or per step ("tune"), once measured."""
        seconds, units = self._timed[kind]
        return seconds / units if self._settled[kind] else None

    def _settle(self, kind: str) -> None:
        self._settled[kind] = True
        self._estimate_and_warn()

    def estimate(self) -> tuple[float, bool] | None:
        """(estimated seconds for the whole fit, whether fine-tuning is a lower bound)."""
        per_image = self.rate("extract")
        if per_image is None:
            return None
        per_step = self.rate("tune")
        lower_bound = per_step is None and self.planned["tune"] > 0
        if per_step is None:  # two views forward per image: the least a step costs
            per_step = 2 * self.batch_size * per_image
        total = self.planned["extract"] * per_image + self.planned["tune"] * per_step
        return total, lower_bound

    def _estimate_and_warn(self) -> None:
        found = self.estimate()
        if found is None:
            return
        total, lower_bound = found
        if total <= SLOW_FIT_SECONDS:
            return
        if self._warned_at is not None and total < REWARN_FACTOR * self._warned_at:
            return
        self._warned_at = total
        warnings.warn(self._message(total, lower_bound), SlowFitWarning,
                      stacklevel=caller_stacklevel())

    def _message(self, total: float, lower_bound: bool) -> str:
        per_image, per_step = self.rate("extract"), self.rate("tune")
        measured = [f"{per_image:.3g} s per image for features"]
        if per_step is not None:
            measured.insert(0, f"{per_step:.3g} s per fine-tuning step of "
                            f"{self.batch_size} images")
        about = "at least" if lower_bound else "about"
        sooner = " (less if early stopping ends it sooner)" if self.early_stopping else ""
        return (
            f"This fit will take {about} {_duration(total)} on {self.device}{sooner}: measured "
            f"{' and '.join(measured)} on its first batches, for "
            f"{self.planned['tune']} fine-tuning steps and {self.planned['extract']} feature "
            f"extractions. {self._faster()} Pass verbose=True to see progress."
        )

    def _faster(self) -> str:
        options = []
        on_cpu = self.device.startswith("cpu")
        cpu = PRESETS["cpu"]
        # Not the preset it already runs: advice to use it would change nothing.
        if on_cpu and any(self.settings[k] != cpu[k] for k in self.settings):
            options.append(
                "MeanShiftedContrastiveDetector(**skmsc.presets.preset('cpu')) "
                f"({cpu['backbone']}, {cpu['image_size']} px, {cpu['epochs']} epochs: the "
                "measured CPU setting)")
        if self.settings["backbone"] != "efficientnet_lite0":
            options.append("backbone='efficientnet_lite0'")
        if self.settings["image_size"] > 112:
            options.append("a smaller image_size (e.g. 112)")
        if self.settings["epochs"] > 3:
            options.append("fewer epochs (e.g. 3; epochs=0 is the pretrained-feature "
                           "baseline)")
        if not options:
            return "To go faster: fewer or smaller training images, or a GPU."
        where = "on a CPU" if on_cpu else "here"
        return f"Faster {where}: " + "; or ".join(options) + "."
