"""Judging samples: classifier accuracy and a Fréchet distance in the course classifier's features.  Notebooks 04–06.

FID (Heusel et al. 2017) fits a Gaussian to the Inception-v3 features of real images and one to those of generated
images, and measures the Fréchet (2-Wasserstein) distance between the two Gaussians:

    d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

Here the features are the penultimate layer of :class:`minildm.classifier.MNISTClassifier` (D = 128), so the
numbers are *FID-like*, not FID: they cannot be compared with published FIDs, only with each other.

**Compare at equal sample counts only.** The estimate is biased upwards, more so for few samples: two disjoint
sets of *real* test digits are already a positive distance apart, and that distance shrinks as n grows. So always
print :meth:`Evaluator.real_floor` at the same n beside a model's number (docs/DESIGN.md "Targets").
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .classifier import MNISTClassifier, load_judge
from .data import mnist
from .uncertainty import Estimate, bootstrap, bootstrap_mean, over_repeats, ratio


def psnr_per_image(x: Tensor, y: Tensor, value_range: tuple[float, float] = (-1, 1)) -> Tensor:
    """PSNR in dB of each image (B,): 10·log10(peak² / MSE), peak = the value range; a perfect image is 100 dB."""
    lo, hi = value_range
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)  # (B,)
    return (10 * torch.log10((hi - lo) ** 2 / mse.clamp(min=1e-10))).clamp(max=100)


def psnr(x: Tensor, y: Tensor, value_range: tuple[float, float] = (-1, 1)) -> float:
    """Peak signal-to-noise ratio in dB, averaged over images (:func:`psnr_per_image`)."""
    return psnr_per_image(x, y, value_range).mean().item()


def ssim_per_image(x: Tensor, y: Tensor, value_range: tuple[float, float] = (-1, 1), window: int = 7,
                   sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) of each image (B,), Gaussian window, averaged over its pixels and
    channels.

    SSIM = (2μ_xμ_y + C1)(2σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)), C1 = (0.01 L)², C2 = (0.03 L)².
    """
    lo, hi = value_range
    x, y = (x.float() - lo) / (hi - lo), (y.float() - lo) / (hi - lo)  # to [0, 1], so L = 1
    C = x.shape[1]
    coords = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(C, 1, window, window).contiguous()  # (C, 1, k, k), one per channel

    def blur(a: Tensor) -> Tensor:
        return torch.nn.functional.conv2d(a, kernel.to(a.device), groups=C)  # valid windows only

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def ssim(x: Tensor, y: Tensor, value_range: tuple[float, float] = (-1, 1), window: int = 7, sigma: float = 1.5) -> float:
    """Structural similarity averaged over pixels, channels and images (:func:`ssim_per_image`)."""
    return ssim_per_image(x, y, value_range, window, sigma).mean().item()


def _f64(a) -> Tensor:
    """A float64 CPU tensor from a tensor, an array or a list (the statistics are accumulated in float64)."""
    if isinstance(a, Tensor):
        return a.detach().cpu().double()
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def _sqrtm_psd(sigma: Tensor) -> Tensor:
    """Σ^{1/2} of a symmetric positive semi-definite Σ: Σ = V diag(λ) Vᵀ ⇒ Σ^{1/2} = V diag(√λ) Vᵀ."""
    lam, V = torch.linalg.eigh((sigma + sigma.T) / 2)
    # round-off makes the zero eigenvalues of a rank-deficient Σ (N ≤ D samples) slightly negative
    return (V * lam.clamp(min=0).sqrt()) @ V.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² between N(μ1, Σ1) and N(μ2, Σ2) (Heusel et al. 2017, FID's formula); μ (D,), Σ (D, D). In float64.

    No SciPy needed: Σ1Σ2 is similar to the symmetric PSD matrix S Σ2 S, where S = Σ1^{1/2}
    (S⁻¹(Σ1Σ2)S = S Σ2 S), so Tr((Σ1Σ2)^{1/2}) = Σ_i √λ_i(S Σ2 S): two symmetric eigen-decompositions, which
    are stable, where a general ``sqrtm`` of the non-symmetric Σ1Σ2 can return complex round-off.
    """
    return FrechetReference(mu1, sigma1).distance(mu2, sigma2)


class FrechetReference:
    """A fixed Gaussian N(μ, Σ) (a real set's features) with S = Σ^{1/2} computed once: the Fréchet distance of
    many sets to it (a bootstrap: hundreds of resamples against one real set) then costs one symmetric
    eigen-decomposition each instead of two. ``distance(μ', Σ')`` is :func:`frechet_distance` (μ, Σ, μ', Σ')."""

    def __init__(self, mu, sigma):
        self.mu, self.sigma = _f64(mu), _f64(sigma)
        D = self.mu.shape[0]
        if self.mu.shape != (D,) or self.sigma.shape != (D, D):
            raise ValueError(f"need μ (D,) and Σ (D, D) of one D; got μ {tuple(self.mu.shape)} and Σ "
                             f"{tuple(self.sigma.shape)}")
        self.sqrt_sigma = _sqrtm_psd(self.sigma)  # S = Σ^{1/2}, (D, D)

    def distance(self, mu, sigma) -> float:
        mu, sigma = _f64(mu), _f64(sigma)
        if mu.shape != self.mu.shape or sigma.shape != self.sigma.shape:
            raise ValueError(f"need μ (D,) and Σ (D, D) of one D; got μ {tuple(self.mu.shape)}, {tuple(mu.shape)} "
                             f"and Σ {tuple(self.sigma.shape)}, {tuple(sigma.shape)}")
        diff = self.mu - mu  # (D,)
        S = self.sqrt_sigma
        M = S @ sigma @ S  # (D, D), symmetric PSD, same eigenvalues as ΣΣ'
        # Tr((ΣΣ')^{1/2}) = Σ_i √λ_i(Σ^{1/2} Σ' Σ^{1/2})
        tr_covmean = torch.linalg.eigvalsh((M + M.T) / 2).clamp(min=0).sqrt().sum()
        # d² = ‖μ − μ'‖² + Tr(Σ) + Tr(Σ') − 2 Tr((ΣΣ')^{1/2})
        d2 = diff @ diff + torch.trace(self.sigma) + torch.trace(sigma) - 2 * tr_covmean
        return float(d2.clamp(min=0))  # ≥ 0 in exact arithmetic; clamp round-off like −1e-13


def feature_stats(feats) -> tuple[Tensor, Tensor]:
    """Mean μ (D,) and unbiased covariance Σ (D, D) of features (N, D), in float64 (as pytorch-fid's np.cov)."""
    f = _f64(feats)
    N = f.shape[0]
    if f.ndim != 2 or N < 2:
        raise ValueError(f"need features of shape (N, D) with N ≥ 2, got {tuple(f.shape)}")
    mu = f.mean(0)  # (D,)
    centred = f - mu  # (N, D)
    sigma = centred.T @ centred / (N - 1)  # (D, D)
    return mu, sigma


def frechet_distance_features(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))


def real_test_sets(n: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Two disjoint random sets of ``n`` real MNIST test digits, and the first one's labels: ``(x, labels, reference)``,
    each (n, 1, 32, 32) in [−1, 1] but the labels (n,). The same for the same n and seed (a seeded permutation of the
    10,000): what a restoration is measured on (x, its labels) and compared with (reference, for FD)."""
    x, y = mnist("test")
    if 2 * n > x.shape[0]:
        raise ValueError(f"real_floor needs 2n ≤ {x.shape[0]} test digits for two disjoint sets, got n={n}")
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    return x[perm[:n]], y[perm[:n]], x[perm[n:2 * n]]


class Evaluator:
    """Accuracy, confidence and Fréchet distance of images (N, 1, 32, 32) in [−1, 1], judged by the MNIST judge.

    ``Evaluator()`` loads the shipped judge (:func:`~minildm.classifier.load_judge`), a network no training loss
    touched; pass another classifier (e.g. freshly trained) to use it instead. Judging with the perceptual-loss
    classifier (``load_classifier()``) flatters every model trained through its features.
    """

    def __init__(self, classifier: MNISTClassifier | None = None, batch_size: int = 500,
                 device: str | torch.device | None = None):
        self.classifier = (classifier if classifier is not None else load_judge()).eval()
        self.device = torch.device(device) if device is not None else next(self.classifier.parameters()).device
        self.classifier.to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def _map(self, fn, images: Tensor) -> Tensor:
        """Apply ``fn`` to ``images`` batch by batch on the classifier's device; results on the CPU."""
        out = [fn(images[i:i + self.batch_size].to(self.device)).cpu()
               for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(out)

    def logits(self, images: Tensor) -> Tensor:
        """Class logits (N, 10)."""
        return self._map(self.classifier, images)

    def embed(self, images: Tensor) -> Tensor:
        """Penultimate features (N, D): what :meth:`fid` compares."""
        return self._map(self.classifier.embed, images)

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        """Fraction classified as their label, e.g. class-conditional samples as the class they were asked for."""
        return (self.logits(images).argmax(1) == labels.cpu()).float().mean().item()

    def confidence(self, images: Tensor) -> float:
        """Mean max-softmax probability: near 1 for crisp digits, lower for blurry or ambiguous ones."""
        return self.logits(images).softmax(1).amax(1).mean().item()

    def fid(self, images_a: Tensor, images_b: Tensor) -> float:
        """FID-like Fréchet distance between two image sets in the classifier's features (compare at equal n)."""
        return frechet_distance_features(self.embed(images_a), self.embed(images_b))

    @staticmethod
    def real_sets(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Two disjoint random sets of ``n`` real MNIST test digits (the same two for the same n and seed)."""
        a, _, b = real_test_sets(n, seed)
        return a, b

    def real_floor(self, n: int, seed: int = 0) -> float:
        """Fréchet distance between two disjoint random sets of ``n`` real MNIST test digits (the floor at n).

        A model's distance at n samples is only meaningful beside this: print both.
        """
        a, b = self.real_sets(n, seed)
        return self.fid(a, b)

    def fid_to_real(self, images: Tensor, seed: int = 0) -> float:
        """Fréchet distance between ``images`` (n generated digits) and n real test digits: the first of the two
        sets :meth:`real_floor` compares, so the two numbers are directly comparable."""
        return self.fid(images, self.real_sets(images.shape[0], seed)[0])

    def report(self, images: Tensor, labels: Tensor | None = None, seed: int = 0) -> dict:
        """Everything the quality targets (docs/DESIGN.md "Targets") need, for n generated digits: ``n``, ``confidence``, ``fd``
        (to n real digits), ``floor`` (real vs real at n), ``fd_ratio`` = fd / floor (target ≤ 3), and with
        ``labels`` (the classes asked for) ``accuracy`` (target ≥ 0.95)."""
        n = images.shape[0]
        fd, floor = self.fid_to_real(images, seed), self.real_floor(n, seed)
        out = dict(n=n, confidence=self.confidence(images), fd=fd, floor=floor, fd_ratio=fd / floor)
        if labels is not None:
            out["accuracy"] = self.accuracy(images, labels)
        return out

    # ---- the same numbers with their spreads (minildm.uncertainty)
    def real_floor_spread(self, n: int, pairs: int = 3, seed: int = 0) -> Estimate:
        """The floor at ``n`` over ``pairs`` disjoint pairs of real sets: 2·pairs·n distinct digits drawn from MNIST's
        70,000 (train and test), one FD per pair; its mean and range."""
        x = torch.cat([mnist("train")[0], mnist("test")[0]])
        if 2 * pairs * n > x.shape[0]:
            raise ValueError(f"{pairs} disjoint pairs of {n} digits need {2 * pairs * n} > {x.shape[0]} real digits")
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        sets = [x[perm[i * n:(i + 1) * n]] for i in range(2 * pairs)]
        return over_repeats([self.fid(sets[2 * k], sets[2 * k + 1]) for k in range(pairs)], "disjoint real pairs")

    def fd_spread(self, images: Tensor, n_boot: int = 200, seed: int = 0) -> Estimate:
        """:meth:`fid_to_real` with a bootstrap over the generated samples (the real set held fixed), recentred
        (:func:`~minildm.uncertainty.bootstrap`: resampling with replacement inflates a Fréchet distance)."""
        real = FrechetReference(*feature_stats(self.embed(self.real_sets(images.shape[0], seed)[0])))
        feats = self.embed(images).double().numpy()
        return bootstrap(lambda f: real.distance(*feature_stats(f)), feats, n_boot=n_boot, seed=seed, recentre=True)

    def reconstruction_report(self, x_rec: Tensor, x: Tensor, labels: Tensor, reference: Tensor, n_boot: int = 200,
                              seed: int = 0) -> dict:
        """How good are reconstructions ``x_rec`` of the real digits ``x`` (labels ``labels``)? Every number an
        :class:`~minildm.uncertainty.Estimate`, bootstrapped over the images (the same resamples for paired values):

        ``psnr`` and ``ssim`` (means of the per-image values), ``accuracy`` (the judge reads x̃ as its label),
        ``fd`` = FD(x̃, reference) and ``floor`` = FD(x, reference) with ``reference`` other real digits (disjoint
        from ``x``, as many), and ``fd_ratio`` = fd / floor, resampled in pairs: 1 means the reconstructions are as
        far from other real digits as the originals are, the sharpness PSNR cannot see (a blurred x̃ scores well on
        PSNR and far on FD). FD and its ratio are recentred (:func:`~minildm.uncertainty.bootstrap`)."""
        if not (len(x_rec) == len(x) == len(labels)):
            raise ValueError(f"x_rec, x and labels must hold the same images, got {len(x_rec)}, {len(x)}, {len(labels)}")
        ref = FrechetReference(*feature_stats(self.embed(reference)))
        f_rec, f_x = self.embed(x_rec).double().numpy(), self.embed(x).double().numpy()

        def fd(f):
            return ref.distance(*feature_stats(f))

        kw = dict(n_boot=n_boot, seed=seed)
        return dict(n=len(x), psnr=bootstrap_mean(psnr_per_image(x_rec, x).numpy(), **kw),
                    ssim=bootstrap_mean(ssim_per_image(x_rec, x).numpy(), **kw),
                    accuracy=bootstrap_mean((self.logits(x_rec).argmax(1) == labels.cpu()).numpy(), **kw),
                    fd=bootstrap(fd, f_rec, recentre=True, **kw), floor=bootstrap(fd, f_x, recentre=True, **kw),
                    fd_ratio=bootstrap(lambda a, b: fd(a) / fd(b), f_rec, f_x, recentre=True, **kw))

    def within_class(self, images: Tensor, labels: Tensor, n_boot: int = 200, seed: int = 0,
                     pool: tuple[Tensor, Tensor] | None = None) -> Estimate:
        """Diversity *within* each class, for a conditional model: the mean over the requested classes k of
        FD(samples asked for k, real digits of class k) / FD(real k, other real k), all sets of the same size n_k.

        A model that draws the right digit but always the same one scores 100% accuracy and a good digit share,
        yet sits far above 1 here; one whose samples of each class are as varied as real digits of that class sits
        at 1. The real digits (``pool``: images and labels, default MNIST's 10,000 test digits, which the judge never
        saw: its training digits sit measurably closer together in its features) give two disjoint sets per class.
        The interval is a bootstrap over the samples, resampled within each class, recentred."""
        labels = labels.cpu()
        x_all, y_all = pool if pool is not None else mnist("test")
        g = torch.Generator().manual_seed(seed)
        refs, floors = {}, {}
        for k in labels.unique().tolist():
            n = int((labels == k).sum())
            real_k = x_all[y_all == k]
            if n < 2 or 2 * n > len(real_k):
                raise ValueError(f"within_class needs 2 ≤ n ≤ {len(real_k) // 2} samples of class {k} (two disjoint "
                                 f"real sets of n), got {n}")
            real_k = real_k[torch.randperm(len(real_k), generator=g)]
            refs[k] = FrechetReference(*feature_stats(self.embed(real_k[:n])))
            floors[k] = refs[k].distance(*feature_stats(self.embed(real_k[n:2 * n])))

        def mean_ratio(f, y):  # f (n, D) features, y (n,) the classes asked for
            return float(np.mean([refs[k].distance(*feature_stats(f[y == k])) / floors[k] for k in refs]))

        y = labels.numpy()
        return bootstrap(mean_ratio, self.embed(images).double().numpy(), y, n_boot=n_boot, seed=seed, recentre=True,
                         strata=y)

    def report_spread(self, images: Tensor, labels: Tensor | None = None, n_boot: int = 200, pairs: int = 3,
                      seed: int = 0) -> dict:
        """:meth:`report` with every number an :class:`~minildm.uncertainty.Estimate`: ``fd`` (bootstrap over samples),
        ``floor`` (over disjoint real pairs), ``fd_ratio`` (their ratio), ``confidence``, ``accuracy`` with ``labels``,
        and ``digit_shares`` (10 Estimates: each class's share of the samples as the judge reads them; diversity)."""
        n = images.shape[0]
        fd, floor = self.fd_spread(images, n_boot, seed), self.real_floor_spread(n, pairs, seed)
        logits = self.logits(images)
        read = logits.argmax(1).numpy()
        out = dict(n=n, fd=fd, floor=floor, fd_ratio=ratio(fd, floor, seed=seed),
                   confidence=bootstrap_mean(logits.softmax(1).amax(1).numpy(), n_boot=n_boot, seed=seed),
                   digit_shares=[bootstrap_mean(read == k, n_boot=n_boot, seed=seed) for k in range(10)])
        if labels is not None:
            out["accuracy"] = bootstrap_mean(read == labels.cpu().numpy(), n_boot=n_boot, seed=seed)
        return out


def pick_guidance(sweep: dict[float, dict], min_accuracy: float = 0.99) -> float:
    """The guidance scale to ship, chosen from a sweep ``{s: report}`` measured on *one* set of samples (report the
    chosen s on another). Fidelity first, then diversity: among the scales whose ``accuracy`` (an Estimate, or a
    float) reaches ``min_accuracy``, the one with the lowest ``within`` (:meth:`Evaluator.within_class`: 1 = as
    varied within each class as real digits); if none reaches it, the most accurate.

    Guidance trades the two (notebook 05 §6): a larger s draws the asked digit more often and more alike. Choosing
    on accuracy alone ships the largest s; choosing on FD alone ships one that draws the wrong digit."""
    if not sweep:
        raise ValueError("pick_guidance needs a sweep {guidance: report} with at least one scale")

    def value(e):
        return e.value if isinstance(e, Estimate) else float(e)

    good = [s for s, r in sweep.items() if value(r["accuracy"]) >= min_accuracy]
    if not good:
        return max(sweep, key=lambda s: value(sweep[s]["accuracy"]))
    return min(good, key=lambda s: value(sweep[s]["within"]))
