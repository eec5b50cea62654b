"""Safeguard: a self-hostable child-safety engine."""

import os

# A Safeguard process gets its parallelism from worker processes and threads, not from BLAS: numpy's
# OpenBLAS pool busy-waits and, on a loaded machine, turned a 1 ms PDQ matrix product into 30 ms
# (docs/performance.md). Set before numpy loads; an operator's own values win.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
