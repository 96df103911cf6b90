"""dsvm-kit: from an Azure subscription to a GPU notebook proven to train on the GPU."""

__version__ = "0.1.0"
