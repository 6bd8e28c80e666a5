"""The training engine: one readable loop from MNIST tensors to a finished, recorded run.

``train(config, store, run_id)`` reads top to bottom like nanoGPT's ``train.py``:

1. claim the run in the store, start a watcher thread (stop flag + heartbeat, every 0.25 s);
2. put MNIST on the training device as uint8 tensors (60,000 × 28 × 28 = 47 MB);
3. build the model (zoo, MNIST-adapted), optimizer and LR schedule, seeded;
4. loop: slice a batch, convert/resize/normalise it on the device, forward, backward, step;
   every few steps one transaction of metrics (loss, running accuracy, lr, images/s, ETA,
   progress); every epoch the test loss and accuracy;
5. at the end: accuracy, macro precision/recall/F1, per-class metrics and the confusion matrix
   (scikit-learn), the most confidently wrong test digits, and a checkpoint.

fp32 on CPU; bf16 autocast + channels_last on CUDA. Nothing here knows about Streamlit or SQL:
progress leaves through :class:`cnnlab.store.RunStore` methods and the ``on_progress`` callback.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError
from cnnlab.store import FAILED, FINISHED, INTERRUPTED, STOPPED, RunStore
from cnnlab.trainconfig import TrainConfig

MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics (as in cnnlab.data)
NUM_CLASSES = 10
LOG_POINTS = 200  # at most about this many metric records per run …
LOG_INTERVAL_S = 0.2  # … and at most five a second (plus the first step and each epoch's end)
WATCH_INTERVAL_S = 0.25  # how often the watcher reads the stop flag
HEARTBEAT_S = 1.0
MISTAKES = 24  # how many confidently wrong test digits to keep

ProgressCallback = Callable[["Progress"], None]


class Stopped(Exception):
    """Raised inside the loop when the run's stop flag is set."""


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What ``on_progress`` receives every few steps (and once per test evaluation)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    accuracy: float
    lr: float
    images_per_second: float
    eta_seconds: float
    test_accuracy: float | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass
class TrainResult:
    """How a run ended; :meth:`to_json` is what ``cnnlab train --json`` prints."""

    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    train_seconds: float = 0.0
    images_per_second: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "metrics": {k: self.metrics.get(k) for k in ("accuracy", "precision", "recall", "f1")},
            "confusion_matrix": self.confusion_matrix,
            "train_seconds": round(self.train_seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }


# --- devices and batches ------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if present, else MPS, else CPU; an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda is not available here (no CUDA GPU); use --device cpu")
    if name == "mps" and not _mps_available():
        raise UserError("device mps is not available here (no Apple GPU); use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda or mps)")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_threads() -> int:
    """Threads per training process: the cores divided among ``CNNLAB_WORKERS`` workers."""
    if os.environ.get("CNNLAB_THREADS"):
        return max(1, int(os.environ["CNNLAB_THREADS"]))
    workers = max(1, int(os.environ.get("CNNLAB_WORKERS") or 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; plain fp32 elsewhere (bf16 on this CPU is ~9× slower)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(device: torch.device) -> bool:
    return device.type in ("cuda", "cpu")


def prepare(images: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """uint8 [B, 28, 28] on the device → normalised float [B, 1, size, size] (resized there)."""
    x = images.unsqueeze(1).float().mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def build(config: TrainConfig, device: torch.device) -> nn.Module:
    """The zoo model adapted to MNIST (1 input channel, 10 classes), on ``device``."""
    from cnnlab import zoo

    model = zoo.build_model(config.model, mnist=True, device=device, spec=config.stack_spec())
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if next(model.parameters()).device.type == "cuda" else {}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``constant`` → None; ``onecycle`` → warm-up to ``lr`` then cosine down; ``cosine``.

    Runs shorter than 10 steps keep a constant rate (one-cycle needs room for its warm-up).
    """
    if config.schedule == "onecycle" and total_steps >= 10:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.25
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return None


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# --- the run ------------------------------------------------------------------------------------


class Watcher:
    """A thread that reads the stop flag every 0.25 s and writes the heartbeat every second.

    The loop only checks ``watcher.stop`` (a :class:`threading.Event`): no SQL per step.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        last_beat = 0.0
        while not self._done.wait(WATCH_INTERVAL_S):
            try:
                if self.store.stop_requested(self.run_id):
                    self.stop.set()
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except UserError:  # a busy or vanished store: try again next tick
                continue


def train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    *,
    on_progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train the run ``run_id`` (created as ``queued``) to its end; never leaves it running.

    Returns how it ended: ``finished`` (all metrics), ``stopped`` (stop requested; metrics so
    far kept), ``failed`` (error text in the store), or — when the run was not queued any more
    (cancelled) — its current status untouched.
    """
    try:
        config.validate()
        device = resolve_device(config.device)
    except UserError as err:
        store.finish_run(run_id, FAILED, str(err))
        return TrainResult(run_id, FAILED, error=str(err))
    if not store.mark_running(run_id, os.getpid(), str(device)):
        run = store.get_run(run_id)
        return TrainResult(run_id, run.status if run else "missing", error="not queued")
    with Watcher(store, run_id) as watcher:
        try:
            return _train(config, store, run_id, device, watcher.stop, on_progress)
        except Stopped:
            store.finish_run(run_id, STOPPED, "stopped on request")
            return TrainResult(run_id, STOPPED, error="stopped on request")
        except KeyboardInterrupt:
            store.finish_run(
                run_id, INTERRUPTED, "interrupted: Ctrl-C, or its worker was shut down"
            )
            raise
        except Exception as err:  # anything at all: the run must not stay "running"
            text = error_text(err)
            if not isinstance(err, UserError):  # a bug: keep its traceback for the log
                traceback.print_exc(file=sys.stderr)
            store.finish_run(run_id, FAILED, text)
            return TrainResult(run_id, FAILED, error=text)


def error_text(err: BaseException) -> str:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return "out of GPU memory: use a smaller batch size or input size"
    if isinstance(err, UserError):
        return str(err)
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"[:500]


def _train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    device: torch.device,
    stop: threading.Event,
    on_progress: ProgressCallback | None,
) -> TrainResult:
    from cnnlab.data import load_mnist

    t_start = time.perf_counter()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator = seed_everything(config.seed)

    # Data: uint8 tensors resident on the training device.
    train_split = load_mnist("train", limit=config.train_limit, data_dir=config.data_dir)
    test_split = load_mnist("test", data_dir=config.data_dir)
    x_train, y_train = train_split.images.to(device), train_split.labels.to(device)
    x_test, y_test = test_split.images.to(device), test_split.labels.to(device)
    n_train, size, bs = len(train_split), config.input_size, config.batch_size

    # Model, optimizer, schedule.
    model = build(config, device)
    optimizer = make_optimizer(config, model)
    steps_per_epoch = max(1, n_train // bs)  # the last batch takes the remainder (never size 1)
    total_steps = steps_per_epoch * config.epochs
    schedule = make_schedule(config, optimizer, total_steps)
    log_every = max(1, total_steps // LOG_POINTS)
    eval_batch = _eval_batch(bs, size)

    step, train_time, images_done = 0, 0.0, 0
    eval_time_per_pass: float | None = None
    window = _Window(device)
    final: dict[str, Any] = {}
    for epoch in range(config.epochs):
        model.train()
        t_step = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(device)
        for i in range(steps_per_epoch):
            if stop.is_set():
                raise Stopped
            end = (i + 1) * bs if i < steps_per_epoch - 1 else n_train
            idx = order[i * bs : end]
            x, y = prepare(x_train[idx], size, device), y_train[idx]
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            window.add(loss, logits, y)

            last_of_epoch = i == steps_per_epoch - 1
            now = time.perf_counter()
            if not (
                last_of_epoch
                or step == 1
                or (step % log_every == 0 and now - window.last >= LOG_INTERVAL_S)
            ):
                continue
            # Every few steps: one transaction of step metrics (plus test metrics at epoch end).
            seen, mean_loss, accuracy = window.take()  # syncs the device
            now = time.perf_counter()
            train_time += now - t_step
            t_step = now
            images_done += seen
            ips = window.rate(seen, now)
            remaining_evals = config.epochs - epoch - (0 if last_of_epoch else 1)
            eval_guess = eval_time_per_pass or len(y_test) / max(ips * 3, 1.0)
            eta = (total_steps - step) * train_time / step + remaining_evals * eval_guess
            epoch_pos = epoch + (i + 1) / steps_per_epoch
            lr = optimizer.param_groups[0]["lr"]
            rows = [
                (step, epoch_pos, "loss", mean_loss),
                (step, epoch_pos, "train_accuracy", accuracy),
                (step, epoch_pos, "lr", lr),
                (step, epoch_pos, "images_per_second", ips),
                (step, epoch_pos, "eta_seconds", eta),
                (step, epoch_pos, "progress", step / total_steps),
            ]
            test_accuracy = None
            if last_of_epoch:
                t_eval = time.perf_counter()
                test_loss, probs = evaluate(model, x_test, y_test, size, device, eval_batch, stop)
                test_accuracy = float((probs.argmax(1) == y_test.cpu()).float().mean())
                eval_time_per_pass = time.perf_counter() - t_eval
                rows += [
                    (step, epoch_pos, "test_loss", test_loss),
                    (step, epoch_pos, "test_accuracy", test_accuracy),
                ]
                if epoch == config.epochs - 1:
                    final = summarise(probs, test_split.labels, test_split.images)
                    final["train_seconds"] = train_time
                    final["mean_images_per_second"] = images_done / max(train_time, 1e-9)
                    final["total_seconds"] = time.perf_counter() - t_start
                    rows += [(step, epoch_pos, k, v) for k, v in final.items() if _scalar(v)]
            store.add_metrics(run_id, rows)
            if on_progress is not None:
                on_progress(
                    Progress(
                        step,
                        total_steps,
                        epoch_pos,
                        mean_loss,
                        accuracy,
                        lr,
                        ips,
                        eta,
                        test_accuracy,
                    )
                )
            if last_of_epoch:  # the test evaluation is not training time
                t_step = time.perf_counter()
                window.restart_clock()

    # The end: results as artifacts, a checkpoint, and the run marked finished.
    folder = store.run_dir(run_id)
    checkpoint = save_checkpoint(model, config, folder / "checkpoint.pt")
    store.put_artifact(run_id, "checkpoint", path=checkpoint)
    store.put_artifact(run_id, "confusion_matrix", final["confusion_matrix"])
    store.put_artifact(run_id, "per_class", final["per_class"])
    store.put_artifact(run_id, "mistakes", final["mistakes"])
    store.put_artifact(
        run_id,
        "summary",
        {
            "data_source": train_split.source,
            "train_images": n_train,
            "test_images": len(test_split),
            "steps": total_steps,
            "device": str(device),
            **{k: v for k, v in final.items() if _scalar(v)},
        },
    )
    store.finish_run(run_id, FINISHED)
    return TrainResult(
        run_id,
        FINISHED,
        metrics={k: v for k, v in final.items() if _scalar(v)},
        confusion_matrix=final["confusion_matrix"],
        train_seconds=final["train_seconds"],
        images_per_second=final["mean_images_per_second"],
    )


class _Window:
    """Loss and accuracy of the batches since the last record, kept on the device (no sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0
        self.last = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.loss += loss.detach().float() * n
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += n

    def take(self) -> tuple[int, float, float]:
        seen = max(self.seen, 1)
        result = (self.seen, float(self.loss) / seen, float(self.correct) / seen)
        self.loss.zero_()
        self.correct.zero_()
        self.seen = 0
        return result

    def rate(self, seen: int, now: float) -> float:
        """Images per second since the previous call (evaluation time excluded by the caller)."""
        elapsed = max(now - self.last, 1e-9)
        self.last = now
        return seen / elapsed

    def restart_clock(self) -> None:
        self.last = time.perf_counter()


def _eval_batch(batch_size: int, size: int) -> int:
    """Evaluation batches: large at 28×28, about the training batch at 224×224."""
    return max(batch_size, min(1000, int(1000 * (28 / size) ** 2)))


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int,
    device: torch.device,
    batch: int,
    stop: threading.Event | None = None,
) -> tuple[float, torch.Tensor]:
    """Mean test loss and the class probabilities [N, 10] (float32, on the CPU)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    probs = []
    for start in range(0, images.shape[0], batch):
        if stop is not None and stop.is_set():
            raise Stopped
        x, y = prepare(images[start : start + batch], size, device), labels[start : start + batch]
        with autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        probs.append(logits.softmax(1).cpu())
    model.train(was_training)
    return float(loss_sum) / max(images.shape[0], 1), torch.cat(probs)


def summarise(probs: torch.Tensor, labels: torch.Tensor, images: torch.Tensor) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class metrics, confusion matrix (scikit-learn),
    and the most confidently wrong test digits (with their 28×28 pixels)."""
    from sklearn import metrics as skm

    y_true = labels.cpu().numpy()
    y_pred = probs.argmax(1).numpy()
    classes = list(range(NUM_CLASSES))
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average="macro", zero_division=0
    )
    per_p, per_r, per_f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=0
    )
    matrix = skm.confusion_matrix(y_true, y_pred, labels=classes)

    confidence = probs.max(1).values
    wrong = torch.from_numpy(y_pred != y_true)
    order = torch.argsort(
        torch.where(wrong, confidence, torch.full_like(confidence, -1.0)), descending=True
    )
    worst = [int(i) for i in order[: min(MISTAKES, int(wrong.sum()))]]
    mistakes = [
        {
            "index": i,
            "true": int(y_true[i]),
            "pred": int(y_pred[i]),
            "confidence": round(float(confidence[i]), 6),
            "probs": [round(float(p), 6) for p in probs[i]],
            "pixels": images[i].cpu().tolist(),
        }
        for i in worst
    ]

    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "per_class": [
            {
                "digit": d,
                "precision": float(per_p[d]),
                "recall": float(per_r[d]),
                "f1": float(per_f[d]),
                "support": int(support[d]),
            }
            for d in classes
        ],
        "confusion_matrix": matrix.astype(int).tolist(),
        "mistakes": mistakes,
    }


# --- checkpoints and prediction -----------------------------------------------------------------


def save_checkpoint(model: nn.Module, config: TrainConfig, path: Path) -> Path:
    """``{"state_dict", "config"}`` with CPU tensors, written atomically (loads weights_only)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    try:
        torch.save({"state_dict": state, "config": config.to_dict()}, tmp)
        os.replace(tmp, path)
    except Exception as err:  # disk full, read-only, …: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        full = shutil.disk_usage(path.parent).free < 64 * 2**20
        hint = " (the disk is full)" if full else ""
        raise UserError(f"cannot write the checkpoint {path}{hint}: {error_text(err)}") from None
    return path


def load_checkpoint(path: str | Path) -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model of a checkpoint (``torch.load(weights_only=True)``), in eval mode."""
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as err:
        raise UserError(f"{path}: not a readable checkpoint ({error_text(err)})") from None
    if not isinstance(blob, dict) or not {"state_dict", "config"} <= set(blob):
        raise UserError(f"{path}: not a cnnlab checkpoint (needs state_dict and config)")
    config = TrainConfig.from_dict(blob["config"]).validate()
    from cnnlab import zoo

    model = zoo.build_model(config.model, mnist=True, spec=config.stack_spec())
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: weights do not fit {config.model} ({error_text(err)})") from None
    model.eval()
    return model, config


@torch.inference_mode()
def predict(model: nn.Module, config: TrainConfig, images_uint8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 digits [N, 28, 28] (white on black, like MNIST)."""
    images = torch.as_tensor(images_uint8)
    if images.ndim == 2:
        images = images.unsqueeze(0)
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise UserError(f"predict needs uint8 images of 28×28, got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    model.eval()
    x = prepare(images.to(device=device, dtype=torch.uint8), config.input_size, device)
    with autocast(device):
        return model(x).float().softmax(1).cpu()


# --- cost estimate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """What a run will cost before it starts (integers exact; format when rendering)."""

    params: int
    macs_per_image: int
    train_flops: int
    images: int
    eta_seconds: float
    eta_text: str
    warning: str | None
    memory_bytes: int
    fits: bool
    available_bytes: int
    device: str
    measured_images_per_second: float | None = None
    refusal: str | None = None

    def raise_if_unfit(self) -> None:
        if not self.fits and self.refusal:
            raise UserError(self.refusal)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def record(self, store: RunStore, config: TrainConfig) -> str:
        """Refuse a run that cannot fit; else create it in ``store`` (queued) and return its id."""
        self.raise_if_unfit()
        return store.create_run(
            config.to_dict(),
            name=config.name,
            model=config.model,
            params=self.params,
            macs=self.macs_per_image,
        )


LONG_RUN_S = 30 * 60


def estimate_cost(config: TrainConfig, *, measure: bool = True) -> CostEstimate:
    """Params, MACs/image (analysis engine), training FLOPs (= MACs × images × 3 × 2), memory,
    and an ETA from a short measured warm-up on the chosen device (``measure=False``: skip it and
    guess from FLOPs). Never raises for size: see ``fits``/``refusal``/:meth:`raise_if_unfit`."""
    from cnnlab.analyse import analyse_zoo
    from cnnlab.data import load_mnist

    config.check_model()
    device = resolve_device(config.device)
    analysis = analyse_zoo(
        config.model, mnist=True, input_size=config.input_size, spec=config.stack_spec()
    )
    params, macs = analysis.totals.params, analysis.totals.macs
    if config.batch_size == 1 and any("BatchNorm" in row.type for row in analysis.rows):
        raise UserError(
            f"{config.model} has BatchNorm, which cannot train on batches of one"
            " image; use batch size 2 or more"
        )
    n_train = len(load_mnist("train", limit=config.train_limit, data_dir=config.data_dir))
    n_test = len(load_mnist("test", data_dir=config.data_dir))
    images = n_train * config.epochs
    train_flops = macs * images * 3 * 2

    memory = memory_bytes(
        config, params, analysis.totals.activation_bytes, n_train + n_test, device
    )
    available = available_bytes(device)
    fits = memory <= 0.9 * available
    refusal = None
    if not fits:
        refusal = (
            f"{config.model} at {config.input_size}×{config.input_size}, batch"
            f" {config.batch_size}, needs about {_gb(memory)} on {device.type} but only"
            f" {_gb(available)} is available; use a smaller batch size or input size"
        )

    measured = None
    if fits and measure:
        measured = measure_speed(config, device)
    if measured:
        seconds = images / measured + n_test * config.epochs / (3 * measured) + 2.0
    else:  # a FLOP-rate guess: ~20 GFLOP/s on a laptop CPU, ~100 TFLOP/s on a GPU
        rate = 20e9 if device.type == "cpu" else 100e12
        seconds = train_flops / rate
    warning = None
    if seconds > LONG_RUN_S:
        hint = " — a CUDA GPU would take minutes" if device.type == "cpu" else ""
        warning = f"this run would take {eta_text(seconds)} on {device.type}{hint}"
    return CostEstimate(
        params=params,
        macs_per_image=macs,
        train_flops=train_flops,
        images=images,
        eta_seconds=seconds,
        eta_text=eta_text(seconds),
        warning=warning,
        memory_bytes=memory,
        fits=fits,
        available_bytes=available,
        device=str(device),
        measured_images_per_second=measured,
        refusal=refusal,
    )


def memory_bytes(
    config: TrainConfig,
    params: int,
    activation_bytes: int,
    resident_images: int,
    device: torch.device,
) -> int:
    """Weights + gradients + optimizer state + activations at the batch size + the data."""
    state_copies = {"adam": 2, "adamw": 2}.get(config.optimizer, 1 if config.momentum else 0)
    weights = params * 4 * (2 + state_copies)
    per_activation = 2 if device.type == "cuda" else 4  # bf16 under autocast
    activations = activation_bytes // 4 * per_activation * config.batch_size
    batch_input = config.batch_size * config.input_size**2 * 4
    data = resident_images * 28 * 28 + resident_images * 8
    return int(weights + activations + batch_input + data)


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA free memory, MPS recommended maximum, CPU MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def measure_speed(config: TrainConfig, device: torch.device, budget_s: float = 1.0) -> float:
    """Training images/s on ``device`` from a short warm-up on random digits.

    Times the forward + backward pass and the optimizer step apart: images/s =
    1 / (pass time per image + step time / batch size). The timed batch starts at the smallest
    (1, or 2 with BatchNorm) and doubles while the passes fit in ``budget_s``, so a small model
    is timed at its real batch in about a second and VGG-16 at 224 on a CPU at one image (a few
    seconds: one warm and one timed pass). Weights are allocated without initialisation
    (constant values): timing needs no real model.
    """
    from cnnlab import zoo

    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    model = zoo.build_model(config.model, mnist=True, device="meta", spec=config.stack_spec())
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.fill_(0.01 if tensor.is_floating_point() else 1)
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    batch = min(config.batch_size, 2 if has_batchnorm else 1)  # BatchNorm needs two images
    model.train(batch > 1 or not has_batchnorm)
    optimizer = make_optimizer(config, model)
    gen = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (config.batch_size, 28, 28), dtype=torch.uint8, generator=gen)
    classes = torch.randint(0, NUM_CLASSES, (config.batch_size,), generator=gen)
    digits, classes = digits.to(device), classes.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    def timed_pass(batch: int) -> float:
        sync()
        start = time.perf_counter()
        with autocast(device):
            logits = model(prepare(digits[:batch], config.input_size, device))
            loss = F.cross_entropy(logits, classes[:batch])
        loss.backward()
        sync()
        return time.perf_counter() - start

    # The first pass pays for allocations and kernel selection: it only warms up. Then double
    # the batch while the next pass (about twice the last) still fits in the budget.
    if timed_pass(batch) < budget_s:
        last = spent = timed_pass(batch)
        while batch < config.batch_size and spent + 2 * last <= budget_s:
            batch = min(config.batch_size, batch * 2)
            last = timed_pass(batch)
            spent += last
    passes, start = [timed_pass(batch)], time.perf_counter()
    while (
        passes[-1] < budget_s / 4
        and len(passes) < 20
        and time.perf_counter() - start < budget_s / 2
    ):
        passes.append(timed_pass(batch))
    per_image = min(passes) / batch
    optimizer.step()  # the first step allocates the optimizer state
    sync()
    start = time.perf_counter()
    optimizer.step()
    sync()
    per_image += (time.perf_counter() - start) / config.batch_size
    return 1.0 / per_image


def eta_text(seconds: float) -> str:
    """``about 25 s``, ``about 4 min``, ``about 2.5 h``, ``about 3 days``."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.1f} days"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"
