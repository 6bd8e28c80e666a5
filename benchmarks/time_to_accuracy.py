"""Benchmark: wall seconds to first reach a test accuracy on full MNIST — cnnlab's default run
against the PyTorch MNIST example's recipe, in the same process.

- **cnnlab**: :func:`cnnlab.training.loop.train` (the engine of ``cnnlab train`` and the pages,
  recording into a temporary run store) with the one-click defaults (``TrainConfig()``: the
  Train page and ``cnnlab train`` without options). The clock starts when ``train`` is called
  (so it includes loading MNIST and building the model) and stops at the first test evaluation
  (end of an epoch) at or above ``--target``.
- **anchor**: the PyTorch MNIST example (pytorch/examples, ``mnist/main.py``) as published: its
  two-conv net with dropout (conv 32, conv 64, max-pool, dropout 0.25, fc 9216→128, dropout
  0.5, fc 128→10, log-softmax + NLL), Adadelta lr 1.0, StepLR γ 0.7 per epoch, batch 64, test
  batch 1000, seed 1, a PIL image per digit → ``ToTensor`` → ``Normalize`` in a ``DataLoader``.
  The clock starts before its datasets are built and stops at the first epoch's test
  evaluation at or above ``--target`` (at most ``--anchor-epochs``).

    python benchmarks/time_to_accuracy.py [--target 0.985] [--device cpu|cuda]
        [--model small-cnn] [--epochs 1] [--lr …] [--batch-size …]
        [--anchor-epochs 3] [--anchor-limit N] [--no-anchor] [--json] [--quick]

``--json`` prints ``{"seconds", "accuracy", "epochs", "anchor_seconds", "anchor_accuracy",
"speedup_vs_anchor", …}`` (``seconds`` null when the target was not reached, and the exit code
is 1; ``anchor_seconds`` and the speed-up null when the anchor did not reach it). Goal: the
speed-up ≥ 15× at 98.5 %. ``--anchor-limit N`` trains the anchor on the first N digits (its
epoch-1 time scales with N; label such figures). ``--quick``: both on 2,000 digits (the anchor
tested on 2,000), one epoch each, target 0.5 — a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from bench_train import PilMnist  # the torchvision-style dataset: a PIL image per digit
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from cnnlab import devices
from cnnlab.training import loop
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import MEAN, STD, load_mnist
from cnnlab.training.store import RunStore

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
DEFAULTS = TrainConfig()  # the one-click run
QUICK_LIMIT = 2000


class ExampleNet(nn.Module):
    """The network of the PyTorch MNIST example (``mnist/main.py``), layer for layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def run_anchor(
    target: float,
    epochs: int,
    device: torch.device,
    train_limit: int | None,
    test_limit: int | None,
    data_dir: str | None,
) -> dict[str, Any]:
    """Train the example's recipe until a test evaluation reaches ``target`` (or ``epochs``)."""
    start = time.perf_counter()
    torch.manual_seed(1)  # the example's --seed default
    train = load_mnist("train", limit=train_limit, data_dir=data_dir)
    test = load_mnist("test", data_dir=data_dir)
    test_images, test_labels = test.images, test.labels
    if test_limit is not None:
        test_images, test_labels = test_images[:test_limit], test_labels[:test_limit]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    cuda = device.type == "cuda"
    extra = {"num_workers": 1, "pin_memory": True} if cuda else {}
    train_loader = DataLoader(
        PilMnist(train.images, train.labels, transform), batch_size=64, shuffle=True, **extra
    )
    test_loader = DataLoader(
        PilMnist(test_images, test_labels, transform), batch_size=1000, shuffle=False, **extra
    )
    model = ExampleNet().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    per_epoch: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                correct += int((model(x).argmax(dim=1) == y).sum())
        scheduler.step()
        accuracy = correct / len(test_labels)
        per_epoch.append(
            {"seconds": round(time.perf_counter() - start, 2), "epoch": epoch, "accuracy": accuracy}
        )
        if accuracy >= target:
            break
    reached = per_epoch[-1]["accuracy"] >= target
    return {
        "seconds": per_epoch[-1]["seconds"] if reached else None,
        "accuracy": round(per_epoch[-1]["accuracy"], 4),
        "epochs": per_epoch[-1]["epoch"] if reached else None,
        "train_images": len(train),
        "test_images": len(test_labels),
        "per_epoch": [{**e, "accuracy": round(e["accuracy"], 4)} for e in per_epoch],
    }


def run_cnnlab(config: TrainConfig, target: float, home: Path) -> dict[str, Any]:
    store = RunStore(home / "runs.db")
    run_id = store.create_run(
        config.to_dict(), name=config.name, model=config.model, params=None, macs=None
    )
    evaluations: list[tuple[float, float, float]] = []  # (seconds, epoch, test accuracy)
    start = time.perf_counter()

    def progress(p: loop.Progress) -> None:
        if p.test_accuracy is not None:
            evaluations.append((time.perf_counter() - start, p.epoch, p.test_accuracy))

    result = loop.train(config, store, run_id, on_progress=progress)
    total = time.perf_counter() - start
    if result.status != "finished":
        raise SystemExit(f"run {result.status}: {result.error}")
    reached = next((e for e in evaluations if e[2] >= target), None)
    return {
        "seconds": round(reached[0], 2) if reached else None,
        "accuracy": round(reached[2] if reached else evaluations[-1][2], 4),
        "epochs": reached[1] if reached else None,
        "final_accuracy": round(result.metrics["accuracy"], 4),
        "total_seconds": round(total, 2),
        "train_seconds": round(result.train_seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "per_epoch": [
            {"seconds": round(s, 2), "epoch": e, "accuracy": round(a, 4)} for s, e, a in evaluations
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.985)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=DEFAULTS.model)
    parser.add_argument("--input-size", type=int, default=DEFAULTS.input_size)
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer)
    parser.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    parser.add_argument("--schedule", default=DEFAULTS.schedule)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--anchor-epochs", type=int, default=3, help="at most (default 3)")
    parser.add_argument("--anchor-limit", type=int, metavar="N", help="anchor on N digits")
    parser.add_argument("--no-anchor", action="store_true", help="time cnnlab only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 digits, target 0.5")
    args = parser.parse_args()
    anchor_test_limit = None
    if args.quick:
        args.train_limit = args.anchor_limit = anchor_test_limit = QUICK_LIMIT
        args.target, args.epochs, args.anchor_epochs = 0.5, 1, 1
    if not os.environ.get("CNNLAB_DATA_DIR") and SHARED_MNIST.is_dir():
        os.environ["CNNLAB_DATA_DIR"] = str(SHARED_MNIST)
    home = Path(tempfile.mkdtemp(prefix="cnnlab-tta-"))
    os.environ["CNNLAB_HOME"] = str(home)

    config = TrainConfig(
        model=args.model,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        train_limit=args.train_limit,
        device=args.device,
        name="time to accuracy",
    ).check_model()
    device = devices.resolve_device(config.device)
    ours = run_cnnlab(config, args.target, home)  # sets the training thread count for both
    anchor = None
    if not args.no_anchor:
        anchor = run_anchor(
            args.target, args.anchor_epochs, device, args.anchor_limit, anchor_test_limit, None
        )
    speedup = None
    if anchor and anchor["seconds"] and ours["seconds"]:
        speedup = round(anchor["seconds"] / ours["seconds"], 2)
    out = {
        "seconds": ours["seconds"],
        "accuracy": ours["accuracy"],
        "epochs": ours["epochs"],
        "anchor_seconds": anchor["seconds"] if anchor else None,
        "anchor_accuracy": anchor["accuracy"] if anchor else None,
        "speedup_vs_anchor": speedup,
        "target": args.target,
        "reached": ours["seconds"] is not None,
        **{k: v for k, v in ours.items() if k not in ("seconds", "accuracy", "epochs")},
        "anchor": anchor,
        "config": {k: v for k, v in config.to_dict().items() if v is not None},
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        _print_summary(out, config, args)
    return 0 if out["reached"] else 1


def _print_summary(out: dict[str, Any], config: TrainConfig, args: argparse.Namespace) -> None:
    goal = f"target {100 * args.target:.1f} %"
    if out["reached"]:
        print(
            f"cnnlab {config.model}: {100 * out['accuracy']:.2f} % test accuracy after"
            f" {out['epochs']:g} epoch(s), {out['seconds']:.1f} s ({goal})"
        )
    else:
        print(
            f"cnnlab {config.model}: {goal} not reached in {args.epochs} epoch(s)"
            f" ({100 * out['accuracy']:.2f} % after {out['total_seconds']:.1f} s)"
        )
    anchor = out["anchor"]
    if anchor is None:
        return
    if anchor["seconds"] is not None:
        print(
            f"PyTorch MNIST example: {100 * anchor['accuracy']:.2f} % after {anchor['epochs']}"
            f" epoch(s), {anchor['seconds']:.1f} s"
        )
    else:
        print(
            f"PyTorch MNIST example: {goal} not reached in {args.anchor_epochs} epoch(s)"
            f" ({100 * anchor['accuracy']:.2f} %, {anchor['per_epoch'][-1]['seconds']:.1f} s)"
        )
    if out["speedup_vs_anchor"] is not None:
        print(f"speed-up vs the example: {out['speedup_vs_anchor']:.1f}×")


if __name__ == "__main__":
    raise SystemExit(main())
