"""Background training: a Huey queue and its consumer.

The queue is SQLite (``CNNLAB_HOME/queue.db``, one machine) unless ``CNNLAB_QUEUE_URL`` names a
Redis server (``redis://host:port/db``): then it is Huey's ``PriorityRedisHuey`` there, and
``python -m cnnlab worker`` on any machine with the same two URLs (queue and
``CNNLAB_STORE_URL``) takes runs from it.

``enqueue(config)`` validates a run, records it as ``queued`` in the run store (with params and
MACs) and puts its id on the queue; ``run_consumer()`` (``python -m cnnlab worker``) runs
queued trainings in separate worker processes (``CNNLAB_WORKERS``, default 1). The queue holds
only run ids: the config lives in the run store, and no training logic lives here.

Liveness, so no run stays ``running`` forever:

- the consumer reaps orphans on start and every few seconds (:meth:`RunStore.reap_orphans`:
  a running run whose worker process is gone, or whose heartbeat stopped, → ``interrupted``);
- its main loop writes a worker heartbeat every 2 s, so pages can say "no worker running";
- SIGTERM interrupts running trainings at once (they end ``interrupted``); SIGINT (Ctrl-C)
  waits up to 5 s for them, then does the same;
- on Linux a worker process whose consumer dies (even by SIGKILL) interrupts its training and
  exits (``PR_SET_PDEATHSIG``) instead of running on unsupervised;
- a stop that the loop cannot honour within a second (one step of VGG-16 at 224 on a CPU takes
  ~12 s) is recorded by the run's watcher, and the worker process ends there
  (:func:`_end_abandoned_run`); Huey's health check starts a fresh worker for the next run.

Each worker process warms up when it starts (:func:`_warm_worker`: torch and scikit-learn
imported, MNIST decoded, one tiny step run), so a queued run shows its first point within a
fraction of a second instead of after the imports.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey, TaskWrapper
from huey.consumer import Consumer

from cnnlab.errors import UserError
from cnnlab.paths import home
from cnnlab.training.config import TrainConfig
from cnnlab.training.names import FAILED, QUEUED, RUNNING
from cnnlab.training.store import RunStore, this_host
from cnnlab.training.storedb import STORE_URL_ENV, mask_url

log = logging.getLogger("cnnlab.training.queue")

WORKER_HEARTBEAT_S = 2.0
REAP_EVERY_S = 5.0
LOST_TASK_GRACE_S = 20.0
"""A queued run whose task has been missing from the queue this long is taken for lost."""
MAX_WORKERS = 32

QUEUE_URL_ENV = "CNNLAB_QUEUE_URL"
REDIS_TIMEOUT_S = 5.0

_instances: dict[str, tuple[Huey, TaskWrapper]] = {}


def queue_path() -> Path:
    return home() / "queue.db"


def queue_url() -> str | None:
    """``CNNLAB_QUEUE_URL`` checked (``redis://`` or ``rediss://``), None when unset."""
    url = os.environ.get(QUEUE_URL_ENV) or None
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        raise UserError(
            f"{QUEUE_URL_ENV} {mask_url(url)!r}: unsupported scheme {scheme or url!r} (use "
            "redis://host:6379/0, or leave it unset for the SQLite queue in CNNLAB_HOME)"
        )
    return url


def queue_location() -> str:
    """For messages: the queue's file, or its Redis URL without the password."""
    url = queue_url()
    return str(queue_path()) if url is None else mask_url(url)


def check_shared_setup() -> None:
    """A shared store needs a shared queue: with ``CNNLAB_STORE_URL`` set and no
    ``CNNLAB_QUEUE_URL``, each machine would have its own queue (and take the others' queued
    runs for lost)."""
    if os.environ.get(STORE_URL_ENV) and queue_url() is None:
        raise UserError(
            f"{STORE_URL_ENV} is a shared store but {QUEUE_URL_ENV} is unset: set it to the "
            "same redis://host:port/db on every machine"
        )


def get_huey(path: Path | None = None) -> Huey:
    """The Huey instance: ``path`` (a SQLite queue file), else ``CNNLAB_QUEUE_URL``'s Redis,
    else ``CNNLAB_HOME/queue.db`` (one per place, made on first use)."""
    return _instance(path)[0]


def _instance(path: Path | None = None) -> tuple[Huey, TaskWrapper]:
    url = None if path is not None else queue_url()
    key = url if url is not None else str((path or queue_path()).resolve())
    if key not in _instances:
        huey: Huey = _redis_huey(url) if url is not None else _sqlite_huey(Path(key))
        task = huey.task(name="run_training")(_run_training)
        _instances[key] = (huey, task)
    return _instances[key]


def _sqlite_huey(path: Path) -> SqliteHuey:
    try:
        return SqliteHuey(name="cnnlab", filename=str(path), results=False, timeout=15)
    except Exception as err:  # sqlite3 errors: read-only folder, disk full, …
        raise UserError(f"cannot open the training queue {path}: {err}") from None


def _redis_huey(url: str) -> PriorityRedisHuey:
    """``PriorityRedisHuey`` on ``url`` (priorities as on SQLite), checked with a PING so a bad
    URL is one clear error before anything is queued."""
    import redis  # only for a Redis queue

    where = mask_url(url)
    try:
        pool = redis.ConnectionPool.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S + 5
        )
        huey = PriorityRedisHuey(name="cnnlab", connection_pool=pool, results=False)
        huey.storage.conn.ping()
    except (redis.RedisError, ValueError, OSError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        wrong = any(word in text.lower() for word in ("auth", "password"))
        hint = " (check the password in the URL)" if wrong else ""
        raise UserError(f"cannot reach the training queue {where}: {text}{hint}") from None
    return huey


def __getattr__(name: str) -> Any:
    """``cnnlab.training.queue.huey``: the instance for the current ``CNNLAB_HOME``."""
    if name == "huey":
        return get_huey()
    raise AttributeError(name)


# --- the task -----------------------------------------------------------------------------------


def run_training(run_id: str) -> str:
    """Train a queued run in this process (what a worker does); returns its final status.

    Skips a run that is no longer queued (cancelled or deleted); never leaves it ``running``.
    """
    return _run_training(run_id)


_worker_state = {"in_task": False, "orphaned": False}


def _on_parent_death(signum: int, frame: Any) -> None:
    """In a worker process whose consumer died: interrupt the training, then exit."""
    _worker_state["orphaned"] = True
    if _worker_state["in_task"]:
        raise KeyboardInterrupt  # the engine marks the run interrupted; then we exit
    os._exit(0)


def _warm_worker() -> None:
    """At worker start, before it takes a run: import the engine (torch, scikit-learn), decode
    MNIST into this process's cache and run one tiny training step — a queued run then starts
    training at once instead of spending seconds on imports (issue 14)."""
    start = time.perf_counter()
    try:
        from cnnlab.training import loop  # lazy: torch in the forked worker, not in the consumer

        loop.warm_up()
    except Exception as err:  # a missing dataset etc.: the run itself will say so
        log.warning("worker process %d: warm-up skipped (%s)", os.getpid(), err)
        return
    log.info("worker process %d warm in %.1f s", os.getpid(), time.perf_counter() - start)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGUSR1 when the consumer process dies (even by SIGKILL), so no worker
    keeps training — or polling the queue — without it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        signal.signal(signal.SIGUSR1, _on_parent_death)
        libc.prctl(1, signal.SIGUSR1)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ValueError):
        return
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(0)


def _run_training(run_id: str) -> str:
    _worker_state["in_task"] = True
    try:
        return _train_queued(run_id)
    finally:
        _worker_state["in_task"] = False
        if _worker_state["orphaned"]:
            os._exit(1)


def _train_queued(run_id: str) -> str:
    store = RunStore()
    run = store.get_run(run_id)
    if run is None or run.status != QUEUED:
        log.info("run %s: skipped (%s)", run_id, "deleted" if run is None else run.status)
        return "skipped"
    log.info("run %s: training %s", run_id, run.model)
    try:
        from cnnlab.training import loop  # torch: in the forked worker, not in the consumer

        config = TrainConfig.from_dict(run.config)
        result = loop.train(config, store, run_id, on_abandon=lambda: _end_abandoned_run(run_id))
    except Exception as err:  # the engine records its own failures; this catches the rest
        log.exception("run %s failed", run_id)
        again = store.get_run(run_id)
        if again is not None and again.status in (QUEUED, RUNNING):
            store.finish_run(run_id, FAILED, f"{type(err).__name__}: {err}"[:500])
        return FAILED
    log.info("run %s: %s", run_id, result.status)
    return result.status


def _end_abandoned_run(run_id: str) -> None:
    """The watcher recorded the run stopped mid-step: end this worker process now (Huey's
    consumer replaces it within a couple of seconds) instead of finishing a long step."""
    log.info("run %s: stopped mid-step; this worker process ends and is replaced", run_id)
    logging.shutdown()
    os._exit(0)


# --- producer -----------------------------------------------------------------------------------


def enqueue(
    config: TrainConfig,
    store: RunStore | None = None,
    *,
    owner_id: str | None = None,
    owner_name: str | None = None,
    experiment_id: str | None = None,
    priority: int = 0,
) -> str:
    """Validate ``config``, record the run as queued (params, MACs, owner, experiment), queue
    it; return its id. A task with a higher ``priority`` is taken first (Huey's priorities).

    Raises :class:`UserError` for a bad config or a run that cannot fit in memory.
    """
    from cnnlab.training.estimate import estimate_cost  # torch: not for the consumer or --help

    check_shared_setup()
    store = store or RunStore()
    estimate = estimate_cost(config, measure=False)  # validates; counts on the meta device
    task = _instance()[1]  # an unreachable queue fails here, before the run is recorded
    run_id = estimate.record(
        store, config, owner_id=owner_id, owner_name=owner_name, experiment_id=experiment_id
    )
    try:
        task(run_id, priority=priority)
    except Exception as err:
        store.finish_run(run_id, FAILED, f"could not queue the run: {err}")
        raise UserError(f"could not queue the run: {err}") from None
    return run_id


# --- lost tasks ---------------------------------------------------------------------------------


def queued_task_ids(huey: Huey) -> set[str]:
    """The run ids whose task still waits in ``huey``'s queue (pending or scheduled)."""
    ids: set[str] = set()
    for task in [*huey.pending(), *huey.scheduled()]:
        args = getattr(task, "args", None) or ()
        if args:
            ids.add(str(args[0]))
    return ids


class LostTaskReaper:
    """Finds queued runs whose queue task is gone (a worker took it and died before marking
    the run running) and marks them ``interrupted`` (:data:`store.LOST_TASK_TEXT`).

    A run counts as lost once it has been seen queued with no task in the queue for
    ``grace_s`` in a row: a worker that has just taken the task marks the run running within
    that time, and a run being enqueued gets its task within milliseconds.
    """

    def __init__(self, store: RunStore, huey: Huey, grace_s: float = LOST_TASK_GRACE_S):
        self.store, self.huey, self.grace_s = store, huey, grace_s
        self._missing_since: dict[str, float] = {}

    def check(self, now: float | None = None) -> list[str]:
        """One pass; returns the ids marked interrupted now."""
        now = time.monotonic() if now is None else now
        queued = {run.id for run in self.store.list_runs(QUEUED)}
        if not queued:
            self._missing_since.clear()
            return []
        waiting = queued_task_ids(self.huey)
        missing = queued - waiting
        self._missing_since = {run_id: self._missing_since.get(run_id, now) for run_id in missing}
        lost = [r for r, since in self._missing_since.items() if now - since >= self.grace_s]
        done = self.store.interrupt_lost_queued(lost)
        for run_id in lost:
            self._missing_since.pop(run_id, None)
        return done


# --- consumer -----------------------------------------------------------------------------------


class _Consumer(Consumer):
    """Huey's consumer plus, in its main loop: a worker heartbeat and orphan reaping."""

    def __init__(self, huey: Huey, store: RunStore, **kwargs: Any) -> None:
        super().__init__(huey, **kwargs)
        self.store = store
        parent, init_child = os.getpid(), self.environment.init_child

        def init_worker(process: Any) -> None:
            init_child(process)
            _die_with_parent(parent)
            _warm_worker()

        self.environment.init_child = init_worker
        self._last_beat = 0.0
        self._last_reap = 0.0
        self.lost_tasks = LostTaskReaper(store, huey)

    def loop(self, health_check_ts: float | None = None) -> float | None:
        now = time.monotonic()
        if now - self._last_beat >= WORKER_HEARTBEAT_S:
            self._last_beat = now
            try:
                self.store.worker_heartbeat(os.getpid())
            except UserError as err:
                self._logger.warning("heartbeat failed: %s", err)
        if now - self._last_reap >= REAP_EVERY_S:
            self._last_reap = now
            try:
                for run_id in self.store.reap_orphans():
                    self._logger.warning("run %s: interrupted (its worker is gone)", run_id)
                for run_id in self.lost_tasks.check():
                    self._logger.warning("run %s: interrupted (its queue task was lost)", run_id)
            except Exception as err:  # store (UserError) or queue (sqlite3) trouble: retry later
                self._logger.warning("reaping failed: %s", err)
        return super().loop(health_check_ts)


def default_workers() -> int:
    raw = os.environ.get("CNNLAB_WORKERS") or "1"
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"CNNLAB_WORKERS must be a whole number, got {raw!r}") from None


def run_consumer(workers: int | None = None) -> None:
    """Run the consumer with ``workers`` process workers until SIGINT/SIGTERM."""
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"workers must be between 1 and {MAX_WORKERS}, got {workers}")
    check_shared_setup()
    store = RunStore()
    store.require_writable()  # a worker must record its runs
    huey = get_huey()  # an unreachable queue: one clear error before anything starts
    os.environ["CNNLAB_WORKERS"] = str(workers)  # the engine divides the CPU cores among them
    for run_id in store.reap_orphans():
        log.warning("run %s: interrupted (its worker is gone)", run_id)
    consumer = _Consumer(
        huey,
        store,
        workers=workers,
        worker_type="process",
        periodic=False,
        initial_delay=0.1,
        backoff=1.15,
        max_delay=0.5,  # a queued run starts within half a second
        check_worker_health=True,
        health_check_interval=2,
        shutdown_timeout=5,
    )
    log.info(
        "cnnlab worker on %s: %d process worker(s), queue %s, store %s",
        this_host(), workers, queue_location(), store.location,
    )  # fmt: skip
    try:
        consumer.run()
    finally:
        try:
            store.worker_gone(os.getpid())
            store.reap_orphans()
        except UserError:
            pass


def pending() -> int:
    """How many tasks wait in the queue (not yet picked up by a worker)."""
    return int(get_huey().pending_count())
