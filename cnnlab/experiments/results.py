"""An experiment's numbers: one row per run, arms as mean ± spread over seeds, progress, Pareto.

Everything is read from the run store: params and MACs as recorded at queue time (the analysis
engine's, as ``cnnlab profile`` counts them), the final test metrics, the per-epoch test
accuracy, the training time and speed, and the one-off measurement of
:mod:`cnnlab.experiments.measure` (latency, train-subset accuracy → the overfitting gap).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.experiments.measure import MEASURE, needs_measuring
from cnnlab.experiments.plan import Arm, Plan
from cnnlab.training.names import (
    ACCURACY,
    ETA_SECONDS,
    F1,
    FAILED,
    FINISHED,
    INTERRUPTED,
    MEAN_IMAGES_PER_SECOND,
    PROGRESS,
    QUEUED,
    RUNNING,
    STOPPED,
    SUMMARY,
    TEST_ACCURACY,
    TOTAL_SECONDS,
    TRAIN_SECONDS,
)
from cnnlab.training.store import Experiment, Run, RunStore

NOT_STARTED = "not started"
SKIPPED = "skipped"
"""An arm of a stopped experiment that never got a run."""

METRICS = {
    "params": "params",
    "macs": "MACs/image",
    "accuracy": "test accuracy",
    "f1": "macro F1",
    "train_seconds": "training time (s)",
    "images_per_second": "training images/s",
    "latency_ms": "latency, batch 1 (ms)",
    "batch_ms_per_image": "latency per image, large batch (ms)",
    "train_accuracy": "train accuracy",
    "gap": "train − test gap",
    "epochs_to_target": "epochs to target",
}
"""The numbers of a run, with their column names."""


@dataclass(frozen=True)
class RunResult:
    """One run (arm × seed): its status and numbers (None where not known yet)."""

    arm: Arm
    run_id: str | None
    status: str
    error: str | None = None
    params: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    f1: float | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    images_per_second: float | None = None
    latency_ms: float | None = None
    batch_ms_per_image: float | None = None
    train_accuracy: float | None = None
    gap: float | None = None
    epoch_accuracy: tuple[float, ...] = ()
    epochs_to_target: int | None = None
    progress: float = 0.0
    eta_seconds: float | None = None
    train_images: int | None = None
    """Digits it trained on (the run's summary; before it ends, its train limit)."""

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def over(self) -> bool:
        return self.status in (FINISHED, FAILED, STOPPED, INTERRUPTED, SKIPPED)

    def value(self, metric: str) -> float | None:
        value = getattr(self, metric)
        return None if value is None else float(value)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one number over an arm's finished seeds."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    def text(self, fmt: Callable[[float], str]) -> str:
        if self.mean is None:
            return "—"
        if self.sd is None or self.sd == 0:  # one seed, or an exact count
            return fmt(self.mean)
        return f"{fmt(self.mean)} ± {fmt(self.sd).lstrip('+')}"


@dataclass(frozen=True)
class ArmSummary:
    """One arm (a factor combination) over its seeds."""

    label: str
    factors: dict[str, Any]
    runs: tuple[RunResult, ...]

    @property
    def finished(self) -> tuple[RunResult, ...]:
        return tuple(r for r in self.runs if r.finished)

    @property
    def status(self) -> str:
        """``finished`` (every seed), ``failed`` (a seed failed), ``running``, ``queued``, …"""
        statuses = {r.status for r in self.runs}
        if statuses == {FINISHED}:
            return FINISHED
        for status in (FAILED, INTERRUPTED, RUNNING, QUEUED, STOPPED, SKIPPED, NOT_STARTED):
            if status in statuses:
                return status
        return next(iter(statuses))

    def stat(self, metric: str) -> Stat:
        values = [r.value(metric) for r in self.finished]
        return Stat(tuple(v for v in values if v is not None and math.isfinite(v)))


@dataclass(frozen=True)
class ExperimentResults:
    """Everything known about one experiment now."""

    experiment: Experiment
    plan: Plan
    runs: tuple[RunResult, ...]
    arms: tuple[ArmSummary, ...]
    eta_seconds: float | None
    needs_measuring: tuple[Run, ...] = ()

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def done(self) -> int:
        return sum(1 for r in self.runs if r.over)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.status in (FAILED, INTERRUPTED))

    @property
    def active(self) -> bool:
        return any(r.status in (QUEUED, RUNNING) for r in self.runs)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def factor_key(self) -> str:
        """The JSON key of an arm's factor: ``form``, ``model`` or the swept option."""
        return self.plan.factor_names[0]


def _epochs_to_target(curve: Sequence[float], target: float) -> int | None:
    for epoch, accuracy in enumerate(curve, start=1):
        if accuracy >= target:
            return epoch
    return None


def run_result(store: RunStore, arm: Arm, run: Run | None, target: float) -> RunResult:
    """The numbers of ``run`` (None: the arm has no run yet)."""
    if run is None:
        return RunResult(arm, None, NOT_STARTED, train_images=arm.config.train_limit)
    final = store.final_metrics(run.id) if run.status != QUEUED else {}
    curve = tuple(m.value for m in store.metrics(run.id, keys=[TEST_ACCURACY]))
    measured = store.get_artifact(run.id, MEASURE) if run.status == FINISHED else None
    data = measured.data if measured is not None and isinstance(measured.data, dict) else {}
    accuracy = final.get(ACCURACY) if run.status == FINISHED else None
    train_accuracy = data.get("train_accuracy")
    gap = train_accuracy - accuracy if train_accuracy is not None and accuracy is not None else None
    progress = 1.0 if run.status == FINISHED else float(final.get(PROGRESS, 0.0))
    summary = store.get_artifact(run.id, SUMMARY) if run.status == FINISHED else None
    trained = (
        summary.data.get("train_images") if summary and isinstance(summary.data, dict) else None
    )
    return RunResult(
        arm=arm,
        run_id=run.id,
        status=run.status,
        error=run.error,
        params=run.params,
        macs=run.macs,
        accuracy=accuracy,
        f1=final.get(F1) if run.status == FINISHED else None,
        train_seconds=final.get(TRAIN_SECONDS),
        total_seconds=final.get(TOTAL_SECONDS),
        images_per_second=final.get(MEAN_IMAGES_PER_SECOND),
        latency_ms=data.get("latency_ms"),
        batch_ms_per_image=data.get("batch_ms_per_image"),
        train_accuracy=train_accuracy,
        gap=gap,
        epoch_accuracy=curve,
        epochs_to_target=_epochs_to_target(curve, target) if run.status == FINISHED else None,
        progress=progress,
        eta_seconds=final.get(ETA_SECONDS) if run.status == RUNNING else None,
        train_images=int(trained) if isinstance(trained, int) else arm.config.train_limit,
    )


def match_runs(plan: Plan, runs: Sequence[Run]) -> list[Run | None]:
    """Each arm's run (by its exact config; the newest if there are several), or None."""
    by_config: dict[str, Run] = {}
    for run in runs:  # oldest first: a later run with the same config wins
        by_config[_config_key(run.config)] = run
    return [by_config.get(_config_key(arm.config.to_dict())) for arm in plan.arms]


def _config_key(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))


def gather(store: RunStore, experiment: Experiment) -> ExperimentResults:
    """Read the experiment's runs and numbers from the store (no measuring here)."""
    plan = Plan.from_spec(experiment.spec)
    stored = store.experiment_runs(experiment.id)
    matched = match_runs(plan, stored)
    results = []
    for arm, run in zip(plan.arms, matched, strict=True):
        result = run_result(store, arm, run, plan.target_accuracy)
        if run is None and experiment.stop_requested:
            result = RunResult(arm, None, SKIPPED)
        results.append(result)
    arms = []
    for label in plan.labels:
        group = tuple(r for r in results if r.arm.label == label)
        arms.append(ArmSummary(label, dict(group[0].arm.factors), group))
    eta = _eta(results, experiment.spec.get("estimate_seconds"))
    todo = needs_measuring(store, [r for r in stored if r in matched])
    return ExperimentResults(experiment, plan, tuple(results), tuple(arms), eta, tuple(todo))


def _eta(results: Sequence[RunResult], estimates: Any) -> float | None:
    """Seconds left (one worker): the running runs' own ETAs plus the planned time of the runs
    not started, scaled by how the finished runs compared with their plan."""
    if all(r.over for r in results):
        return 0.0
    planned = list(estimates) if isinstance(estimates, list) else []
    if len(planned) != len(results):
        planned = []
    scale, spent, guessed = 1.0, 0.0, 0.0
    for i, r in enumerate(results):
        if r.finished and r.total_seconds and planned:
            spent += r.total_seconds
            guessed += float(planned[i])
    if guessed > 0:
        scale = spent / guessed
    left = 0.0
    for i, r in enumerate(results):
        if r.status == RUNNING:
            left += r.eta_seconds or 0.0
        elif r.status in (QUEUED, NOT_STARTED):
            if not planned:
                return None
            left += float(planned[i]) * scale
    return left


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which (cost, accuracy) points are Pareto-optimal: no other point costs no more and is at
    least as accurate, and better in one of the two."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(
            c <= cost and a >= acc and (c < cost or a > acc)
            for j, (c, a) in enumerate(points)
            if j != i
        )
        front.append(not dominated)
    return front


def arm_json(results: ExperimentResults, run: RunResult) -> dict[str, Any]:
    """One run as the issue's JSON object names it."""
    key = results.factor_key()
    factor = run.arm.factors.get(key)
    return {
        key: factor,
        "train_images": run.train_images,
        "seed": run.arm.seed,
        "run_id": run.run_id,
        "status": run.status,
        "params": run.params,
        "macs": run.macs,
        "accuracy": run.accuracy,
        "f1": run.f1,
        "train_seconds": None if run.train_seconds is None else round(run.train_seconds, 3),
        "latency_ms": None if run.latency_ms is None else round(run.latency_ms, 4),
        "gap": None if run.gap is None else round(run.gap, 6),
    }
