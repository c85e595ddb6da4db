"""Say what installing torch will bring before it is installed: how much, and why.

Run by ``.ci/setup`` with the virtual environment's Python before it installs the pinned
torch. It asks pip for the installation plan (``pip install --dry-run --report``), adds up
the wheels the plan takes from this machine's local package folders, and prints, for
example, how much of it is GPU libraries (CUDA), which a CPU-only machine never loads.
Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

#: Package-name prefixes of the GPU libraries a CUDA build of torch pulls in.
CUDA_PREFIXES = ("nvidia-", "cuda-", "triton")


def _local_size(url: str) -> int | None:
    """Bytes of a ``file://`` wheel, ``None`` for a wheel elsewhere or not found."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    path = urllib.request.url2pathname(parsed.path)
    return os.path.getsize(path) if os.path.isfile(path) else None


def describe(report: dict, requirements: list[str]) -> str:
    """The message for pip's installation ``report`` of ``requirements``."""
    total, cuda, unknown, cuda_names = 0, 0, 0, []
    for item in report.get("install", []):
        name = item["metadata"]["name"].lower()
        size = _local_size(item.get("download_info", {}).get("url", ""))
        if size is None:
            unknown += 1
            continue
        total += size
        if name.startswith(CUDA_PREFIXES):
            cuda += size
            cuda_names.append(name)
    n = len(report.get("install", []))
    text = [f"setup: installing {' '.join(requirements)}: {n} packages, "
            f"{total / 1e9:.1f} GB of wheels" + (f" (and {unknown} of unknown size)"
                                                 if unknown else "")
            + " (more once unpacked into .venv)."]
    if cuda:
        text.append(
            f"setup: {cuda / 1e9:.1f} GB of it is GPU libraries (NVIDIA CUDA, Triton) "
            f"({len(cuda_names)} packages: {', '.join(sorted(cuda_names)[:4])}, ...). Why: "
            "the pinned torch is the release this machine's local package folders serve, "
            "and on x86_64 Linux that release is the CUDA build. skmsc runs it on the CPU "
            "when there is no GPU; the GPU libraries then sit unused on disk. To avoid "
            "them, install a CPU build of torch and torchvision into .venv first (e.g. "
            "from https://download.pytorch.org/whl/cpu, where reachable) and run make "
            "again.")
    return "\n".join(text)


def main(requirements: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "report.json")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
             "--report", path, *requirements],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not os.path.exists(path):
            print(f"setup: installing {' '.join(requirements)} (its size could not be "
                  "worked out beforehand)", file=sys.stderr)
            return 0
        with open(path) as f:
            report = json.load(f)
    print(describe(report, requirements), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
