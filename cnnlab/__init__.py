"""cnnlab: explore convolutional networks — counting, comparing and training on MNIST."""

__version__ = "0.1.0"
