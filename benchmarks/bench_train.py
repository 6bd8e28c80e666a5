"""Benchmark: training images/s of cnnlab's engine vs the classic loop vs a bare loop.

All three train the same model with the same batch size, optimizer and LR schedule, in one
process, on the same MNIST digits:

- **classic**: the loop the original assignment used — a torchvision-style dataset handing out
  PIL images (``Image.fromarray(..., mode="L")`` per digit, as ``torchvision.datasets.MNIST``
  does), ``[Resize →] ToTensor → Normalize`` per image, batched by a ``DataLoader``;
- **bare**: the digits as one uint8 tensor on the device, batches sliced, converted, resized and
  normalised there (:func:`cnnlab.training.recipe.prepare`) — no metrics, no store, no stop checks;
- **cnnlab**: :func:`cnnlab.training.loop.train` itself, recording every metric in a run store.

images/s counts training steps only (cnnlab: the engine's own ``train_seconds``, which includes
its metric recording but not the test evaluation). Medians of ``--repeats`` runs after warm-up.

    python benchmarks/bench_train.py [--json] [--quick] [--device cpu|cuda] [--model small-cnn]
        [--input-size 28] [--batch-size 128] [--images 20000]

``--json`` prints ``{"cnnlab_img_s", "classic_img_s", "bare_img_s", "speedup_vs_classic",
"tracking_overhead"}`` (plus the settings). Targets on a 2-core CPU with small-cnn: ≥ 1.6× the
classic loop, tracking overhead ≤ 5 %. On a GPU (``bench_gpu.sh``): VGG-16 at 224, ≥ 4× classic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cnnlab import devices
from cnnlab.training import loop, recipe
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import load_mnist
from cnnlab.training.store import RunStore

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


class PilMnist(Dataset):
    """MNIST as torchvision serves it: a PIL image per digit, then the per-image transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(img), int(self.labels[index])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(config: TrainConfig, device: torch.device, total_steps: int) -> tuple[Any, Any, Any]:
    recipe.seed_everything(config.seed)
    model = recipe.build(config, device)
    optimizer = recipe.make_optimizer(config, model)
    schedule = recipe.make_schedule(config, optimizer, total_steps)
    return model, optimizer, schedule


def step(
    model: Any,
    optimizer: Any,
    schedule: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
) -> None:
    with devices.autocast(device):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step()


def classic_img_s(
    config: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int,
    workers: int,
) -> float:
    """The torchvision recipe; fp32 (no autocast) and contiguous NCHW, as the report ran it."""
    tfs: list[Any] = []
    if config.input_size != 28:
        tfs.append(transforms.Resize((config.input_size, config.input_size)))
    tfs += [transforms.ToTensor(), transforms.Normalize((recipe.MEAN,), (recipe.STD,))]
    loader = DataLoader(
        PilMnist(images, labels, transforms.Compose(tfs)),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    steps = len(images) // batch_size
    recipe.seed_everything(config.seed)
    from cnnlab.counting import zoo

    model = zoo.build_model(config.model, mnist=True, device=device, spec=config.stack_spec())
    optimizer = recipe.make_optimizer(config, model)
    schedule = recipe.make_schedule(config, optimizer, steps)
    model.train()
    sync(device)
    start = time.perf_counter()
    seen = 0
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        seen += len(y)
    sync(device)
    return seen / (time.perf_counter() - start)


def bare_img_s(
    config: TrainConfig, images: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> float:
    """cnnlab's data path and model setup without any tracking."""
    n, bs = len(images), config.batch_size
    steps = max(1, n // bs)
    model, optimizer, schedule = setup(config, device, steps)
    x_all, y_all = images.to(device), labels.to(device)
    model.train()
    sync(device)
    start = time.perf_counter()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed)).to(device)
    for i in range(steps):
        end = (i + 1) * bs if i < steps - 1 else n
        idx = order[i * bs : end]
        step(
            model,
            optimizer,
            schedule,
            recipe.prepare(x_all[idx], config.input_size, device),
            y_all[idx],
            device,
        )
    sync(device)
    return n / (time.perf_counter() - start)


def cnnlab_img_s(config: TrainConfig, home: Path) -> float:
    store = RunStore(home / "runs.db")
    run_id = store.create_run(
        config.to_dict(), name="bench", model=config.model, params=None, macs=None
    )
    result = loop.train(config, store, run_id)
    if result.status != "finished":
        raise SystemExit(f"cnnlab run {result.status}: {result.error}")
    return result.images_per_second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--input-size", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classic-batch-size", type=int, help="default: --batch-size")
    parser.add_argument(
        "--classic-workers",
        type=int,
        default=0,
        help="DataLoader workers of the classic loop (default 0)",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--images", type=int, default=60_000, help="training images per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 4 batches, 1 repeat, no warm-up"
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = min(args.images, 4 * args.batch_size), 1
    if not os.environ.get("CNNLAB_DATA_DIR") and SHARED_MNIST.is_dir():
        os.environ["CNNLAB_DATA_DIR"] = str(SHARED_MNIST)
    home = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    os.environ["CNNLAB_HOME"] = str(home)

    device = devices.resolve_device(args.device)
    config = TrainConfig(
        model=args.model,
        input_size=args.input_size,
        batch_size=args.batch_size,
        lr=args.lr,
        train_limit=args.images,
        device=device.type,
        epochs=1,
    ).check_model()
    if device.type == "cpu":
        torch.set_num_threads(devices.cpu_threads())
    train = load_mnist("train", limit=args.images)
    classic_bs = args.classic_batch_size or args.batch_size

    def measure_all() -> dict[str, float]:
        return {
            "classic": classic_img_s(
                config, train.images, train.labels, device, classic_bs, args.classic_workers
            ),
            "bare": bare_img_s(config, train.images, train.labels, device),
            "cnnlab": cnnlab_img_s(config, home),
        }

    if not args.quick:  # warm-up: one short pass of each (allocator, kernel selection, imports)
        warm = config.with_(train_limit=min(args.images, 4 * args.batch_size))
        warm_imgs, warm_labels = train.images[: warm.train_limit], train.labels[: warm.train_limit]
        classic_img_s(warm, warm_imgs, warm_labels, device, classic_bs, args.classic_workers)
        bare_img_s(warm, warm_imgs, warm_labels, device)
        cnnlab_img_s(warm, home)

    runs = [measure_all() for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {
        "cnnlab_img_s": round(med["cnnlab"], 1),
        "classic_img_s": round(med["classic"], 1),
        "bare_img_s": round(med["bare"], 1),
        "speedup_vs_classic": round(med["cnnlab"] / med["classic"], 3),
        "tracking_overhead": round(1 - med["cnnlab"] / med["bare"], 4),
        "model": config.model,
        "input_size": config.input_size,
        "batch_size": config.batch_size,
        "classic_batch_size": classic_bs,
        "classic_workers": args.classic_workers,
        "images": args.images,
        "repeats": args.repeats,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "all_runs": [{k: round(v, 1) for k, v in r.items()} for r in runs],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{config.model} at {config.input_size}×{config.input_size}, batch"
            f" {config.batch_size}, {args.images:,} images on {device}:"
        )
        for key in ("classic", "bare", "cnnlab"):
            print(f"  {key:<8}{med[key]:>10,.0f} images/s")
        print(
            f"  speed-up vs classic {result['speedup_vs_classic']:.2f}×,"
            f" tracking overhead {100 * result['tracking_overhead']:.1f} %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
