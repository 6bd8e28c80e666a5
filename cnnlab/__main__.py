"""``python -m cnnlab``."""

import os
import sys

if sys.argv[1:2] == ["worker"]:
    # The worker shares the CPU with the app. Waiting OpenMP threads must sleep, not spin: with
    # the Train page polling, spinning threads made a small-cnn run 4× slower (README,
    # Performance). Set before torch is imported; an explicit OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cnnlab.cli import main

raise SystemExit(main())
