"""Shared test set-up: tests run single-process on CPU, seeded, and never in a GPU run mode."""
import os

import pytest
import torch

os.environ.setdefault("MINILDM_MODE", "smoke")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
