"""Compact CNNs designed for MNIST (1×28×28 input, 10 classes): ``small-cnn`` and ``lenet5``."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Sequential):
    """Two conv blocks (conv-BN-ReLU-pool, 16 and 32 channels) and a two-layer classifier.

    Sized for a laptop CPU: 409,082 params and 1.42 M MACs per image, so an epoch of MNIST
    takes seconds; two epochs with Adam and a one-cycle schedule (lr 5e-3) reach ≥ 99 % test
    accuracy (``benchmarks/time_to_accuracy.py``).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )


class LeNet5(nn.Sequential):
    """LeCun et al. 1998 with ReLU and max pooling; pads 28×28 to the original 32×32 field."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
