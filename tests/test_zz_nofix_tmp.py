import functools
import test_engine
from cnnlab.training import loop, watcher
from cnnlab.training.store import RunStore

def test_without_grace():
    loop.Watcher = functools.partial(watcher.Watcher, grace_s=1e9)
    test_engine.test_stop_lands_within_two_seconds_even_in_the_middle_of_a_long_step(RunStore())
