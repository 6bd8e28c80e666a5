"""Record an experiment and queue its arms (through the class's fair queue), or stop it.

An experiment is recorded first (its plan is the stored ``spec``), then every arm is queued in
one call to :func:`cnnlab.classroom.fair_queue.submit` — which checks the class limits (an
experiment's arms count as one entry) and queues nothing when it refuses; the experiment is
then deleted again, so a refusal leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.classroom.fair_queue import submit
from cnnlab.classroom.identity import Owner
from cnnlab.errors import UserError
from cnnlab.experiments.plan import Plan
from cnnlab.training.store import RunStore


def record(
    store: RunStore,
    plan: Plan,
    owner: Owner | None = None,
    estimate_seconds: Sequence[float] | None = None,
) -> str:
    """Create the experiment (no runs yet; ``estimate_seconds``: each run's planned time, for
    the board's ETA); return its id."""
    store.require_writable()
    spec = plan.to_spec()
    if estimate_seconds is not None:
        spec["estimate_seconds"] = [round(float(s), 2) for s in estimate_seconds]
    return store.create_experiment(
        plan.kind,
        plan.name,
        spec,
        owner_id=owner.id if owner else None,
        owner_name=owner.name if owner else None,
    )


def queue_plan(
    store: RunStore,
    plan: Plan,
    owner: Owner | None = None,
    estimate_seconds: Sequence[float] | None = None,
) -> tuple[str, list[str]]:
    """Record ``plan`` and queue all its arms for the workers; (experiment id, run ids).

    A refusal (class limits, a run that cannot fit) raises :class:`UserError` and leaves no
    experiment and no queued run behind.
    """
    experiment_id = record(store, plan, owner, estimate_seconds)
    try:
        run_ids = submit([arm.config for arm in plan.arms], store, owner,
                         experiment_id=experiment_id)  # fmt: skip
    except BaseException:
        store.delete_experiment(experiment_id)
        raise
    return experiment_id, run_ids


def stop_experiment(store: RunStore, experiment_id: str) -> int:
    """Stop the whole experiment: flag it and stop every queued or running arm; how many."""
    if store.get_experiment(experiment_id) is None:
        raise UserError(
            f"no experiment with id {experiment_id!r} (see `python -m cnnlab experiment list`)"
        )
    store.request_experiment_stop(experiment_id)
    stopped = 0
    for run in store.experiment_runs(experiment_id):
        if run.active and store.request_stop(run.id):
            stopped += 1
    return stopped


def require_experiment(store: RunStore, experiment_id: str) -> Plan:
    """The plan of an existing experiment (a missing id is one clear line)."""
    experiment = store.get_experiment(experiment_id)
    if experiment is None:
        raise UserError(
            f"no experiment with id {experiment_id!r} (see `python -m cnnlab experiment list`)"
        )
    return Plan.from_spec(experiment.spec)
