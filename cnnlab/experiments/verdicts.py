"""The report's claims, each decided from the experiment's own measurements.

A claim compares two groups of runs on one number (e.g. separable vs regular on test accuracy).
How a verdict is decided (:data:`RULE`): counts (params, MACs) are exact, so any difference in
the claimed direction *holds*. A measured number varies between seeds: the difference of the two
groups' means counts only when it is larger than twice its standard error,
|Δ| > 2·√(s₁²/n₁ + s₂²/n₂) (s: the standard deviation between seeds in each group, n: how many
seeds finished); otherwise the verdict is *within noise*. With one seed per group there is no
spread to judge by: the sign decides and the evidence says "1 seed".
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cnnlab.experiments.results import ArmSummary, ExperimentResults, RunResult
from cnnlab.format import fmt_int

HOLDS, DOES_NOT_HOLD, WITHIN_NOISE, NOT_YET = (
    "holds",
    "does not hold",
    "within noise",
    "not measured yet",
)
VERDICTS = (HOLDS, DOES_NOT_HOLD, WITHIN_NOISE, NOT_YET)
RULE = (
    "Counts (params, MACs) are exact. A measured difference counts only when it is larger than "
    "twice its standard error over seeds, |Δ| > 2·√(s₁²/n₁ + s₂²/n₂) (s: the spread between "
    "seeds of each side); otherwise the verdict is “within noise”. With one seed there is no "
    "spread to judge by and the sign decides (run ≥ 2 seeds)."
)


@dataclass(frozen=True)
class Decision:
    """The verdict on "a is greater than b" (or less), with the numbers behind it."""

    verdict: str
    diff: float
    threshold: float
    seeds_known: bool


@dataclass(frozen=True)
class Claim:
    """One row of the verdict table."""

    claim: str
    verdict: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"claim": self.claim, "verdict": self.verdict, "evidence": self.evidence}


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) >= 2 else 0.0


def decide(
    a: Sequence[float], b: Sequence[float], *, a_greater: bool, exact: bool = False
) -> Decision:
    """Does ``a`` exceed ``b`` (``a_greater``) or fall below it, beyond the noise?

    ``exact``: the numbers have no noise (counts). Empty groups: :data:`NOT_YET`.
    """
    if not a or not b:
        return Decision(NOT_YET, math.nan, math.nan, False)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if exact:
        threshold, known = 0.0, True
    else:
        known = len(a) >= 2 and len(b) >= 2
        threshold = 2 * math.sqrt(_sd(a) ** 2 / len(a) + _sd(b) ** 2 / len(b)) if known else 0.0
    if not exact and known and abs(diff) <= threshold:
        return Decision(WITHIN_NOISE, diff, threshold, known)
    if diff == 0:  # no difference at all: an exact count fails the claim, a measurement ties
        return Decision(DOES_NOT_HOLD if exact else WITHIN_NOISE, diff, threshold, known)
    holds = diff > 0 if a_greater else diff < 0
    return Decision(HOLDS if holds else DOES_NOT_HOLD, diff, threshold, known)


def decide_difference(
    d1: tuple[Sequence[float], Sequence[float]],
    d2: tuple[Sequence[float], Sequence[float]],
) -> Decision:
    """Is (mean d1[0] − mean d1[1]) larger than (mean d2[0] − mean d2[1])? (A lead that shrinks.)"""
    groups = [*d1, *d2]
    if not all(groups):
        return Decision(NOT_YET, math.nan, math.nan, False)
    lead1 = statistics.fmean(d1[0]) - statistics.fmean(d1[1])
    lead2 = statistics.fmean(d2[0]) - statistics.fmean(d2[1])
    diff = lead1 - lead2
    known = all(len(g) >= 2 for g in groups)
    threshold = 2 * math.sqrt(sum(_sd(g) ** 2 / len(g) for g in groups)) if known else 0.0
    if known and abs(diff) <= threshold:
        return Decision(WITHIN_NOISE, diff, threshold, known)
    return Decision(HOLDS if diff > 0 else DOES_NOT_HOLD, diff, threshold, known)


# --- formatting the evidence -------------------------------------------------------------------


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _pt(v: float) -> str:
    return f"{100 * v:+.2f} pt"


def _ms(v: float) -> str:
    return f"{v:.3f} ms" if abs(v) < 10 else f"{v:.1f} ms"


def _rate(v: float) -> str:
    return f"{v:,.0f} img/s"


def _side(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) >= 2:
        return f"{fmt(mean)} ± {fmt(_sd(values)).lstrip('+')} ({len(values)} seeds)"
    return f"{fmt(mean)} (1 seed)"


def _noise_text(d: Decision, fmt: Callable[[float], str]) -> str:
    if d.verdict == NOT_YET:
        return ""
    if not d.seeds_known:
        return f"; Δ = {fmt(d.diff)} (1 seed: spread unknown)"
    return f"; Δ = {fmt(d.diff)}, noise 2·SE = {fmt(d.threshold).lstrip('+')}"


def _values(runs: Sequence[RunResult], metric: str) -> list[float]:
    out = []
    for run in runs:
        if run.finished:
            value = run.value(metric)
            if value is not None and math.isfinite(value):
                out.append(value)
    return out


def _compare(
    claim: str,
    what: str,
    a_name: str,
    a: Sequence[RunResult],
    b_name: str,
    b: Sequence[RunResult],
    metric: str,
    *,
    a_greater: bool,
    fmt: Callable[[float], str],
    diff_fmt: Callable[[float], str] | None = None,
    exact: bool = False,
) -> Claim:
    va, vb = _values(a, metric), _values(b, metric)
    d = decide(va, vb, a_greater=a_greater, exact=exact)
    if d.verdict == NOT_YET:
        return Claim(claim, NOT_YET, f"{what}: waiting for finished runs of both sides")
    if exact:
        ma, mb = statistics.fmean(va), statistics.fmean(vb)
        change = f" ({(ma - mb) / mb:+.1%})" if mb else ""
        evidence = f"{what}: {a_name} {fmt(ma)} vs {b_name} {fmt(mb)}{change}"
    else:
        evidence = f"{what}: {a_name} {_side(va, fmt)} vs {b_name} {_side(vb, fmt)}" + _noise_text(
            d, diff_fmt or fmt
        )
    return Claim(claim, d.verdict, evidence)


# --- the claims of each kind -------------------------------------------------------------------


def _of(results: ExperimentResults, **factors: object) -> list[RunResult]:
    return [r for r in results.runs if all(r.arm.factors.get(k) == v for k, v in factors.items())]


def _size_words(size: object) -> str:
    return "all digits" if size is None else f"{size:,} digits"


def separable_claims(results: ExperimentResults) -> list[Claim]:
    """Part I: the report's pros and cons of regular vs depthwise-separable convolution."""
    sep, reg = _of(results, form="separable"), _of(results, form="regular")
    claims = [
        _compare("Separable convolution cuts the number of parameters", "params",
                 "separable", sep, "regular", reg, "params", a_greater=False,
                 fmt=lambda v: fmt_int(int(v)), exact=True),
        _compare("Separable convolution cuts the computation (regular costs far more)",
                 "MACs per image", "separable", sep, "regular", reg, "macs", a_greater=False,
                 fmt=lambda v: fmt_int(int(v)), exact=True),
        _compare("Separable convolution trains faster", "training speed", "separable", sep,
                 "regular", reg, "images_per_second", a_greater=True, fmt=_rate,
                 diff_fmt=lambda v: f"{v:+,.0f} img/s"),
        _compare("Separable convolution infers faster (one image)", "latency at batch 1",
                 "separable", sep, "regular", reg, "latency_ms", a_greater=False, fmt=_ms,
                 diff_fmt=lambda v: f"{v:+.3f} ms"),
        _compare("Separable convolution infers faster (large batch)",
                 "latency per image in a large batch", "separable", sep, "regular", reg,
                 "batch_ms_per_image", a_greater=False, fmt=_ms,
                 diff_fmt=lambda v: f"{v:+.4f} ms"),
    ]  # fmt: skip
    sizes = list(dict.fromkeys(r.arm.factors.get("train_images") for r in results.runs))
    for size in sizes:
        where = f" ({_size_words(size)})" if len(sizes) > 1 else ""
        claims.append(
            _compare(
                "Regular convolution extracts more features: higher test accuracy; separable "
                f"may perform worse{where}",
                "test accuracy",
                "regular",
                _of(results, form="regular", train_images=size),
                "separable",
                _of(results, form="separable", train_images=size),
                "accuracy",
                a_greater=True,
                fmt=_pct,
                diff_fmt=_pt,
            )
        )
    for size in sizes:
        where = f" ({_size_words(size)})" if len(sizes) > 1 else ""
        claims.append(
            _compare(
                f"Regular convolution overfits more easily: a larger train − test gap{where}",
                "train − test accuracy gap",
                "regular",
                _of(results, form="regular", train_images=size),
                "separable",
                _of(results, form="separable", train_images=size),
                "gap",
                a_greater=True,
                fmt=_pt,
                diff_fmt=_pt,
            )
        )
    known = [s for s in sizes if s is not None]
    if len(known) >= 2:
        small, large = min(known), max(known)

        def side(size: int, form: str) -> list[float]:
            return _values(_of(results, form=form, train_images=size), "accuracy")

        d = decide_difference(
            (side(small, "regular"), side(small, "separable")),
            (side(large, "regular"), side(large, "separable")),
        )
        claim = (
            "Regular convolution suits small datasets: its accuracy lead over separable is "
            f"larger on {_size_words(small)} than on {_size_words(large)}"
        )
        if d.verdict == NOT_YET:
            claims.append(Claim(claim, NOT_YET, "waiting for finished runs at both sizes"))
        else:
            lead_small = statistics.fmean(side(small, "regular")) - statistics.fmean(
                side(small, "separable")
            )
            lead_large = lead_small - d.diff
            claims.append(
                Claim(
                    claim,
                    d.verdict,
                    f"regular − separable test accuracy: {_pt(lead_small)} on "
                    f"{_size_words(small)}, {_pt(lead_large)} on {_size_words(large)}"
                    + _noise_text(d, _pt),
                )
            )
    return claims


_VGG = re.compile(r"vgg\d+")
_MOBILENET = re.compile(r"mobilenet")


def models_claims(results: ExperimentResults) -> list[Claim]:
    """Part III: "MobileNet trains faster than VGG but needs more epochs to reach the same
    accuracy" — when the experiment has a VGG and a MobileNet arm."""
    models = [str(arm.factors.get("model")) for arm in results.arms]
    vgg = next((m for m in models if _VGG.match(m)), None)
    mobile = next((m for m in models if _MOBILENET.match(m)), None)
    claims = []
    if vgg is None or mobile is None:
        return [
            Claim(
                "MobileNet trains faster than VGG but needs more epochs to reach the same accuracy",
                NOT_YET,
                "this claim compares a VGG with a MobileNet: include one of each "
                "(e.g. --models vgg11,mobilenet_v2)",
            )
        ]
    m_runs, v_runs = _of(results, model=mobile), _of(results, model=vgg)
    claims.append(
        _compare(
            f"MobileNet ({mobile}) trains faster than VGG ({vgg})",
            "training speed",
            mobile,
            m_runs,
            vgg,
            v_runs,
            "images_per_second",
            a_greater=True,
            fmt=_rate,
            diff_fmt=lambda v: f"{v:+,.0f} img/s",
        )
    )
    epochs = results.plan.arms[0].config.epochs
    target = results.plan.target_accuracy

    def reached(runs: Sequence[RunResult]) -> list[float]:
        # not reached within the budget: counted as one epoch more than the budget
        return [float(r.epochs_to_target or epochs + 1) for r in runs if r.finished]

    vm, vv = reached(m_runs), reached(v_runs)
    d = decide(vm, vv, a_greater=True)
    claim = f"MobileNet needs more epochs than VGG to reach {_pct(target)} test accuracy"
    if d.verdict == NOT_YET:
        claims.append(Claim(claim, NOT_YET, "waiting for finished runs of both models"))
    else:

        def fmt(v: float) -> str:
            return f"{v:.1f}" if v <= epochs else f">{epochs}"

        claims.append(
            Claim(
                claim,
                d.verdict,
                f"epochs to {_pct(target)}: {mobile} {_side(vm, fmt)} vs {vgg} {_side(vv, fmt)}"
                f" (not reached in {epochs} epochs counts as {epochs + 1})"
                + _noise_text(d, lambda v: f"{v:+.1f}"),
            )
        )
    claims.append(
        _compare(
            f"VGG ({vgg}) ends more accurate than MobileNet ({mobile}) on this budget",
            "test accuracy",
            vgg,
            v_runs,
            mobile,
            m_runs,
            "accuracy",
            a_greater=True,
            fmt=_pct,
            diff_fmt=_pt,
        )
    )
    return claims


def _best_worst(arms: Sequence[ArmSummary]) -> tuple[ArmSummary, ArmSummary] | None:
    scored = [(a.stat("accuracy").mean, a) for a in arms if a.stat("accuracy").mean is not None]
    if len(scored) < 2:
        return None
    scored.sort(key=lambda t: t[0] or 0.0)
    return scored[-1][1], scored[0][1]


def sweep_claims(results: ExperimentResults) -> list[Claim]:
    """A sweep tests no claim of the report; it asks whether the option matters at all."""
    option = results.plan.factor_names[0]
    claim = f"The choice of {option} changes the test accuracy"
    pair = _best_worst(results.arms)
    if pair is None:
        return [Claim(claim, NOT_YET, "waiting for at least two finished arms")]
    best, worst = pair
    row = _compare(claim, "test accuracy", f"best ({best.label})", best.finished,
                   f"worst ({worst.label})", worst.finished, "accuracy", a_greater=True,
                   fmt=_pct, diff_fmt=_pt)  # fmt: skip
    return [row]


def claims_for(results: ExperimentResults) -> list[Claim]:
    """The verdict table of an experiment (its kind decides which claims it tests)."""
    if results.plan.kind == "separable":
        return separable_claims(results)
    if results.plan.kind == "models":
        return models_claims(results)
    return sweep_claims(results)
