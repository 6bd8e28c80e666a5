"""The class's fair queue: every student's run goes through :func:`submit`.

A student (an :class:`~cnnlab.classroom.identity.Owner`) may hold at most K *active entries*
(queued or running; all arms of one experiment are one entry), the queue as a whole at most
``queue_cap`` waiting runs, and each run must fit the class limits
(:mod:`cnnlab.classroom.limits`). A submission that breaks a rule queues nothing and raises a
:class:`UserError` saying why and when there will be room. The limits hold once the class has a
teacher (a password hash is configured, :mod:`cnnlab.classroom.teacher`); before that, on a
student's own laptop, nothing is limited (runs still carry their owner and take turns).

Fairness is round-robin by owner: a student's n-th active entry (n = 0, 1, …) is queued with
priority ``-n``, so everyone's first entry is taken before anyone's second (the queue takes higher
priorities first, FIFO among equals). A run from the CLI (owner None) has no limits and
priority 0, like everyone's first entry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlab.classroom.identity import Owner
from cnnlab.classroom.limits import ClassLimits, load_limits
from cnnlab.classroom.teacher import configured_hash
from cnnlab.errors import UserError
from cnnlab.training.config import TrainConfig
from cnnlab.training.names import ETA_SECONDS, QUEUED, RUNNING
from cnnlab.training.queue import enqueue
from cnnlab.training.store import Run, RunStore

_LOCK = threading.Lock()
"""One submission at a time in this process (the server), so two clicks cannot both pass the
check for the last free slot."""


@dataclass(frozen=True)
class Entry:
    """One active entry of an owner: a single run, or the active arms of one experiment."""

    key: str
    """The run id, or the experiment id for an experiment's arms."""
    runs: tuple[Run, ...]

    @property
    def running(self) -> bool:
        return any(r.status == RUNNING for r in self.runs)

    @property
    def label(self) -> str:
        first = self.runs[0]
        if first.experiment_id is not None:
            return f"experiment {first.experiment_id} ({len(self.runs)} run(s))"
        return f"run {first.name!r}"


def active_runs(store: RunStore) -> list[Run]:
    """Queued and running runs not in the trash, oldest first."""
    runs = store.list_runs(QUEUED) + store.list_runs(RUNNING)
    return sorted(runs, key=lambda r: (r.created, r.id))


def entries_of(runs: Sequence[Run], owner_id: str | None) -> list[Entry]:
    """``owner_id``'s active entries among ``runs`` (oldest first), an experiment's arms as one."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.owner_id == owner_id and run.active:
            groups.setdefault(run.experiment_id or run.id, []).append(run)
    return [Entry(key, tuple(group)) for key, group in groups.items()]


def class_is_limited() -> bool:
    """Whether the class limits apply to browser owners: a teacher password is configured."""
    return configured_hash() is not None


def priority_for(slot: int) -> int:
    """The queue priority of an owner's ``slot``-th active entry (0 for the first)."""
    return -slot


def check_room(
    limits: ClassLimits,
    store: RunStore,
    runs: Sequence[Run],
    owner: Owner,
    new_entries: int,
    new_runs: int,
) -> None:
    """Raise :class:`UserError` when ``owner`` may not add ``new_entries`` entries
    (``new_runs`` runs) now: the per-student cap K or the class queue cap."""
    mine = entries_of(runs, owner.id)
    k = limits.runs_per_student
    if new_entries and len(mine) + new_entries > k:
        raise UserError(
            f"you already have {len(mine)} run(s) or experiment(s) queued or running and this"
            f" class allows {k} per student: there will be room when {_first_to_end(store, mine)}"
            " ends (or stop one on the Runs page)"
        )
    waiting = sum(1 for r in runs if r.status == QUEUED)
    cap = limits.queue_cap
    if cap is not None and waiting + new_runs > cap:
        running = sum(1 for r in runs if r.status == RUNNING)
        raise UserError(
            f"the class queue is full ({waiting} run(s) waiting, the limit is {cap}):"
            f" there will be room as soon as the next run starts ({running} running now);"
            " try again in a minute"
        )


def _first_to_end(store: RunStore, entries: Sequence[Entry]) -> str:
    """Words for the entry likely to end first: a running one with its time left, if known."""
    running = [e for e in entries if e.running]
    if not running:
        return f"your {entries[0].label} starts and finishes" if entries else "a run"
    best, best_eta = running[0], None
    for entry in running:
        for run in entry.runs:
            eta = store.final_metrics(run.id).get(ETA_SECONDS) if run.status == RUNNING else None
            if eta is not None and (best_eta is None or eta < best_eta):
                best, best_eta = entry, eta
    if best_eta is None:
        return f"your {best.label} (running now)"
    return f"your {best.label} (about {_minutes(best_eta)} left)"


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def submit(
    configs: Sequence[TrainConfig],
    store: RunStore,
    owner: Owner | None,
    *,
    experiment_id: str | None = None,
    limited: bool | None = None,
) -> list[str]:
    """Queue ``configs`` for ``owner`` (None: the CLI, no limits) and return their run ids.

    ``limited``: whether the class limits apply to ``owner`` (default: when the class has a
    teacher, :func:`class_is_limited`).

    With ``experiment_id`` the configs are the arms of that experiment and count as one entry
    (none more if the experiment is already active). Otherwise each config is one entry.
    Everything is checked first (config, class limits, K, queue cap); a :class:`UserError`
    queues nothing.
    """
    configs = list(configs)
    if not configs:
        raise UserError("nothing to queue: no training config given")
    for config in configs:
        config.check_model()  # a bad config fails before anything is queued
    store.require_writable()
    if owner is None:
        return _enqueue_all(configs, store, None, experiment_id, [0] * len(configs))
    limited = class_is_limited() if limited is None else limited
    with _LOCK:
        limits = load_limits(store)
        if limited:
            for config in configs:
                limits.check_config(config)
        runs = active_runs(store)
        mine = entries_of(runs, owner.id)
        if experiment_id is not None:
            already = any(e.key == experiment_id for e in mine)
            new_entries = 0 if already else 1
            slot = next((i for i, e in enumerate(mine) if e.key == experiment_id), len(mine))
            # arms of one entry still take turns with the other students' entries
            priorities = [priority_for(slot + j) for j in range(len(configs))]
        else:
            new_entries = len(configs)
            priorities = [priority_for(len(mine) + j) for j in range(len(configs))]
        if limited:
            check_room(limits, store, runs, owner, new_entries, len(configs))
        return _enqueue_all(configs, store, owner, experiment_id, priorities)


def _enqueue_all(
    configs: Sequence[TrainConfig],
    store: RunStore,
    owner: Owner | None,
    experiment_id: str | None,
    priorities: Sequence[int],
) -> list[str]:
    """Enqueue each config; if one fails, cancel those already queued and re-raise."""
    ids: list[str] = []
    try:
        for config, priority in zip(configs, priorities, strict=True):
            ids.append(
                enqueue(
                    config,
                    store,
                    owner_id=owner.id if owner else None,
                    owner_name=owner.name if owner else None,
                    experiment_id=experiment_id,
                    priority=priority,
                )
            )
    except BaseException:
        for run_id in ids:
            store.cancel(run_id)
        raise
    return ids


@dataclass(frozen=True)
class Standing:
    """Where an owner stands: their active entries against K, the queue against its cap."""

    entries: int
    runs_per_student: int
    waiting: int
    queue_cap: int | None

    @property
    def has_room(self) -> bool:
        full = self.queue_cap is not None and self.waiting >= self.queue_cap
        return self.entries < self.runs_per_student and not full


def standing(store: RunStore, owner: Owner) -> Standing:
    """``owner``'s standing now (for the Train page to say before the click)."""
    limits = load_limits(store)
    runs = active_runs(store)
    waiting = sum(1 for r in runs if r.status == QUEUED)
    return Standing(
        len(entries_of(runs, owner.id)), limits.runs_per_student, waiting, limits.queue_cap
    )
