"""The Experiments page's view-models: the launch form's plan and cost, the list of experiments,
and one experiment's board (progress, arms table, scatter plots with the Pareto front, curves,
verdicts, CSV/Markdown) — each from one call, as a frozen dataclass the page lays out.

Plain Python (pandas, plotly): the page only draws; measuring an arm (torch) is a separate call
(:func:`measure_pending`) the page makes once, when the board says arms are waiting for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cnnlab.errors import UserError
from cnnlab.experiments import export
from cnnlab.experiments import plan as plans
from cnnlab.experiments.cost import PlanCost, estimate_plan
from cnnlab.experiments.measure import measure_runs
from cnnlab.experiments.plan import KINDS, Plan
from cnnlab.experiments.results import ArmSummary, ExperimentResults, gather, pareto
from cnnlab.experiments.verdicts import RULE, Claim, claims_for
from cnnlab.format import duration_text, eta_text
from cnnlab.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from cnnlab.training.names import LOSS, TEST_ACCURACY
from cnnlab.training.store import RunStore

PALETTE = (
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
    "#B279A2", "#EECA3B", "#9D755D", "#FF9DA6", "#BAB0AC",
)  # fmt: skip
KIND_TITLES = {
    "separable": "Regular vs separable",
    "models": "Model selection (Part III)",
    "sweep": "Sweep one option",
}
VERDICT_ICONS = {"holds": "✅", "does not hold": "❌", "within noise": "〰️"}


# --- the launch form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FormValues:
    """What the launch form holds (strings where the user types lists)."""

    kind: str = "separable"
    model: str = "small-cnn"
    spec_text: str = ""
    sizes: str = "1000,10000"
    models: str = "vgg11,mobilenet_v2"
    option: str = "lr"
    values: str = "1e-3,3e-3"
    seeds: int = 2
    epochs: int = 1
    batch_size: int = 64
    lr: float = 5e-3
    optimizer: str = "adam"
    schedule: str = "onecycle"
    input_size: int = 28
    train_limit: int | None = None
    target: float = 0.97
    name: str = ""


def form_plan(values: FormValues) -> Plan:
    """The plan the form describes (:class:`UserError`: one line saying what is wrong)."""
    if values.kind not in KINDS:
        raise UserError(f"kind must be one of {', '.join(KINDS)}, got {values.kind!r}")
    base = TrainConfig(
        model=values.model.strip() or "small-cnn",
        input_size=values.input_size,
        epochs=values.epochs,
        batch_size=values.batch_size,
        lr=values.lr,
        optimizer=values.optimizer,
        schedule=values.schedule,
        train_limit=values.train_limit or None,
    )
    if values.kind == "separable":
        spec = None
        if values.spec_text.strip():
            # lazy: the spec reader only when a spec was pasted
            from cnnlab.counting.spec import loads

            spec = loads(values.spec_text).to_dict()
            base = base.with_(model="stack", spec=spec)
        return plans.plan_separable(
            base, spec=spec, sizes=plans.parse_sizes(values.sizes or None), seeds=values.seeds,
            name=values.name, target=values.target,
        )  # fmt: skip
    if values.kind == "models":
        models = plans.parse_list(values.models, "models")
        return plans.plan_models(
            base.with_(model=models[0]), models, seeds=values.seeds, name=values.name,
            target=values.target,
        )  # fmt: skip
    return plans.plan_sweep(
        base, values.option, values.values, seeds=values.seeds, name=values.name,
        target=values.target,
    )  # fmt: skip


@dataclass(frozen=True)
class LaunchView:
    """The form's plan checked and priced: what would run, what it costs, or why not."""

    plan: Plan | None
    cost: PlanCost | None
    error: str | None
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def can_launch(self) -> bool:
        return self.plan is not None and self.cost is not None and not self.cost.refusal


def launch_view(values: FormValues, *, measure: bool = True) -> LaunchView:
    """Check and price the form (measuring each distinct network's speed once)."""
    try:
        plan = form_plan(values)
        cost = estimate_plan(plan, measure=measure)
    except UserError as err:
        return LaunchView(None, None, str(err))
    return LaunchView(plan, cost, None, plan_table(plan, cost))


PRESET_TEXT = (
    f"{plans.PART_ONE.model} in its regular form and with every conv made "
    f"depthwise-separable, on {' and '.join(f'{n:,}' for n in plans.PART_ONE.sizes)} digits, "
    f"{plans.PART_ONE.seeds} seeds, {plans.PART_ONE.epochs} epochs"
)
"""The Part I preset in words (from :data:`cnnlab.experiments.plan.PART_ONE`)."""


def preset_view(measure: bool = True) -> LaunchView:
    """The Part I preset, checked and priced."""
    try:
        plan = plans.part_one()
        cost = estimate_plan(plan, measure=measure)
    except UserError as err:
        return LaunchView(None, None, str(err))
    return LaunchView(plan, cost, None, plan_table(plan, cost))


def plan_table(plan: Plan, cost: PlanCost | None = None) -> pd.DataFrame:
    """One row per run to be queued: arm, seed, training images, epochs, estimated time."""
    rows = []
    for i, arm in enumerate(plan.arms):
        rows.append(
            {
                "arm": arm.label,
                "seed": arm.seed,
                "train images": arm.config.train_limit or "all",
                "epochs": arm.config.epochs,
                "estimate": duration_text(cost.run_seconds[i]) if cost else "—",
            }
        )
    return pd.DataFrame(rows)


def launch(
    store: RunStore, plan: Plan, cost: PlanCost | None, owner: Any = None
) -> tuple[str, list[str]]:
    """Queue the plan (through the class's fair queue); (experiment id, run ids)."""
    # lazy: the queue (huey) only when something is launched
    from cnnlab.experiments.launch import queue_plan

    return queue_plan(store, plan, owner, cost.run_seconds if cost else None)


def stop(store: RunStore, experiment_id: str) -> int:
    """Stop the whole experiment (every queued and running arm); how many runs were stopped."""
    # lazy: the launcher imports the fair queue (huey) only when something is stopped
    from cnnlab.experiments.launch import stop_experiment

    return stop_experiment(store, experiment_id)


# --- the list of experiments -------------------------------------------------------------------


@dataclass(frozen=True)
class ListView:
    table: pd.DataFrame
    ids: tuple[str, ...]
    token: str


def list_view(store: RunStore) -> ListView:
    token = store.change_token()
    rows = []
    for experiment in store.list_experiments():
        try:
            results = gather(store, experiment)
        except UserError:
            continue
        rows.append(
            {
                "name": experiment.name,
                "kind": KIND_TITLES.get(experiment.kind, experiment.kind),
                "progress": f"{results.done} of {results.total}",
                "failed": results.failed,
                "state": _state(results),
                "created": pd.Timestamp(experiment.created, unit="s"),
                "id": experiment.id,
            }
        )
    return ListView(pd.DataFrame(rows), tuple(r["id"] for r in rows), token)


def _state(results: ExperimentResults) -> str:
    if results.experiment.stop_requested:
        return "stopped"
    if results.complete:
        return "done"
    return "running" if any(r.status == "running" for r in results.runs) else "queued"


# --- one experiment's board --------------------------------------------------------------------


def parse_experiment_id(value: object) -> str | None:
    """``?experiment=ID``: the id if it looks like one, else None (the page says so)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 40 or not text.isalnum():
        return None
    return text


@dataclass(frozen=True)
class Board:
    """Everything the board shows for one experiment."""

    experiment_id: str
    name: str
    kind: str
    token: str
    done: int
    total: int
    failed: int
    stopped: bool
    active: bool
    eta: str
    arms: pd.DataFrame
    runs: pd.DataFrame
    claims: pd.DataFrame
    claim_rows: tuple[Claim, ...]
    rule: str
    charts: Mapping[str, go.Figure]
    csv: str
    markdown: str
    json: dict[str, Any]
    errors: tuple[str, ...]
    to_measure: int
    """Finished arms waiting for their one-off latency measurement (:func:`measure_pending`)."""

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def progress_text(self) -> str:
        text = f"{self.done} of {self.total} runs done"
        if self.failed:
            text += f" ({self.failed} failed)"
        if self.stopped:
            text += " — stopped"
        elif self.active and self.eta:
            text += f" · {self.eta} left"
        return text


def board(store: RunStore, experiment_id: str) -> Board:
    """The board of one experiment (:class:`UserError` when there is no such experiment)."""
    token = store.change_token()
    experiment = store.get_experiment(experiment_id)
    if experiment is None:
        raise UserError(f"no experiment with id {experiment_id!r}: it may have been deleted")
    results = gather(store, experiment)
    claims = claims_for(results)
    errors = tuple(
        f"{r.arm.label} · seed {r.arm.seed}: {r.status} — {r.error}"
        for r in results.runs
        if r.status in ("failed", "interrupted") and r.error
    )
    eta = "" if results.eta_seconds is None else eta_text(results.eta_seconds)
    return Board(
        experiment_id=experiment.id,
        name=experiment.name,
        kind=results.plan.kind,
        token=token,
        done=results.done,
        total=results.total,
        failed=results.failed,
        stopped=experiment.stop_requested,
        active=results.active,
        eta=eta,
        arms=arms_frame(results),
        runs=runs_frame(results),
        claims=claims_frame(claims),
        claim_rows=tuple(claims),
        rule=RULE,
        charts=board_charts(store, results),
        csv=export.to_csv(results),
        markdown=export.to_markdown(results, claims),
        json=export.experiment_json(results, claims),
        errors=errors,
        to_measure=len(results.needs_measuring),
    )


def measure_pending(store: RunStore, experiment_id: str) -> int:
    """Measure (once) the finished arms the board is waiting for; how many were measured."""
    experiment = store.get_experiment(experiment_id)
    if experiment is None or store.read_only:
        return 0
    results = gather(store, experiment)
    return measure_runs(store, list(results.needs_measuring))


def arms_frame(results: ExperimentResults) -> pd.DataFrame:
    """The arms table: one row per arm, each number as mean ± spread over its seeds."""
    titles = ["arm", "runs", *(title for _, title, _ in export.ARM_COLUMNS)]
    rows = [dict(zip(titles, export.arm_cells(arm), strict=True)) for arm in results.arms]
    return pd.DataFrame(rows, columns=titles)


def runs_frame(results: ExperimentResults) -> pd.DataFrame:
    rows = []
    for r in results.runs:
        rows.append(
            {
                "arm": r.arm.label,
                "seed": r.arm.seed,
                "status": r.status,
                "progress": r.progress,
                "accuracy": r.accuracy,
                "F1": r.f1,
                "train s": r.train_seconds,
                "run": r.run_id or "",
            }
        )
    return pd.DataFrame(rows)


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": c.claim,
                "verdict": f"{VERDICT_ICONS.get(c.verdict, '⏳')} {c.verdict}",
                "evidence": c.evidence,
            }
            for c in claims
        ],
        columns=["claim", "verdict", "evidence"],
    )


# --- charts ------------------------------------------------------------------------------------


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 1.0, "xanchor": "right"},
        uirevision="keep",
    )
    return fig


def scatter(
    arms: Sequence[ArmSummary], metric: str, title: str, x_title: str, log_x: bool = False
) -> go.Figure:
    """Test accuracy (mean ± sd) against a cost per arm; the Pareto front marked and joined."""
    points = []
    for arm in arms:
        cost, acc = arm.stat(metric), arm.stat("accuracy")
        if cost.mean is not None and acc.mean is not None:
            points.append((arm, cost, acc))
    front = pareto([(c.mean or 0.0, a.mean or 0.0) for _, c, a in points])
    fig = go.Figure()
    for i, (arm, cost, acc) in enumerate(points):
        fig.add_trace(
            go.Scatter(
                x=[cost.mean],
                y=[acc.mean],
                error_x={"type": "data", "array": [cost.sd or 0.0], "visible": bool(cost.sd)},
                error_y={"type": "data", "array": [acc.sd or 0.0], "visible": bool(acc.sd)},
                mode="markers+text",
                text=[arm.label + (" ★" if front[i] else "")],
                textposition="top center",
                name=arm.label,
                marker={
                    "size": 14 if front[i] else 10,
                    "color": PALETTE[i % len(PALETTE)],
                    "symbol": "star" if front[i] else "circle",
                },
            )
        )
    on_front = sorted((c.mean or 0.0, a.mean or 0.0) for (_, c, a), f in zip(points, front,
                      strict=True) if f)  # fmt: skip
    if len(on_front) >= 2:
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in on_front],
                y=[p[1] for p in on_front],
                mode="lines",
                line={"dash": "dot", "color": "#888"},
                name="Pareto front",
            )
        )
    fig.update_yaxes(tickformat=".1%")
    if log_x:
        fig.update_xaxes(type="log")
    return _layout(fig, title, x_title, "test accuracy")


def board_charts(store: RunStore, results: ExperimentResults) -> dict[str, go.Figure]:
    """Accuracy vs params, accuracy vs latency, and every run's curves overlaid."""
    charts = {
        "params": scatter(results.arms, "params", "Test accuracy vs params (★ Pareto front)",
                          "params", log_x=True),
        "latency": scatter(results.arms, "latency_ms",
                           "Test accuracy vs measured latency, batch 1 (★ Pareto front)",
                           "latency (ms)"),
    }  # fmt: skip
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(results.plan.labels)}
    acc, loss = go.Figure(), go.Figure()
    for r in results.runs:
        if r.run_id is None:
            continue
        name = f"{r.arm.label} · seed {r.arm.seed}"
        color = colors[r.arm.label]
        rows = store.metrics(r.run_id, keys=[TEST_ACCURACY, LOSS])
        tests = [m for m in rows if m.key == TEST_ACCURACY]
        losses = [m for m in rows if m.key == LOSS]
        if tests:
            acc.add_trace(go.Scatter(x=[m.epoch for m in tests], y=[m.value for m in tests],
                                     mode="lines+markers", name=name, legendgroup=r.arm.label,
                                     line={"color": color}))  # fmt: skip
        if losses:
            loss.add_trace(go.Scatter(x=[m.epoch for m in losses], y=[m.value for m in losses],
                                      mode="lines", name=name, legendgroup=r.arm.label,
                                      line={"color": color, "width": 1.5}))  # fmt: skip
    acc.update_yaxes(tickformat=".1%")
    charts["accuracy"] = _layout(acc, "Test accuracy per epoch, every run", "epoch", "accuracy")
    charts["loss"] = _layout(loss, "Training loss, every run", "epoch", "loss")
    return charts


FORM_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "kind": KINDS,
                "option": tuple(plans.SWEEP_OPTIONS)}  # fmt: skip
"""The choices of the form's select boxes."""
