"""Run an experiment's arms in this process, one after another (``experiment … `` without
``--background``): each arm is recorded just before it trains, so no queued run waits without a
queue task; a failed arm is marked failed and the next one goes on; a stop of the experiment
(from the board or ``experiment stop``) ends the arm under way and skips the rest."""

from __future__ import annotations

from collections.abc import Callable

from cnnlab.experiments.measure import measure_runs, needs_measuring
from cnnlab.experiments.plan import Arm, Plan
from cnnlab.training.store import RunStore

ArmStart = Callable[[int, Arm, str], None]


def run_arms(
    store: RunStore,
    plan: Plan,
    experiment_id: str,
    *,
    on_arm: ArmStart | None = None,
    on_progress: Callable[[object], None] | None = None,
    on_abandon: Callable[[], None] | None = None,
) -> list[str]:
    """Train every arm of ``plan`` (recorded under ``experiment_id``) here; their run ids.

    After the last arm, every finished arm is measured once (latency, train accuracy).
    """
    # lazy: the training engine (torch, scikit-learn) only for a foreground experiment
    from cnnlab.training import loop
    from cnnlab.training.estimate import estimate_cost

    run_ids: list[str] = []
    for index, arm in enumerate(plan.arms):
        experiment = store.get_experiment(experiment_id)
        if experiment is None or experiment.stop_requested:
            break
        estimate = estimate_cost(arm.config, measure=False)
        run_id = estimate.record(store, arm.config, experiment_id=experiment_id)
        run_ids.append(run_id)
        if on_arm is not None:
            on_arm(index, arm, run_id)
        loop.train(arm.config, store, run_id, on_progress=on_progress, on_abandon=on_abandon)
    runs = store.experiment_runs(experiment_id)
    measure_runs(store, needs_measuring(store, runs))
    return run_ids
