"""minildm.uncertainty on cases with known answers: the bootstrap interval covers the true value of synthetic sets at
its nominal rate, repeats give their range, ratios divide, halves are disjoint; and the Evaluator's spreads."""
import json

import numpy as np
import pytest
import torch

from minildm.uncertainty import Estimate, bootstrap, bootstrap_mean, over_repeats, ratio, split_halves


def coverage(draw, truth, reps: int = 300, n_boot: int = 400) -> float:
    """How often the 95% bootstrap interval of the mean of ``draw(rng)`` contains ``truth``, over ``reps`` data sets."""
    rng = np.random.default_rng(123)
    hits = [bootstrap_mean(draw(rng), n_boot=n_boot, seed=i).contains(truth) for i in range(reps)]
    return float(np.mean(hits))


def test_bootstrap_covers_a_gaussian_mean_at_its_nominal_rate():
    # 300 data sets: the count of hits is Binomial(300, 0.95), sd 1.3 points; the percentile bootstrap of a mean
    # at n = 100 under-covers slightly (about 94%), so 0.90–0.99 is a > 3 sd band around what it should give
    c = coverage(lambda rng: rng.normal(3.0, 2.0, size=100), truth=3.0)
    assert 0.90 <= c <= 0.99, c


def test_bootstrap_covers_an_accuracy_at_its_nominal_rate():
    """A judge's accuracy: n = 200 Bernoulli(0.9) outcomes (the rate of a near-perfect conditional model)."""
    c = coverage(lambda rng: (rng.random(200) < 0.9).astype(float), truth=0.9)
    assert 0.90 <= c <= 0.99, c


def test_bootstrap_width_shrinks_as_one_over_root_n():
    rng = np.random.default_rng(0)
    w100 = bootstrap_mean(rng.normal(size=100), n_boot=2000).half_width
    w1600 = bootstrap_mean(rng.normal(size=1600), n_boot=2000).half_width
    assert w100 / w1600 == pytest.approx(4.0, rel=0.25)  # √(1600/100) = 4
    assert w100 == pytest.approx(1.96 / 10, rel=0.25)  # z·σ/√n with σ = 1, n = 100


def test_bootstrap_keeps_pairs_together():
    """Images and their labels are resampled with the same indices: a statistic of the pair stays exact."""
    x = np.arange(50.0)
    est = bootstrap(lambda a, b: float(np.all(a == b)), x, x.copy(), n_boot=100)
    assert est.low == est.high == est.value == 1.0
    with pytest.raises(ValueError, match="same number"):
        bootstrap(lambda a, b: 0.0, x, x[:10])


def test_recentring_keeps_the_spread_and_moves_the_centre():
    """A statistic that resampling biases (here the number of distinct values, which resamples lower): recentred,
    the replicates' mean is the estimate and their spread is unchanged."""
    x = np.arange(200.0)
    raw = bootstrap(lambda v: float(len(np.unique(v))), x, n_boot=300)
    fixed = bootstrap(lambda v: float(len(np.unique(v))), x, n_boot=300, recentre=True)
    assert not raw.contains(200.0)  # about 63% of the values survive a resample
    assert fixed.replicates.mean() == pytest.approx(200.0)
    assert fixed.replicates.std() == pytest.approx(raw.replicates.std())
    assert fixed.contains(200.0)


def test_over_repeats_and_ratio():
    r = over_repeats([4.0, 5.0, 6.0], "seeds")
    assert (r.value, r.low, r.high, r.n) == (5.0, 4.0, 6.0, 3)
    assert str(r) == "5 [4, 6]"
    with pytest.raises(ValueError, match="at least 2"):
        over_repeats([1.0])
    num = Estimate(10.0, 9.0, 11.0, "x", 3, np.array([9.0, 10.0, 11.0]))
    q = ratio(num, r)
    assert q.value == 2.0
    assert q.low == pytest.approx(9 / 6, abs=0.01)  # the extremes: 9/6 and 11/4
    assert q.high == pytest.approx(11 / 4, abs=0.01)
    with pytest.raises(ValueError, match="replicates"):
        ratio(Estimate(1.0, 1.0, 1.0, "x", 1), r)


def test_split_halves_are_disjoint_and_cover():
    a, b = split_halves(101, seed=3)
    assert len(a) == 50
    assert len(b) == 51
    assert set(a).isdisjoint(b)
    assert sorted(set(a) | set(b)) == list(range(101))


def test_evaluator_spreads_on_real_digits():
    """Real digits judged against real digits: the FD interval holds the point estimate and overlaps the floor's
    range, the ratio's interval holds 1-ish values, and each digit's share is near 10%."""
    from minildm.data import mnist
    from minildm.evaluate import Evaluator

    ev = Evaluator()
    x, y = mnist("train", n=300)
    rep = ev.report_spread(x, labels=y, n_boot=50, pairs=2)
    assert rep["fd"].contains(rep["fd"].value)
    assert rep["floor"].n == 2
    assert rep["fd_ratio"].low < 1.5  # real digits are as far from real digits as real digits are
    assert rep["accuracy"].value > 0.97
    assert len(rep["digit_shares"]) == 10
    assert sum(s.value for s in rep["digit_shares"]) == pytest.approx(1.0)
    assert all(0.03 < s.value < 0.2 for s in rep["digit_shares"])
    torch.testing.assert_close(torch.tensor(rep["fd"].value), torch.tensor(ev.fid_to_real(x)))


def test_an_estimate_formats_all_three_numbers_alike():
    e = Estimate(0.996, 0.993, 0.999, "bootstrap 95%", 2000)
    assert f"{e:.1%}" == "99.6% [99.3%, 99.9%]"
    assert f"{e:.2f}" == "1.00 [0.99, 1.00]"
    assert f"{e}" == str(e) == "0.996 [0.993, 0.999]"
    assert f"{e:>24.1%}" == "    99.6% [99.3%, 99.9%]"  # a width pads the whole, for tables
    assert f"{e:<19.2f}|" == "1.00 [0.99, 1.00]  |"


def test_a_stratified_bootstrap_keeps_each_stratum_whole():
    """With strata, every resample holds as many members of each stratum as the data does: the share of stratum 1
    then has no spread at all, while the plain bootstrap's share varies."""
    strata = np.array([0] * 30 + [1] * 70)
    share = lambda s: float(np.mean(s == 1))  # noqa: E731
    plain = bootstrap(share, strata, n_boot=200)
    kept = bootstrap(share, strata, n_boot=200, strata=strata)
    assert plain.half_width > 0.03
    assert kept.low == kept.high == kept.value == pytest.approx(0.7)


def test_estimate_to_dict_is_the_json_record():
    """What every measurement script writes for a number: value, interval and n, plain floats, no replicates."""
    e = bootstrap_mean(np.arange(10.0), n_boot=200)
    d = e.to_dict()
    assert d == dict(value=4.5, low=e.low, high=e.high, n=10) and set(d) == {"value", "low", "high", "n"}
    assert json.loads(json.dumps(d)) == d
