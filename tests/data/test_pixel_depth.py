"""Decoding: pixel depths, float images, multi-frame files, non-regular files, decode memory.

Issue #16, item 7 (16-bit, 12-in-16-bit and float images decoded without saturating, or
refused clearly; multi-frame files documented) and item 11 (FIFOs refused without
blocking; decoding memory bounded).
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST
from hostile_files import write_png
from PIL import Image

from skmsc import MeanShiftedContrastiveDetector
from skmsc.data.files import ImageFiles, UnreadableImageError, decode_image, find_unreadable

ROOT = Path(__file__).resolve().parents[2]
RAMP = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520


def _saturated(pixels) -> float:
    """Fraction of pixels at the top of their range (255 or 1.0)."""
    top = 255 if pixels.dtype == np.uint8 else 1.0
    return float(np.mean(pixels >= top))


def test_16_bit_grayscale_png_is_scaled_not_saturated(tmp_path):
    """The issue: 99.6 % of a 16-bit PNG's pixels came out at 255, in 5 levels."""
    path = write_png(tmp_path / "gray16.png", RAMP)
    pixels = decode_image(path)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[..., 0], RAMP / 65535, rtol=0, atol=1e-7)
    assert _saturated(pixels) < 0.01 and len(np.unique(pixels)) == 64 * 64


def test_16_bit_tiff_is_scaled_like_the_png(tmp_path):
    Image.fromarray(RAMP).save(tmp_path / "gray16.tif")
    np.testing.assert_array_equal(decode_image(tmp_path / "gray16.tif"),
                                  decode_image(write_png(tmp_path / "gray16.png", RAMP)))


def test_12_bit_data_in_16_bit_files_with_bit_depth(tmp_path):
    """The issue: a 12-bit image in a 16-bit PNG came out 93.8 % saturated."""
    twelve = (RAMP >> 4).astype(np.uint16)  # 0 .. 4095, stored unscaled
    path = write_png(tmp_path / "gray12.png", twelve)
    full_range = decode_image(path)  # what the file type says: dark, but every level kept
    assert full_range.max() <= 4095 / 65535 + 1e-7 and len(np.unique(full_range)) == 4096
    pixels = decode_image(path, bit_depth=12)
    np.testing.assert_allclose(pixels[..., 0], twelve / 4095, rtol=0, atol=1e-7)
    assert _saturated(pixels) < 0.01
    files = ImageFiles([path], bit_depth=12)
    np.testing.assert_array_equal(files.decode(0), pixels)
    with pytest.raises(UnreadableImageError, match=r"outside bit_depth=10 \(0-1023\)"):
        ImageFiles([path], bit_depth=10).decode(0)
    with pytest.raises(ValueError, match="8 bits"):  # 8-bit files have no other depth
        decode_image(write_png(tmp_path / "gray8.png", np.zeros((4, 4), np.uint8)),
                     bit_depth=12)


def test_16_bit_colour_png_keeps_its_levels(tmp_path):
    rgb = np.stack([RAMP, RAMP[::-1], RAMP.T], axis=-1)
    pixels = decode_image(write_png(tmp_path / "rgb16.png", rgb))
    assert pixels.dtype == np.uint8  # Pillow gives 16-bit colour PNGs as 8 bits
    np.testing.assert_array_equal(pixels, (rgb >> 8).astype(np.uint8))


def test_float_tiffs_in_0_1_are_kept_and_others_refused(tmp_path):
    """The issue: a float TIFF in [0, 1] became black."""
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(values).save(tmp_path / "float.tif")
    pixels = decode_image(tmp_path / "float.tif")
    np.testing.assert_array_equal(pixels[..., 1], values)
    for name, bad, match in [("large.tif", values * 255, r"values in \[0.0, 255.0\]"),
                             ("nan.tif", np.where(values > 0.5, np.nan, values), "NaN"),
                             ("negative.tif", values - 0.5, r"\[-0.5")]:
        Image.fromarray(bad.astype(np.float32)).save(tmp_path / name)
        with pytest.raises(ValueError, match=match):
            decode_image(tmp_path / name)


def test_signed_and_32_bit_integer_images_are_refused_unless_in_range(tmp_path):
    Image.fromarray(RAMP.astype(np.int32) - 30000).save(tmp_path / "signed.tif")
    with pytest.raises(ValueError, match="no known scale"):
        decode_image(tmp_path / "signed.tif")
    Image.fromarray(RAMP.astype(np.int32)).save(tmp_path / "int32.tif")  # values fit 16 bits
    np.testing.assert_allclose(decode_image(tmp_path / "int32.tif")[..., 2], RAMP / 65535,
                               atol=1e-7)


def test_multi_frame_files_give_their_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), level) for level in (10, 120, 240)]
    for name in ("anim.gif", "pages.tif"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
        assert Image.open(tmp_path / name).n_frames == 3
        assert np.all(decode_image(tmp_path / name) == 10)
    assert "first frame" in decode_image.__doc__


def test_deep_files_score_as_the_same_pixels_in_an_array(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((10, 24, 24)) * 65535).astype(np.uint16)
    paths = [write_png(tmp_path / f"{i}.png", img) for i, img in enumerate(images)]
    as_float = images.astype(np.float32) / 65535
    det = MeanShiftedContrastiveDetector(**FAST, epochs=1, precision="float32",
                                         early_stopping=False)
    from_files = det.fit(paths).score_samples(paths)
    from_array = MeanShiftedContrastiveDetector(**det.get_params()).fit(as_float)
    np.testing.assert_allclose(from_files, from_array.score_samples(as_float), rtol=1e-5)
    # 8- and 16-bit files of one size fine-tune together (as float in [0, 1]).
    eight = write_png(tmp_path / "eight.png", (images[0] >> 8).astype(np.uint8))
    det.fit([*paths, eight])
    assert np.isfinite(det.offset_)


# ------------------------------------------------------------------ non-regular files
def _finishes(call, timeout=10.0):
    """Run ``call`` in a daemon thread; (finished in time, exception or None)."""
    outcome = {}

    def target():
        try:
            call()
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), outcome.get("error")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "p.png"
    os.mkfifo(path)
    yield path
    # Release a reader still blocked on it (without the fix it waits for a writer forever).
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_a_fifo_is_refused_at_once_not_waited_on(fifo):
    """The issue: decode_image("p.png") on a FIFO hung forever."""
    for call in (lambda: decode_image(fifo), lambda: ImageFiles([fifo]).image_size(0),
                 lambda: ImageFiles([fifo]).decode(0)):
        finished, error = _finishes(call)
        assert finished, "blocked on the FIFO"
        assert isinstance(error, ValueError) and "FIFO" in str(error)
    finished, _ = _finishes(lambda: None)
    assert finished
    assert find_unreadable([fifo])[0][0] == str(fifo)


def test_the_cli_refuses_a_fifo_with_exit_1(fifo, tmp_path, image_folder, capsys):
    from skmsc.cli import main

    model = tmp_path / "model"
    MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal[:4]).save(model)
    codes = []
    finished, error = _finishes(lambda: codes.append(main(["score", str(model), str(fifo)])))
    assert finished, "skmsc score blocked on a FIFO"
    assert error is None and codes == [1] and "FIFO" in capsys.readouterr().err


def test_a_folder_or_device_is_not_an_image(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        decode_image(tmp_path)
    finished, error = _finishes(lambda: decode_image("/dev/zero"))
    assert finished and isinstance(error, ValueError) and "character device" in str(error)


# ------------------------------------------------------------------ decode memory
def test_decoding_threads_share_a_memory_budget(tmp_path, monkeypatch):
    import skmsc.data._decode as decode

    paths = [write_png(tmp_path / f"{i}.png", np.full((200, 300, 3), i, np.uint8))
             for i in range(8)]
    one_image = 200 * 300 * (4 + 3)  # Pillow's RGB copy and the array
    monkeypatch.setattr(decode, "DECODE_MEMORY_BUDGET_BYTES", int(1.5 * one_image))
    active, most = [0], [0]
    real = decode.image_pixels
    lock = threading.Lock()

    def counting(image, bit_depth=None):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.02)
            return real(image, bit_depth)
        finally:
            with lock:
                active[0] -= 1

    import skmsc.data.files as files

    monkeypatch.setattr(files, "image_pixels", counting)
    assert find_unreadable(ImageFiles(paths, n_workers=4)) == []
    assert most[0] == 1  # four threads, but one image fits the budget at a time
    monkeypatch.setattr(decode, "DECODE_MEMORY_BUDGET_BYTES", 100 * one_image)
    most[0] = 0
    assert find_unreadable(ImageFiles(paths, n_workers=4)) == []
    assert most[0] > 1


def test_decoding_a_large_png_peaks_near_its_decoded_size(tmp_path):
    """The issue: one 8000x8000 PNG peaked at 6x its decoded size. Measured here on a
    3000x3000 PNG in a fresh process (benchmarks/reliability.py decode: 8000x8000)."""
    path = tmp_path / "large.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(3000, 3000, 3), dtype=np.uint8)
    # Random pixels do not compress: the file is ~27 MB at any level; level 0 only skips
    # the futile deflate (saving took 1.26 s at level 1, 0.72 s at 0).
    Image.fromarray(pixels).save(path, compress_level=0)
    # VmHWM, reset through clear_refs: ru_maxrss would include the parent's peak.
    code = f"""
from skmsc.data.files import decode_image
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
out = decode_image({str(path)!r})
print((status("VmHWM:") - before) / out.nbytes)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    # Pillow's own RGB copy (4 bytes a pixel) plus the array (3): about 2.4x.
    assert float(done.stdout) < 3.0
