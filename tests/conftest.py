"""Shared test set-up: tests run on CPU, one thread, seeded, and never in a GPU run mode."""
import os
import signal
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MINILDM_MODE", "smoke")
worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, … under pytest-xdist (make test); else None
if worker:
    # each worker trains and caches in runs/xdist-<worker>/, so two workers (and the notebook kernels they start,
    # which inherit this environment) never resume from or write over each other's runs
    if not os.environ.get("MINILDM_RUNS"):
        os.environ["MINILDM_RUNS"] = str(Path(__file__).resolve().parent.parent / "runs" / f"xdist-{worker}")
    # xdist's workers ignore SIGINT (the controller handles Ctrl-C), and processes they start inherit that: give the
    # worker Python's own handler back, so the Ctrl-C tests (tests/test_doors.py) see what a user's terminal gives
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Tests use tiny tensors: a second OpenMP thread costs more than it saves, and on a busy 2-core machine it
# spin-waits against whatever else runs there.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _grad_mode_restored():
    """torch.set_grad_enabled(False) in one test file would silently break training in the next file on the same
    xdist worker (it did once: backward() found no graph). Every module must leave gradients on."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test module left torch.set_grad_enabled(False) behind; use torch.no_grad() locally")


class StopRun(Exception):
    """Raised by :func:`stop_after` to "kill" a training run from its callback."""


def stop_after(step: int):
    """A training callback that kills the run once it reports ``step`` (for resume tests)."""
    def callback(event: dict) -> None:
        if event["step"] >= step:
            raise StopRun
    return callback


def randomise(model, std: float = 0.1, seed: int = 0):
    """Fill a model's zero-initialised parameters (output convs, attention out-projections) with small random
    values, so that they no longer hide the inputs: a fresh UNet predicts exactly 0 whatever it is given."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
