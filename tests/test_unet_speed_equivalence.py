"""A speed change to the UNet must not change the network (issue 18, benchmarks/RESULTS.md "Speed after profiling").

``tests/data/unet_reference.pt`` holds, for three shipped models, fixed inputs and the ε_θ the code computed when
it was recorded (the recipe is :func:`record`). Loading the shipped weights and running the current code must give
the same outputs, and the same gradients with respect to the input, to float32 rounding, in both memory formats;
the parameter names must not have changed either (else ``load_diffusion`` would fail). When the shipped weights
themselves are retrained, re-record it (``python -c "import sys; sys.path.insert(0, 'tests');
import test_unet_speed_equivalence as t; t.record()"``) in the same commit as the new weights.
"""
from pathlib import Path

import pytest
import torch

from minildm.release import load_diffusion

REFERENCE = Path(__file__).parent / "data" / "unet_reference.pt"
# latent_mnist: plain UNet with self-attention; latent_mnist_text: cross-attention on every level, text tokens
# with padding masks; latent_faces_toy: cross-attention-only blocks (self_attn_levels), 16×16 latents
MODELS = ["latent_mnist", "latent_mnist_text", "latent_faces_toy"]


def record(path: Path = REFERENCE) -> None:
    """How the reference was made (run once, on the code before the change): fixed x, t, y → ε_θ."""
    ref = {}
    for name in MODELS:
        m = load_diffusion(name)
        unet, (C, H, W) = m.unet.eval(), m.sample_shape
        g = torch.Generator().manual_seed(0)
        x, t, y = torch.randn(4, C, H, W, generator=g), torch.tensor([0, 250, 600, 999]), None
        if name == "latent_mnist_text":
            y = m.tokenizer.encode_batch(["a small three", "seven", "a thick slanted two", "<null>"])
            y[3] = unet.null_condition(1)[0]
        elif name == "latent_faces_toy":
            y = torch.randint(0, 3, (4, 16), generator=g)
        with torch.no_grad():
            out = unet(x, t) if y is None else unet(x, t, y=y)
        w = torch.randn(out.shape, generator=g)  # the backward pass: ∂(w·ε_θ)/∂x goes through every layer
        ref[name] = dict(x=x, t=t, y=y, out=out, w=w, grad=input_grad(unet, x, t, y, w))
    torch.save(ref, path)


def input_grad(unet, x, t, y, w):
    """∂ Σ w ⊙ ε_θ(x, t, y) / ∂x, in training mode (dropout is 0 in these models)."""
    x = x.detach().clone().requires_grad_()
    unet.train()
    out = unet(x, t) if y is None else unet(x, t, y=y)
    (out * w).sum().backward()
    unet.eval()
    return x.grad


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", MODELS)
def test_shipped_unet_matches_reference(name, channels_last):
    ref = torch.load(REFERENCE)[name]
    unet = load_diffusion(name).unet.eval()
    x = ref["x"]
    if channels_last:
        unet, x = unet.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = unet(x, ref["t"]) if ref["y"] is None else unet(x, ref["t"], y=ref["y"])
    assert out.shape == ref["out"].shape
    torch.testing.assert_close(out, ref["out"], rtol=1e-4, atol=1e-4)
    grad = input_grad(unet, x, ref["t"], ref["y"], ref["w"])
    torch.testing.assert_close(grad, ref["grad"], rtol=1e-4, atol=1e-5)
