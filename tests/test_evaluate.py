"""Fréchet distance against closed forms and SciPy; the MNIST classifier learns, round-trips, and fails clearly."""
import numpy as np
import pytest
import torch

from minildm.classifier import (DEFAULT_PATH, JUDGE_COMMAND, JUDGE_CONFIG, TRAIN_COMMAND, fit_temperature,
                                ClassifierConfig, MNISTClassifier, load_classifier, load_judge, train_classifier)
from minildm.checkpoint import CheckpointNotFoundError
from minildm.data import mnist
from minildm.evaluate import (Evaluator, feature_stats, frechet_distance, frechet_distance_features, pick_guidance,
                              real_test_sets)
from minildm.uncertainty import over_repeats



def feats(N=300, D=32, seed=0):
    """Correlated Gaussian features (N, D): x = z A with a random mixing matrix A."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64) / D**0.5
    return torch.randn(N, D, generator=g, dtype=torch.float64) @ A + torch.randn(D, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------- Fréchet distance

def test_distance_to_itself_is_zero():
    f = feats()
    mu, sigma = feature_stats(f)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * torch.trace(sigma).item()
    # also when N < D, so that Σ is singular and its eigenvalues ~0 come out slightly negative
    f = feats(N=20, D=64)
    assert abs(frechet_distance_features(f, f)) < 1e-6 * torch.trace(feature_stats(f)[1]).item()


def test_grows_with_a_shift_of_the_mean():
    f = feats(D=16)
    # equal covariances: d² = ‖μ1 − μ2‖² = shift² · D exactly
    d = [frechet_distance_features(f, f + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(0 < a < b for a, b in zip(d, d[1:]))
    np.testing.assert_allclose(d, [s**2 * 16 for s in (0.1, 0.5, 1.0, 2.0)], rtol=1e-6)


@pytest.mark.parametrize("D", [16, 32, 64])
def test_matches_scipy_sqrtm(D):
    linalg = pytest.importorskip("scipy.linalg")
    f1, f2 = feats(N=400, D=D, seed=1).numpy(), (1.3 * feats(N=500, D=D, seed=2)).numpy()
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    # pytorch-fid's reference computation: Tr(sqrtm(Σ1 Σ2)), discarding the imaginary round-off
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_features(f1, f2) == pytest.approx(expected, rel=1e-6)  # feature_stats == np.cov


def test_symmetric():
    f1, f2 = feats(seed=3), 0.5 * feats(seed=4) + 1
    assert frechet_distance_features(f1, f2) == pytest.approx(frechet_distance_features(f2, f1), rel=1e-9)


def test_closed_form_for_diagonal_gaussians():
    # Σ1 = diag(a), Σ2 = diag(b) commute, so (Σ1Σ2)^{1/2} = diag(√(ab))
    # and d² = ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)²
    g = torch.Generator().manual_seed(5)
    a = torch.rand(24, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(24, generator=g, dtype=torch.float64) * 3
    mu1, mu2 = torch.randn(24, generator=g, dtype=torch.float64), torch.zeros(24, dtype=torch.float64)
    expected = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected.item(), rel=1e-9)
    # one dimension: d² = (m1 − m2)² + (s1 − s2)² for N(m1, s1²), N(m2, s2²)
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(2**2 + (2 - 3) ** 2)


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="Σ"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError, match="N ≥ 2"):
        feature_stats(torch.zeros(1, 8))


# ---------------------------------------------------------------- the classifier

SMALL = ClassifierConfig(widths=(16, 32, 64))  # fast for tests; the shipped one uses the defaults


def test_shapes():
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    model = MNISTClassifier(ClassifierConfig())
    assert model(x).shape == (5, 10)
    assert [tuple(f.shape) for f in model.features(x)] == [(5, 32, 32, 32), (5, 64, 16, 16), (5, 128, 8, 8)]
    assert model.embed(x).shape == (5, 128)
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        model(torch.zeros(2, 1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) * 4 < 1e6  # the shipped checkpoint stays under 1 MB
    assert ClassifierConfig.from_dict(SMALL.to_dict()) == SMALL


@pytest.fixture(scope="module")
def digits():
    x, y = mnist("train", n=700)
    return x[:500], y[:500], x[500:], y[500:]  # 500 to learn from, 200 held out


def test_tiny_training_beats_chance_and_round_trips(digits, tmp_path):
    x, y, x_val, y_val = digits
    path = tmp_path / "clf.pt"
    model, acc = train_classifier(SMALL, x, y, x_val, y_val, epochs=10, batch_size=32, lr=2e-3, seed=0,
                                  ckpt_path=path, progress=False)  # 150 steps, ~3 s; reaches ~0.9
    assert acc > 0.6, f"held-out accuracy {acc:.2f} after 150 steps on 500 digits (chance is 0.10)"
    # the checkpoint gives the same network: identical logits
    loaded = load_classifier(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded(x_val), model(x_val), rtol=0, atol=0)
    # and a second call with the same path loads it instead of training
    again, acc_again = train_classifier(SMALL, x, y, x_val, y_val, epochs=10, batch_size=32, lr=2e-3, seed=0,
                                        ckpt_path=path, progress=False)
    assert acc_again == acc
    ev = Evaluator(loaded)
    assert ev.accuracy(x_val, y_val) == pytest.approx(acc)
    assert 0.1 < ev.confidence(x_val) <= 1
    assert ev.embed(x_val).shape == (200, 64)
    assert ev.fid(x_val[:100], x_val[:100]) == pytest.approx(0, abs=1e-6)


def test_missing_classifier_says_how_to_train(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as e:
        load_classifier(tmp_path / "nope.pt")
    assert TRAIN_COMMAND in str(e.value)
    assert "python -m minildm.classifier --out minildm/weights/mnist_classifier.pt" in str(e.value)


def test_the_judges_architecture():
    """The judge shares no conv layer with the classifier: 5×5 then strided 3×3 convolutions, no pooling layers."""
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    judge = MNISTClassifier(JUDGE_CONFIG)
    assert [tuple(f.shape) for f in judge.features(x)] == [(5, 24, 32, 32), (5, 48, 16, 16), (5, 96, 8, 8)]
    assert judge.embed(x).shape == (5, 96)
    kernels = [(m.kernel_size, m.stride) for m in judge.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [((5, 5), (1, 1)), ((3, 3), (2, 2)), ((3, 3), (2, 2))]
    assert all(isinstance(block[-1], torch.nn.SiLU) for block in judge.blocks)  # the classifier's: ReLU
    with pytest.raises(ValueError, match="arch must be one of"):
        MNISTClassifier(ClassifierConfig(arch="resnet"))


def test_missing_judge_says_how_to_train(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="--judge"):
        load_judge(tmp_path / "nope.pt")
    assert "--judge" in JUDGE_COMMAND


@pytest.mark.skipif(not DEFAULT_PATH.exists(), reason=f"no shipped classifier yet; train it with {TRAIN_COMMAND}")
def test_shipped_classifier_and_judge_on_the_mnist_test_set():
    """Both ≥ 98.5% on the 10,000 test digits; the Evaluator's default is the judge, not the perceptual-loss
    classifier (a network that trained the autoencoder must not grade it); the two disagree on some digits."""
    x, y = mnist("test")
    clf, judge = load_classifier(), load_judge()
    assert clf.cfg.arch == "maxpool" and judge.cfg == JUDGE_CONFIG
    ev = Evaluator()
    assert ev.classifier.cfg == JUDGE_CONFIG
    acc = ev.accuracy(x, y)
    assert acc >= 0.985, f"shipped judge: {acc:.2%} on the 10,000 MNIST test digits"
    acc_clf = Evaluator(clf).accuracy(x, y)
    assert acc_clf >= 0.985, f"shipped classifier: {acc_clf:.2%}"
    with torch.no_grad():
        assert (clf(x[:2000]).argmax(1) != judge(x[:2000]).argmax(1)).any()  # two networks, not one twice


def test_psnr_and_ssim_known_values():
    from minildm.evaluate import psnr, ssim

    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert psnr(x, x) == pytest.approx(100.0)
    # a constant error of 0.2 on a range of 2: PSNR = 10 log10(4 / 0.04) = 20 dB
    assert psnr(x, x + 0.2) == pytest.approx(20.0, abs=1e-4)
    noisy = x + 0.3 * torch.randn_like(x)
    assert ssim(noisy, x) < 0.9
    assert ssim(noisy, x) < ssim(x + 0.05 * torch.randn_like(x), x)
    # agrees with scikit-image's definition where it is installed
    skm = pytest.importorskip("skimage.metrics")
    ref = skm.structural_similarity(noisy[0, 0].numpy(), x[0, 0].numpy(), data_range=2.0, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False)
    assert ssim(noisy[:1], x[:1]) == pytest.approx(ref, abs=2e-2)


def test_reconstruction_report_on_known_cases():
    """Perfect reconstructions sit at exactly 1× the floor, PSNR 100 dB and SSIM 1 with zero spread; blurred ones
    keep a decent PSNR yet sit far from real digits in the judge's features, with an interval that excludes 1
    (the sharpness PSNR misses: notebook 03). Mismatched sets are a clear error."""
    x, y = mnist("test", n=400)
    ref = mnist("test")[0][400:800]  # other digits, from the same writers as x
    ev = Evaluator()
    same = ev.reconstruction_report(x.clone(), x, y, ref, n_boot=50)
    assert same["fd_ratio"].value == pytest.approx(1.0) and same["fd_ratio"].half_width < 1e-9
    assert same["psnr"].value == pytest.approx(100.0) and same["ssim"].value == pytest.approx(1.0, abs=1e-5)
    assert same["accuracy"].value == pytest.approx(ev.accuracy(x, y))
    assert same["fd"].value == pytest.approx(same["floor"].value)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    rep = ev.reconstruction_report(blurred, x, y, ref, n_boot=50)
    assert 14 < rep["psnr"].value < 30, rep["psnr"]
    assert rep["fd_ratio"].low > 1.5, rep["fd_ratio"]  # the judge sees the blur
    assert rep["psnr"].low <= rep["psnr"].value <= rep["psnr"].high
    with pytest.raises(ValueError, match="same images"):
        ev.reconstruction_report(blurred[:10], x, y, ref)


def test_within_class_catches_right_but_alike_samples():
    """Real digits of each class as the "samples" sit at about 1× (their interval covers 1); a generator that draws
    the asked digit but always the same one is 100% accurate and far above 1: what accuracy and digit shares miss."""
    ev = Evaluator()
    x_all, y_all = mnist("test")
    perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))  # MNIST's two test halves differ
    x_all, y_all = x_all[perm], y_all[perm]
    x, y = x_all[5000:], y_all[5000:]
    keep = torch.cat([torch.nonzero(y == k)[:100, 0] for k in range(10)])
    pool = (x_all[:5000], y_all[:5000])  # the real references, disjoint from the "samples"
    real = ev.within_class(x[keep], y[keep], n_boot=100, pool=pool)
    assert 0.6 < real.value < 1.6 and real.low < 1.0 < real.high * 1.05, real
    alike = torch.cat([x[torch.nonzero(y == k)[0, 0]].expand(100, -1, -1, -1) for k in range(10)])
    same_labels = torch.arange(10).repeat_interleave(100)
    collapsed = ev.within_class(alike + 0.02 * torch.randn_like(alike), same_labels, n_boot=100, pool=pool)
    assert ev.accuracy(alike, same_labels) > 0.9
    assert collapsed.low > 5 * real.high, (collapsed, real)
    with pytest.raises(ValueError, match="within_class needs"):
        ev.within_class(x[:1], y[:1])


def test_pick_guidance_puts_fidelity_first_then_diversity():
    """The shipped default: the most varied scale among those accurate enough; the most accurate when none is."""
    sweep = {1.0: dict(accuracy=0.95, within=1.2), 1.5: dict(accuracy=0.992, within=1.6),
             2.0: dict(accuracy=0.996, within=2.5), 3.0: dict(accuracy=0.999, within=4.0)}
    assert pick_guidance(sweep) == 1.5  # accuracy alone would pick 3, diversity alone 1
    assert pick_guidance(sweep, min_accuracy=0.995) == 2.0
    assert pick_guidance(sweep, min_accuracy=0.9999) == 3.0  # none reaches it: the most accurate
    est = {s: {k: over_repeats([v, v]) for k, v in r.items()} for s, r in sweep.items()}  # Estimates work alike
    assert pick_guidance(est) == 1.5
    with pytest.raises(ValueError, match="at least one scale"):
        pick_guidance({})


def test_frechet_reference_is_the_distance_with_the_square_root_kept():
    """FrechetReference (a real set's Σ^{1/2} computed once, for bootstraps) gives frechet_distance in either order:
    Tr((Σ1Σ2)^{1/2}) = Tr((Σ2Σ1)^{1/2}), also for a rank-deficient sample covariance (N < D)."""
    from minildm.evaluate import FrechetReference

    g = torch.Generator().manual_seed(3)
    real = feature_stats(torch.randn(400, 16, generator=g) @ torch.randn(16, 16, generator=g))
    ref = FrechetReference(*real)
    for n in (8, 200):  # 8 < D = 16: Σ of the sample is singular
        sample = feature_stats(torch.randn(n, 16, generator=g) + 0.5)
        assert ref.distance(*sample) == pytest.approx(frechet_distance(*sample, *real), rel=1e-9)
        assert ref.distance(*sample) == pytest.approx(frechet_distance(*real, *sample), rel=1e-9)
    with pytest.raises(ValueError, match="one D"):
        ref.distance(torch.zeros(3), torch.eye(3))


def test_real_test_sets_are_disjoint_labelled_and_the_floors_sets():
    x_all, y_all = mnist("test")
    x, labels, ref = real_test_sets(300, seed=3)
    assert x.shape == ref.shape == (300, 1, 32, 32) and labels.shape == (300,)
    index = {tuple(v.flatten()[::7].tolist()): i for i, v in enumerate(x_all)}  # each test digit by its pixels
    ix = [index[tuple(v.flatten()[::7].tolist())] for v in x]
    ir = [index[tuple(v.flatten()[::7].tolist())] for v in ref]
    assert not set(ix) & set(ir)  # disjoint
    assert torch.equal(labels, y_all[ix])  # each label is its own digit's
    a, b = Evaluator.real_sets(300, seed=3)
    assert torch.equal(a, x) and torch.equal(b, ref)  # the sets real_floor compares
    with pytest.raises(ValueError, match="2n ≤ 10000"):
        real_test_sets(5001)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    """Labels drawn from softmax(z / 2.5) for random logits z: the NLL's minimiser is T = 2.5, within the sampling
    error of 20,000 labels (±3% here); temperature scaling never changes an argmax, and bad shapes are one line."""
    g = torch.Generator().manual_seed(0)
    z = 4 * torch.randn(20000, 10, generator=g)
    y = torch.multinomial((z / 2.5).softmax(-1), 1, generator=g)[:, 0]
    assert fit_temperature(z, y) == pytest.approx(2.5, rel=0.03)
    sharp = z.argmax(-1)  # labels that follow the argmax: the fitted softmax must get sharper, T < 1
    assert fit_temperature(z, sharp) < 0.2
    with pytest.raises(ValueError, match="one label each"):
        fit_temperature(z, y[:10])
