"""``python -m cnnlab``."""

import os
import sys

# The worker shares the CPU with the app (and, on a teacher's laptop, with the browsers
# watching). Its waiting OpenMP threads spin briefly, then sleep (GOMP_SPINCOUNT=10000, not
# libgomp's 300,000): measured with the polled live section (README, Performance), a small-cnn
# run trained 1.3-1.6x faster unwatched and 1.1-1.9x faster with one or three tabs watching than
# with threads that sleep at once (OMP_WAIT_POLICY=PASSIVE, this worker's default until the live
# charts stopped costing the browsers most of a core), and a class of 10 on the server saw the
# same page times. Set before torch is imported; an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT
# wins.
if sys.argv[1:2] == ["worker"] and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
    os.environ["GOMP_SPINCOUNT"] = "10000"

from cnnlab.cli import main

raise SystemExit(main())
