"""gradecast: learn a linear model of an exam grade from past cohorts, serve predictions."""

import os

# One BLAS thread per process unless the operator says otherwise: the engine's products are
# small (p + 1 = 4 columns), and idle OpenBLAS threads spinning on the 2 cores made training
# 2-3x slower (bench/train.py). Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
