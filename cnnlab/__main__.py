"""``python -m cnnlab``."""

import os
import sys

# The worker shares the CPU with the app (and, on a teacher's laptop, with the browsers
# watching). Waiting OpenMP threads must sleep, not spin: with the Train page polling, spinning
# threads made a small-cnn run 4× slower; even a short spin (GOMP_SPINCOUNT=10000) made it
# 2.5-3× slower with three tabs watching than sleeping at once does, which costs ~1.5× only when
# nobody watches (README, Performance). Set before torch is imported; an explicit
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins (a worker host with no browser and no web server trains
# faster with GOMP_SPINCOUNT=10000).
if sys.argv[1:2] == ["worker"] and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from cnnlab.cli import main

raise SystemExit(main())
