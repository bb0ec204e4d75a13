"""The course's own MNIST classifiers: a feature net for losses, and a separate judge for samples.  Notebooks 03–06.

Two jobs, two networks, never the same one:

* **perceptual loss** (notebook 03): LDM's autoencoder is trained with LPIPS (Zhang et al. 2018), which compares
  images through the activations of a pretrained VGG. Offline there is no VGG, so :meth:`MNISTClassifier.features`
  of the *classifier* (``minildm/weights/mnist_classifier.pt``, ``arch="maxpool"``) gives the activations after
  each block instead, LPIPS-style;
* **evaluation** (notebook 03 on): :mod:`minildm.evaluate` classifies samples (is a generated "7" a 7?) and measures
  a Fréchet distance in the penultimate features (:meth:`MNISTClassifier.embed`), as FID does with Inception-v3,
  with the *judge* (``minildm/weights/mnist_judge.pt``, :data:`JUDGE_CONFIG`: ``arch="strided"``, other widths,
  another seed). A model trained through a network's features learns to please that network: judged by the same
  net, its reconstructions and every latent sample decoded by them would score better than they are. The judge
  is touched by no training loss of the course.

Both use GroupNorm, not BatchNorm, so a frozen net behaves the same in train and eval mode. The shipped weights
are trained by ``python -m minildm.classifier`` and ``python -m minildm.classifier --judge`` (a few minutes each
on 2 CPU cores; each checkpoint records its test accuracy, which should be ≥ 99%).
"""
from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checkpoint import CheckpointNotFoundError, load_checkpoint, save_checkpoint
from .config import DictConfig
from .data import mnist

KIND = "mnist_classifier"
DEFAULT_PATH = Path(__file__).resolve().parent / "weights" / "mnist_classifier.pt"
TRAIN_COMMAND = "python -m minildm.classifier --out minildm/weights/mnist_classifier.pt"
JUDGE_PATH = Path(__file__).resolve().parent / "weights" / "mnist_judge.pt"
JUDGE_COMMAND = "python -m minildm.classifier --judge --out minildm/weights/mnist_judge.pt"
JUDGE_SEED = 1  # the classifier's is 0
ARCHS = ("maxpool", "strided")


@dataclass
class ClassifierConfig(DictConfig):
    """Architecture of :class:`MNISTClassifier`."""

    in_channels: int = 1                     # grey digits
    widths: tuple[int, ...] = (32, 64, 128)  # channels per conv block (multiples of 8: GroupNorm's groups)
    num_classes: int = 10                    # logits out
    image_size: int = 32                     # H = W of the inputs, in [−1, 1] (minildm.data.mnist's format)
    dropout: float = 0.1                     # on the embedding, before the linear head (training only)
    arch: str = "maxpool"                    # "maxpool": the classifier's blocks; "strided": the judge's (see below)


# The judge: another architecture (5×5 then strided 3×3 convolutions, SiLU), other widths and another seed.
JUDGE_CONFIG = ClassifierConfig(widths=(24, 48, 96), arch="strided", dropout=0.2)


def _block(c_in: int, c_out: int, arch: str = "maxpool", first: bool = False) -> nn.Sequential:
    """"maxpool": conv3×3 → GroupNorm → ReLU at the same resolution (max-pooling happens between blocks).
    "strided": conv5×5 (first block) or conv3×3 with stride 2 (the others) → GroupNorm → SiLU."""
    if arch == "maxpool":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU())
    conv = nn.Conv2d(c_in, c_out, 5, padding=2) if first else nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(8, c_out), nn.SiLU())


class MNISTClassifier(nn.Module):
    """conv blocks at 32², 16², 8² → pooled to 2×2 → embedding (D) → logits; D = widths[-1].

    ``arch="maxpool"`` (the classifier, D = 128): 3×3 conv blocks with 2×2 max-pooling between them, max-pooled to
    2×2 at the end. The last pooling keeps a coarse 2×2 layout (which quadrant holds the loop of a 6 or a 9); a
    global average pooling, tried first, learned several times more slowly. ``arch="strided"`` (the judge,
    :data:`JUDGE_CONFIG`, D = 96): a 5×5 conv block, then 3×3 convs of stride 2 that downsample as they go (no
    pooling layers), SiLU: no conv layer in common with the classifier's. (A first version, narrower and
    average-pooled at the end, reached 83.8% mean accuracy on the toy faces' attributes; this one 97.9%.)
    """

    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        if cfg.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {cfg.arch!r}")
        chans = (cfg.in_channels, *cfg.widths)
        self.blocks = nn.ModuleList(_block(a, b, cfg.arch, first=i == 0)
                                    for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])))
        D = cfg.widths[-1]
        self.embedding = nn.Sequential(nn.Linear(D * 2 * 2, D), nn.ReLU())
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(D, cfg.num_classes)

    def features(self, x: Tensor) -> list[Tensor]:
        """Activations after each block, before pooling: [(B, w0, H, W), (B, w1, H/2, W/2), …] (LPIPS-style)."""
        B, C, H, W = x.shape  # in [−1, 1]
        if (C, H, W) != (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size):
            n, s = self.cfg.in_channels, self.cfg.image_size
            raise ValueError(f"the classifier takes images (B, {n}, {s}, {s}) in [−1, 1], got {tuple(x.shape)}; "
                             f"use minildm.data.mnist(size={s})'s format")
        feats, h = [], x
        for i, block in enumerate(self.blocks):
            if i > 0 and self.cfg.arch == "maxpool":
                h = F.max_pool2d(h, 2)  # (B, c, H/2^i, W/2^i); "strided" blocks downsample themselves
            h = block(h)
            feats.append(h)
        return feats

    def embed(self, x: Tensor) -> Tensor:
        """The penultimate features (B, D), D = widths[-1]: what the Fréchet distance compares."""
        B = x.shape[0]
        h = F.adaptive_max_pool2d(self.features(x)[-1], 2)  # (B, D, 2, 2)
        return self.embedding(h.reshape(B, -1))  # (B, 4D) → (B, D)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) for images x (B, C, H, W) in [−1, 1]."""
        return self.head(self.dropout(self.embed(x)))


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by a random whole number of pixels in [−max_shift, max_shift], filling with −1 (black)."""
    B, C, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=-1.0)  # (B, C, H + 2p, W + 2p)
    dy, dx = torch.randint(0, 2 * p + 1, (2, B), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])  # (B, C, H, W)


def warmup_cosine_lr(step: int, total: int, lr: float) -> float:
    """The classifiers' learning rate at ``step`` of ``total``: a linear warm-up over the first 10% (without it
    these GroupNorm nets stalled at lr ≥ 2e-3), then a cosine decay to 0.

    lr_k = lr · min(1, (k + 1) / W) · ½(1 + cos(π k / K)),   W = max(1, K // 10)
    """
    warmup = max(1, total // 10)
    return lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` (N, C, H, W) that ``model`` classifies as ``y`` (N,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = sum((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    model.train(was_training)
    return correct / len(x)


def fit_temperature(logits: Tensor, y: Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of softmax(logits / T) on held-out
    labels ``y``, so that the softmax can be read as p(y | x). A network's raw confidences are not probabilities
    (trained to zero loss they are too sure); one scalar fitted on data it did not train on fixes most of it
    without changing any argmax. The NLL is convex in 1 / T, so LBFGS on log T finds the one minimum."""
    if len(logits) != len(y) or logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes) with one label each, got {tuple(logits.shape)} and "
                         f"{tuple(y.shape)}")
    logits = logits.detach().float()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    return float(log_t.detach().exp())


def train_classifier(cfg: ClassifierConfig, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, *,
                     epochs: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                     ckpt_path: str | Path | None = None, progress: bool = True,
                     augment: bool = True) -> tuple[MNISTClassifier, float]:
    """Train an :class:`MNISTClassifier` on x (N, C, H, W) in [−1, 1], labels y (N,); returns (model, test accuracy).

    AdamW with a linear warm-up and a cosine learning-rate decay to 0, cross-entropy, and (``augment``) random
    shifts of ±2 px so the judge does not mind a generated digit drawn slightly off-centre. With ``ckpt_path``
    the result is saved there; if that file already exists it is loaded instead of training (delete it to retrain).
    """
    if ckpt_path is not None and Path(ckpt_path).exists():
        model, ckpt = _load(ckpt_path)
        if ClassifierConfig.from_dict(ckpt["config"]) != cfg:
            warnings.warn(f"{ckpt_path} was trained with {ckpt['config']}, not {cfg.to_dict()}; using it as it is "
                          "(delete it to retrain)", stacklevel=2)
        return model, float(ckpt["test_accuracy"])
    device = x.device
    torch.manual_seed(seed)
    model = MNISTClassifier(cfg).to(device)
    g = torch.Generator().manual_seed(seed)  # CPU: batch order and shifts
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    N = x.shape[0]
    steps_per_epoch = N // batch_size
    total = epochs * steps_per_epoch
    step = 0
    model.train()
    bar = tqdm(total=total, disable=not progress, desc=KIND, dynamic_ncols=True)
    for epoch in range(epochs):
        perm = torch.randperm(N, generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb, yb = x[idx], y[idx].to(device)  # (B, C, H, W), (B,)
            if augment:
                xb = random_shift(xb, 2, generator=g)
            for group in opt.param_groups:
                group["lr"] = warmup_cosine_lr(step, total, lr)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    bar.close()
    test_accuracy = accuracy(model, x_test, y_test)
    model.eval()
    if ckpt_path is not None:
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(ckpt_path, dict(model=weights, test_accuracy=test_accuracy, epochs=epochs, seed=seed),
                        kind=KIND, config=cfg.to_dict())
    return model, test_accuracy


def _load(path: str | Path, map_location="cpu") -> tuple[MNISTClassifier, dict]:
    ckpt = load_checkpoint(path, kind=KIND, map_location=map_location)
    model = MNISTClassifier(ClassifierConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(map_location).eval(), ckpt


def _load_frozen(path: Path, what: str, command: str, device) -> MNISTClassifier:
    if not path.is_file():
        raise CheckpointNotFoundError(f"no MNIST {what} at {path}. Train it (about 3 minutes on 2 CPU cores) "
                                      f"from the repository root with:\n    {command}")
    model, _ = _load(path, map_location=device)
    model.requires_grad_(False)
    return model


def load_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> MNISTClassifier:
    """The trained classifier (default: the shipped ``minildm/weights/mnist_classifier.pt``), frozen, in eval mode."""
    return _load_frozen(Path(path) if path is not None else DEFAULT_PATH, "classifier", TRAIN_COMMAND, device)


def load_judge(path: str | Path | None = None, device: str | torch.device = "cpu") -> MNISTClassifier:
    """The judge of samples (default: the shipped ``minildm/weights/mnist_judge.pt``), frozen, in eval mode: a
    network that no training loss of the course touched (the module doc)."""
    return _load_frozen(Path(path) if path is not None else JUDGE_PATH, "judge", JUDGE_COMMAND, device)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the course's MNIST classifier (or, with --judge, its judge) on "
                                            "all 60,000 training digits.")
    p.add_argument("--judge", action="store_true",
                   help=f"train the judge: JUDGE_CONFIG's architecture, seed {JUDGE_SEED}, default --out {JUDGE_PATH.name}")
    p.add_argument("--epochs", type=int, default=4, help="passes over the 60k training digits (default 4)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (warm-up, then cosine decay to 0)")
    p.add_argument("--seed", type=int, default=None, help=f"default 0 (--judge: {JUDGE_SEED})")
    p.add_argument("--out", default=None, help="checkpoint (an existing one is loaded, not retrained)")
    args = p.parse_args(argv)
    out = args.out or str(JUDGE_PATH if args.judge else DEFAULT_PATH)
    seed = args.seed if args.seed is not None else (JUDGE_SEED if args.judge else 0)
    if Path(out).exists():
        print(f"{out} exists: loading it, not retraining (delete it to retrain)")
    x, y = mnist("train")
    x_test, y_test = mnist("test")
    t0 = time.perf_counter()
    _, acc = train_classifier(JUDGE_CONFIG if args.judge else ClassifierConfig(), x, y, x_test, y_test,
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, ckpt_path=out)
    print(f"test accuracy {acc:.2%} on {len(x_test)} digits ({time.perf_counter() - t0:.0f} s) -> {out}")


if __name__ == "__main__":
    main()
