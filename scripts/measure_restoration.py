"""The concatenation models measured (issue 16): ×4 super-resolution and inpainting of MNIST, against their baselines.

Every row judges n real MNIST **test** digits x (a seeded permutation; the FD reference is another n test digits,
disjoint from them) and what a method made of them, each number with its 95% bootstrap interval over the images
(:meth:`minildm.evaluate.Evaluator.reconstruction_report`, paired resamples for the FD ratio):

* **super-resolution** (``--sr``): LR = the 4 × 4 average pool of x (8 × 8); rows bicubic, the regression baseline
  (``--regression``, :class:`minildm.restoration.Regression`: the SR model's own UNet trained with L1), and the
  diffusion model with the samplers of ``--samplers``. Columns PSNR and SSIM against x, the judge's accuracy against
  the true labels, FD to the reference / the floor FD(x, reference), and consistency ‖avgpool₄(SR) − LR‖ (mean
  absolute, [−1, 1] units). Diversity: the mean |SR_seed0 − SR_seed1| between two draws for the same LR, where
  bicubic and regression give exactly 0.
* **inpainting** (``--inpaint``): the right half of each x masked (m = 1 there); rows the masked input itself, the
  "replace" baseline with an unconditional model (``--uncond``, :func:`minildm.restoration.paste_inpaint`), and the
  inpainting model. The known half is pasted back (so the error outside the mask is exactly 0 there, said so); the
  inpainting model's error outside the mask *without* pasting is its own column (mean absolute in [0, 1], the
  command line's units, as issue 16's target ≤ 0.05 reads). Diversity as above, inside the mask.

The judge (minildm/weights/mnist_judge.pt) is the network no training loss of these models touched.

    PYTHONPATH=. python scripts/measure_restoration.py --sr runs/cpu/latent_mnist_sr.pt \\
        --regression runs/cpu/latent_mnist_sr_regression.pt --inpaint runs/cpu/latent_mnist_inpaint.pt --n 1000
    python scripts/measure_restoration.py --sr latent_mnist_sr --inpaint latent_mnist_inpaint --n 200 --json out.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from minildm.classifier import JUDGE_CONFIG, accuracy, train_classifier
from minildm.config import runs_dir
from minildm.data import mnist
from minildm.evaluate import Evaluator, real_test_sets
from minildm.pairs import bicubic, consistency, error_outside_mask, half_mask, low_resolution, masked_image, paste_known
from minildm.release import load_diffusion
from minildm.restoration import inpaint, load_regression, paste_inpaint, upscale
from minildm.uncertainty import Estimate, bootstrap_mean

STEPS = 50  # sampling steps for every diffusion row (--steps)
BATCH = 250


def test_digits(n: int, seed: int = 0):
    """n test digits to restore, their labels, and another n disjoint ones as the FD reference
    (:func:`minildm.evaluate.real_test_sets`)."""
    try:
        return real_test_sets(n, seed)
    except ValueError:
        raise SystemExit(f"--n {n}: needs 2n ≤ 10000 test digits (the images and a disjoint FD reference)") from None


def batched(fn, *tensors, batch: int = BATCH):
    return torch.cat([fn(*(t[i:i + batch] for t in tensors)) for i in range(0, len(tensors[0]), batch)])


def row(ev: Evaluator, name: str, out: torch.Tensor, x, labels, ref, seconds: float, extra: dict) -> dict:
    r = ev.reconstruction_report(out, x, labels, ref)
    r.update(extra, seconds=seconds, name=name)
    return r


def fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, (Estimate, float)) else str(v)


def measure_sr(args, ev, x, labels, ref) -> list[dict]:
    lr = low_resolution(x)
    rows = []
    t0 = time.perf_counter()
    bic = bicubic(lr)
    rows.append(row(ev, "bicubic", bic, x, labels, ref, time.perf_counter() - t0,
                    dict(consistency=bootstrap_mean(consistency(bic, lr).numpy()), spread=0.0)))
    if args.regression:
        reg = load_regression(args.regression)
        t0 = time.perf_counter()
        out = reg.predict(lr)
        rows.append(row(ev, f"regression (L1, {len(reg.history)} steps)", out, x, labels, ref,
                        time.perf_counter() - t0, dict(consistency=bootstrap_mean(consistency(out, lr).numpy()),
                                                       spread=0.0)))
    model = load_diffusion(args.sr)
    for sampler, w in [(sp, w) for sp in args.samplers for w in args.sr_guidance]:
        t0 = time.perf_counter()
        draws = [batched(lambda a, s=s: upscale(model, (a + 1) / 2, seed=s, steps=args.steps, sampler=sampler,
                                                guidance=w) * 2 - 1, lr, batch=BATCH) for s in (0, 1)]
        spread = bootstrap_mean((draws[0] - draws[1]).abs().flatten(1).mean(1).numpy())
        name = f"diffusion, {sampler} {args.steps} steps" + (f", guidance {w:g}" if w != 1 else "")
        rows.append(row(ev, name, draws[0], x, labels, ref,
                        (time.perf_counter() - t0) / 2,
                        dict(consistency=bootstrap_mean(consistency(draws[0], lr).numpy()), spread=spread)))
    return rows


def measure_inpaint(args, ev, x, labels, ref) -> list[dict]:
    m = half_mask(len(x), x.shape[-1], "right")
    rows = [row(ev, "masked input (right half grey)", masked_image(x, m), x, labels, ref, 0.0,
                dict(outside=0.0, spread=0.0))]
    if args.uncond:
        u = load_diffusion(args.uncond)
        t0 = time.perf_counter()
        draws = [paste_known(batched(lambda a, b, s=s: paste_inpaint(u, a, b, steps=args.steps, seed=s), x, m), x, m)
                 for s in (0, 1)]
        rows.append(row(ev, f"replace-known baseline ({u.name}, DDIM {args.steps})", draws[0], x, labels, ref,
                        (time.perf_counter() - t0) / 2,
                        dict(outside=0.0, spread=bootstrap_mean(((draws[0] - draws[1]).abs() * m).flatten(1).sum(1)
                                                                .div(m.flatten(1).sum(1)).numpy()))))
    model = load_diffusion(args.inpaint)
    for sampler, w in [(sp, w) for sp in args.samplers for w in args.inpaint_guidance]:
        t0 = time.perf_counter()
        raw = [batched(lambda a, b, s=s: inpaint(model, (a + 1) / 2, b, seed=s, steps=args.steps, sampler=sampler,
                                                  paste=False, guidance=w) * 2 - 1, x, m) for s in (0, 1)]
        seconds = (time.perf_counter() - t0) / 2
        pasted = paste_known(raw[0], x, m)
        inside = ((raw[0] - raw[1]).abs() * m).flatten(1).sum(1) / m.flatten(1).sum(1)
        rows.append(row(ev, f"inpainting model, {sampler} {args.steps} steps, guidance {w:g} (pasted)", pasted, x, labels, ref, seconds,
                        dict(outside=bootstrap_mean(error_outside_mask((raw[0] + 1) / 2, (x + 1) / 2, m).numpy()),
                             spread=bootstrap_mean(inside.numpy()))))
    return rows


def half_ceiling(x, labels, epochs: int = 2) -> float:
    """How much of the label the known half carries, roughly: the judge's architecture and recipe (another seed),
    trained on MNIST's training digits with the same right half masked, its argmax read on the masked test digits.
    One uncalibrated 2-epoch classifier: a *lower* bound on what a best reader of the left half gets, so a fill may
    beat it; ``scripts/restoration_ceilings.py`` gives the calibrated, ensembled bounds (argmax and an exact
    sampler's E[p]) that RESULTS quotes. Cached in runs/<mode>/judge_left_half.pt (about 5 min on one thread)."""
    train_x, train_y = mnist("train")
    test_x, test_y = mnist("test")
    mask = half_mask(1, 32, "right")
    clf, _ = train_classifier(JUDGE_CONFIG, masked_image(train_x, mask), train_y, masked_image(test_x, mask), test_y,
                              epochs=epochs, seed=2, ckpt_path=runs_dir() / "judge_left_half.pt", progress=False,
                              augment=False)
    return accuracy(clf, masked_image(x, mask.expand(len(x), -1, -1, -1)), labels)


def show(title: str, rows: list[dict], extra: list[tuple[str, str]]) -> None:
    print(f"\n### {title}\n\n| method | PSNR dB | SSIM | judge accuracy | FD / floor | "
          + " | ".join(h for h, _ in extra) + " | s |\n|---|" + "---|" * (4 + len(extra)) + "---:|")
    for r in rows:
        print(f"| {r['name']} | {r['psnr']:.2f} | {r['ssim']:.3f} | **{r['accuracy']:.1%}** | {r['fd_ratio']:.2f} | "
              + " | ".join(fmt(r[k]) for _, k in extra) + f" | {r['seconds']:.0f} |", flush=True)


def as_json(r: dict) -> dict:
    def one(v):
        return v.to_dict() if isinstance(v, Estimate) else v
    return {k: one(v) for k, v in r.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sr", help="a super-resolution checkpoint or shipped name (latent_mnist_sr)")
    p.add_argument("--regression", help="the SR regression baseline's checkpoint (runs/cpu/latent_mnist_sr_regression.pt)")
    p.add_argument("--inpaint", help="an inpainting checkpoint or shipped name (latent_mnist_inpaint)")
    p.add_argument("--uncond", default="latent_mnist", help="the unconditional model of the replace baseline")
    p.add_argument("--samplers", nargs="+", default=["ddpm", "ddim"])
    p.add_argument("--sr-guidance", type=float, nargs="+", default=[1.0],
                   help="guidance scales for the SR model (only one trained with a null condition, null_value)")
    p.add_argument("--inpaint-guidance", type=float, nargs="+", default=[1.0],
                   help="guidance scales for the inpainting model (its ∅ is the fully masked condition)")
    p.add_argument("--steps", type=int, default=STEPS, help="sampling steps of every diffusion row")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="which test digits (and their disjoint reference)")
    p.add_argument("--half-ceiling", action="store_true",
                   help="also train (once, cached) a classifier on left halves: a lower bound on the label information they carry")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.steps < 1:
        raise SystemExit(f"--steps {args.steps}: give at least 1 sampling step (50 is the course's default)")
    if not (args.sr or args.inpaint):
        raise SystemExit("give --sr MODEL and/or --inpaint MODEL (checkpoints or shipped names)")
    torch.set_grad_enabled(False)
    ev = Evaluator()
    x, labels, ref = test_digits(args.n, args.seed)
    print(f"n = {args.n} MNIST test digits (seed {args.seed}), FD reference = {args.n} other test digits; the judge "
          "minildm/weights/mnist_judge.pt; 95% bootstrap intervals over the images; FD / floor = FD(method, ref) / "
          "FD(x, ref), resampled in pairs")
    out = {}
    if args.sr:
        out["sr"] = measure_sr(args, ev, x, labels, ref)
        show(f"×4 super-resolution, 8×8 → 32×32 ({args.sr})", out["sr"],
             [("‖avgpool₄(SR) − LR‖", "consistency"), ("two draws apart", "spread")])
    if args.inpaint:
        out["inpaint"] = measure_inpaint(args, ev, x, labels, ref)
        show(f"inpainting, right half masked ({args.inpaint})", out["inpaint"],
             [("error outside mask, unpasted", "outside"), ("two draws apart, inside", "spread")])
        if args.half_ceiling:
            out["left_half_ceiling"] = half_ceiling(x, labels)
            print(f"\nleft half: a judge-architecture classifier trained on left halves reads {out['left_half_ceiling']:.1%}"
                  " of these masked digits right (a lower bound on what the half says of the label; "
                  "scripts/restoration_ceilings.py for the calibrated bounds)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(n=args.n, seed=args.seed, steps=args.steps, models=dict(sr=args.sr, regression=args.regression,
                           inpaint=args.inpaint, uncond=args.uncond),
                           left_half_ceiling=out.pop("left_half_ceiling", None),
                           rows={k: [as_json(r) for r in v] for k, v in out.items()}), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
