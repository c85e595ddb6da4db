"""The benchmarks of skmsc, run from a checkout as modules: ``python -m benchmarks.<name>``.

Each module is one benchmark (``reproduce``, ``speed``, ``gallery``, ...) with a ``main``;
``_harness`` holds what they share (list arguments, environment record, timing, tables,
result files). Results are written under ``benchmarks/results/`` (``benchmarks/README.md``
says which folder holds what, and which page reads it); ``make_report`` turns the accuracy
runs into ``docs/benchmarks.md``.
"""

import os

# Before torch starts its threads: idle OpenMP workers sleep instead of spinning, which on
# a shared machine otherwise slows every other process (and the measurement itself).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
