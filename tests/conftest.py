"""Shared test set-up: tests run on CPU, one thread, seeded, and never in a GPU run mode."""
import os

import pytest
import torch

os.environ.setdefault("MINILDM_MODE", "smoke")
# Tests use tiny tensors: a second OpenMP thread costs more than it saves, and on a busy 2-core machine it
# spin-waits against whatever else runs there.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class StopRun(Exception):
    """Raised by :func:`stop_after` to "kill" a training run from its callback."""


def stop_after(step: int):
    """A training callback that kills the run once it reports ``step`` (for resume tests)."""
    def callback(event: dict) -> None:
        if event["step"] >= step:
            raise StopRun
    return callback
