"""`nettrain fit ARGS...`, printing the wall-clock time (time.time()) at which its first
training batch has been trained (forward, loss, backward and update done) as the last line.

    python benchmarks/first_batch.py fit CONFIG [options]

Run by benchmarks/run.py, which notes time.time() before it starts this process: the difference
is the time from command start to the first trained batch, interpreter start included.
"""

from __future__ import annotations

import os
import sys
import time

from nettrain.cli import commands
from nettrain.net import network

first = []
step = network.Network.loss_and_backward


def timed(self, *args, **kwargs):
    result = step(self, *args, **kwargs)
    if not first:
        first.append(time.time())
        if os.environ.get("FIRST_BATCH_EXIT"):  # stop at the first batch: cold-start timing
            print(first[0], flush=True)
            os._exit(0)
    return result


network.Network.loss_and_backward = timed
try:
    commands.cli(args=sys.argv[1:], prog_name="nettrain", standalone_mode=False)
finally:
    print(first[0] if first else "none")
