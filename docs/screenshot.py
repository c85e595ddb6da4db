"""Render pages of the built docs to PNG with headless Chromium, to look at them.

Usage, after ``make docs``::

    python docs/screenshot.py [docs/_build/html] [docs/_build/screenshots]

It shoots the front page, the detector's API page and the digits gallery example, and
prints where the PNGs went. Needs Debian's ``chromium`` package
(``apt-get install chromium``). Chromium is started with everything that could reach the
network switched off; the pages load only local files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGES = {
    "index": "index.html",
    "detector_api": "api/generated/skmsc.MeanShiftedContrastiveDetector.html",
    "gallery_digits": "auto_examples/plot_digits_anomalies.html",
}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(chromium: str, url: str, *options: str, timeout: float = 120) -> bytes:
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", *options, url,
        ]
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"chromium exited with {result.returncode}: {result.stderr.decode()[-2000:]}"
        )
    return result.stdout


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1600) -> Path:
    """Render the local page ``html`` to ``png`` at ``width`` x ``height`` pixels."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("No Chromium found: install Debian's 'chromium' package.")
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(
        chromium, html.resolve().as_uri(),
        f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
    )
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def rendered_dom(html: Path) -> str:
    """The page's DOM after Chromium has loaded it and run its scripts."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("No Chromium found: install Debian's 'chromium' package.")
    return _run_chromium(chromium, html.resolve().as_uri(), "--dump-dom").decode()


def main(argv: list[str]) -> int:
    html_dir = Path(argv[1]) if len(argv) > 1 else DOCS / "_build" / "html"
    out_dir = Path(argv[2]) if len(argv) > 2 else DOCS / "_build" / "screenshots"
    for name, page in PAGES.items():
        png = screenshot(html_dir / page, out_dir / f"{name}.png")
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
