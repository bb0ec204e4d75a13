"""The shipped weights (minildm/weights/): they load, sample what they promise, and pass their quality gates (docs/DESIGN.md "Targets").

The gate runs the shipped latent model as `demo` does (ancestral sampling, 50 steps, seed 0) and judges the digits with the
course's judge (minildm/weights/mnist_judge.pt: no training loss touched it), the faces with the face judge. Figures measured when the weights were made are in minildm/weights/README.md; the thresholds
here sit below them with room for the noise of a 200-sample estimate, so a regression fails and a reseed does not.
"""
import numpy as np
import pytest
import torch

from minildm.__main__ import main
from minildm.checkpoint import load_checkpoint
from minildm.evaluate import Evaluator
from minildm.release import load_diffusion
from minildm.shipped import WEIGHTS_DIR, shipped
from minildm.uncertainty import split_halves

N_GATE = 500  # samples judged in CI (~20 s on one core); the real-vs-real floor at n = 500 is about 4
UNCOND_FD_MAX = 2.2


@pytest.fixture(scope="module")
def model():
    return load_diffusion(shipped("latent_mnist"))


@pytest.fixture(scope="module")
def gate(model):
    ev = Evaluator()
    images = model.sample(N_GATE, sampler="ddpm", steps=50, seed=0)  # what `demo` draws
    return images, ev.report(images)


def test_shipped_latent_model_is_small_and_self_contained(model):
    path = shipped("latent_mnist")
    assert path.stat().st_size < 5e6  # "a few MB in all"
    ckpt = load_checkpoint(path, kind="latent_mnist")
    assert "optimizer" not in ckpt
    assert "model" not in ckpt  # a release: EMA weights only
    assert ckpt["release"]["command"].startswith("python -m minildm train latent-mnist")
    assert model.is_latent
    assert model.sample_shape == (4, 8, 8)
    assert model.first_stage.scale_factor.item() != 1.0  # the scale factor travelled with the autoencoder


def test_shipped_samples_shape_range_and_seed(model):
    a = model.sample(4, steps=10, seed=5)
    assert a.shape == (4, 1, 32, 32)
    assert a.min() >= -1
    assert a.max() <= 1
    assert torch.equal(a, model.sample(4, steps=10, seed=5))


def test_quality_gate_confidence(gate):
    """Crisp digits: the classifier is confident on average, and few samples are ambiguous."""
    images, r = gate
    assert r["confidence"] >= 0.9, r  # the judge: 0.935 (2026-12-01 weights; the old ones 0.924)


def test_quality_gate_frechet_distance_near_the_floor(gate):
    """The gate: Fréchet distance in the judge's features within 2.2× the real-vs-real floor at the same n."""
    _, r = gate
    # the judge: FD 6.51, floor 4.30: 1.51× (2026-12-01 weights; the old ones 2.38×). At n = 2000 the same model sits
    # at 3.4–3.9× (its FD falls less with n than the floor does), against the target of 1.8×: not met
    assert r["fd_ratio"] <= UNCOND_FD_MAX, r


def test_quality_gate_draws_every_digit(gate):
    """An unconditional model must not collapse onto a few classes: every digit appears, none dominates."""
    images, _ = gate
    counts = Evaluator().logits(images).argmax(1).bincount(minlength=10)
    assert (counts > 0).all(), counts.tolist()
    assert counts.max() <= 0.25 * N_GATE, counts.tolist()


def test_cli_sample_on_shipped_weights(tmp_path, capsys):
    png, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    assert main(["sample", "latent_mnist", "--n", "6", "--steps", "5", "--out", str(png), "--npz", str(npz)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(npz)
    assert set(data.files) == {"images"}
    assert data["images"].shape == (6, 1, 32, 32)
    assert data["images"].dtype == np.float32
    assert 0 <= data["images"].min()
    assert data["images"].max() <= 1


def test_demo_writes_grid_and_npz(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n", "8", "--steps", "5"]) == 0
    assert torch.is_grad_enabled()  # the command leaves the process as it found it
    assert (tmp_path / "samples.png").exists()
    assert np.load(tmp_path / "samples.npz")["images"].shape == (8, 1, 32, 32)
    out = capsys.readouterr().out
    assert "confident" in out
    assert str(WEIGHTS_DIR) in out


# ------------------------------------------------------------------ the class-conditional model (notebook 05)
N_PER_CLASS = 20  # 200 samples in all
CLASS_WITHIN_MAX = 1.6  # measured 1.08 [0.98, 1.18] at s = 2 (20 per digit; at 200 per digit 2.57: see weights README)


@pytest.fixture(scope="module")
def class_gate():
    model = load_diffusion(shipped("latent_mnist_class"))
    y = torch.arange(10).repeat_interleave(N_PER_CLASS)  # (200,)
    images = model.sample(len(y), sampler="ddpm", steps=50, seed=0, y=y, guidance=model.guidance)
    ev = Evaluator()
    return model, y, images, ev.report(images, labels=y), ev.within_class(images, y)


def test_class_gate_accuracy(class_gate):
    """The gate: class-conditional samples are classified as their label ≥ 95% of the time (at the shipped guidance)."""
    model, _, _, r, _ = class_gate
    assert model.guidance == 2.0
    assert r["accuracy"] >= 0.95, r


def test_class_gate_every_label(class_gate):
    """No label is left behind: each digit's own samples are classified as that digit ≥ 85% of the time."""
    _, y, images, _, _ = class_gate
    pred = Evaluator().logits(images).argmax(1)
    per_label = [(pred[y == k] == k).float().mean().item() for k in range(10)]
    assert min(per_label) >= 0.85, per_label


def test_class_gate_frechet_distance(class_gate):
    _, _, _, r, _ = class_gate
    assert r["fd_ratio"] <= 2.0, r  # measured 0.79 at s = 2, n = 200 (2026-12-01 weights)


def test_class_gate_within_class_diversity(class_gate):
    """Each digit's samples are nearly as varied as real digits of that class (1 = as varied; a model that draws
    one seven for every "seven" sits far above): fidelity is not bought with a collapse."""
    *_, within = class_gate
    assert within.value <= CLASS_WITHIN_MAX, within


def test_cli_sample_class_label_writes_labels(tmp_path, capsys):
    npz = tmp_path / "s.npz"
    assert main(["sample", "latent_mnist_class", "--n", "4", "--steps", "5", "--label", "7", "--out",
                 str(tmp_path / "g.png"), "--npz", str(npz)]) == 0
    data = np.load(npz)
    assert data["images"].shape == (4, 1, 32, 32)
    assert data["labels"].tolist() == [7, 7, 7, 7]


# ------------------------------------------------------------------ the text-conditional model (notebook 05)
TEXT_FD_MAX = 2.0  # measured 0.93 at s = 1.5, n = 200 (the FD gate the text model lacked until 2026-12-01)
TEXT_WITHIN_MAX = 1.6  # measured 1.14 [1.06, 1.25] (20 per digit)


@pytest.fixture(scope="module")
def text_model():
    return load_diffusion(shipped("latent_mnist_text"))


@pytest.fixture(scope="module")
def text_gate(text_model):
    """Prompts "a zero" … "a nine", 20 samples each at the shipped guidance, judged."""
    from minildm.captions import DIGITS

    prompts = [f"a {DIGITS[k]}" for k in range(10) for _ in range(20)]
    y = text_model.tokenizer.encode_batch(prompts, strict=True)
    images = text_model.sample(len(prompts), sampler="ddpm", steps=50, seed=0, y=y, guidance=text_model.guidance)
    labels = torch.arange(10).repeat_interleave(20)
    ev = Evaluator()
    return images, labels, ev.report(images, labels=labels), ev.within_class(images, labels)


def test_text_gate_named_digit(text_model, text_gate):
    """The named digit ≥ 95% of the time, at the guidance chosen on fidelity and diversity (pick_guidance)."""
    assert text_model.guidance == 1.5
    _, _, r, _ = text_gate
    assert r["accuracy"] >= 0.95, r


def test_text_gate_fidelity_and_diversity(text_gate):
    """Right but alike is not done: the set is near real digits (FD within 3× the floor at n = 200), and each digit's
    samples are not much less varied than real digits of that digit (within-class ratio, 1 = as varied as real)."""
    _, _, r, within = text_gate
    assert r["fd_ratio"] <= TEXT_FD_MAX, r
    assert within.value <= TEXT_WITHIN_MAX, within


def test_text_gate_words_change_the_digits(text_model):
    """The attribute words are not ignored: "a thick seven" draws measurably thicker strokes than "a thin seven"."""
    from minildm.captions import measure

    def thickness(prompt: str) -> float:
        y = text_model.tokenizer.encode_batch([prompt] * 40, strict=True)
        x = text_model.sample(40, sampler="ddpm", steps=50, seed=1, y=y, guidance=text_model.guidance)
        return measure(x)["thickness"].mean().item()

    assert thickness("a thick seven") > 1.1 * thickness("a thin seven")


# ------------------------------------------------------------------ the attribute-conditional faces (notebook 06)
N_FACES = 64  # generated toy faces judged in CI (~40 s on 2 cores)
FACES_RATE_MIN = 0.85  # judge: 94.7% [93.7, 95.7] of the requested values carried (chance about 61%), 2026-12-01
LOCALISED = ("Eyeglasses", "Wearing_Hat", "No_Beard", "Rosy_Cheeks")  # small regions, drawn where we know
LOCALISATION_MIN = 1.08  # measured ×1.27 / ×1.54 / ×1.15 / ×1.25 the chance share, all layers and steps
BEST_LAYER_ATTRIBUTES = ("Eyeglasses", "Smiling", "Rosy_Cheeks")
BEST_LAYER_MIN = 2.0  # measured ×2.40 / ×2.77 / ×2.62 on the held-out 32 (up.2.1, the decoder's first 8×8)


@pytest.fixture(scope="module")
def faces_gate():
    """The shipped toy-faces model sampled as notebook 06 does (random plausible requests, shipped guidance), with its
    cross-attention captured; judged by the shipped attribute classifier."""
    from minildm.attention_maps import capture_attention
    from minildm.face_classifier import load_attribute_classifier
    from minildm.faces import attention_localisation, random_attributes

    model = load_diffusion(shipped("latent_faces_toy"))
    clf = load_attribute_classifier(shipped("face_judge_toy"))  # the judge: not the autoencoder's perceptual net
    y = random_attributes(N_FACES, model.attributes, seed=1)
    with capture_attention(model.unet, which="cross") as store:
        images = model.sample(N_FACES, sampler="ddpm", steps=50, seed=0, y=y, guidance=model.guidance,
                              batch_size=N_FACES)
    # each layer's maps once, on the conditional rows; all layers = their mean weighted by records (every layer
    # records once per step, so this is token_maps over all records)
    conditional = slice(0, N_FACES)
    by_layer = {layer: store.token_maps(size=(64, 64), layers=layer, rows=conditional) for layer in store.names}
    counts = {layer: len(store.select(layer)) for layer in store.names}
    maps = sum(counts[k] * m for k, m in by_layer.items()) / sum(counts.values())
    share, chance = attention_localisation(maps, model.attributes)
    # the best layer (notebook 06, §8) is chosen on one half of the faces and its localisation read on the other
    choose, held_out = (torch.as_tensor(i) for i in split_halves(N_FACES, seed=0))
    cols = [model.attributes.index(n) for n in BEST_LAYER_ATTRIBUTES]

    def ratios(layer, idx):
        s, c = attention_localisation(by_layer[layer][idx], model.attributes)
        return (s / c)[cols]

    best = max(store.names, key=lambda layer: ratios(layer, choose).mean().item())
    return model, clf, y, images, share, chance, dict(zip(BEST_LAYER_ATTRIBUTES, ratios(best, held_out).tolist()))


def test_shipped_face_model_is_labelled_and_small(faces_gate):
    model, clf, *_ = faces_gate
    assert shipped("latent_faces_toy").stat().st_size < 6e6
    assert shipped("face_classifier_toy").stat().st_size < 1e6
    release = load_checkpoint(shipped("latent_faces_toy"), kind="latent_faces")["release"]
    assert "toy faces" in release["note"].lower()
    assert "not celeba" in release["note"].lower()  # labelled as a stand-in
    assert model.sample_shape == (3, 16, 16)
    assert tuple(clf.names) == tuple(model.attributes)


def test_faces_gate_attributes_carried(faces_gate):
    """Generated faces carry the attributes asked for far more often than a generator ignoring the request would."""
    from minildm.face_classifier import attribute_rates, chance_rates
    from minildm.faces import random_attributes

    model, clf, y, images, *_ = faces_gate
    rate = attribute_rates(clf, images, y)  # (M,)
    # chance: faces that show each attribute as often as toy faces do (they are drawn by the same rules), whatever
    # was asked for
    chance = chance_rates(y, random_attributes(5000, model.attributes, seed=123).float().mean(0))
    assert rate.nanmean() >= FACES_RATE_MIN, rate.tolist()
    assert rate.nanmean() >= chance.nanmean() + 0.2


def test_faces_gate_attention_localised(faces_gate):
    """The localised attributes' tokens put more of their attention inside their drawn regions than chance would."""
    model, _, _, _, share, chance, best_held_out = faces_gate
    ratio = {n: (share[i] / chance[i]).item() for i, n in enumerate(model.attributes) if n in LOCALISED}
    assert all(r >= LOCALISATION_MIN for r in ratio.values()), ratio
    # one layer does most of the localising (notebook 06, §8): there the small attributes are read at their places.
    # Chosen on 32 faces, read on the other 32, so the figure is not the best of several noisy ones.
    assert all(r >= BEST_LAYER_MIN for r in best_held_out.values()), best_held_out


# issue 15's face target, met by the v-prediction face model (scripts/face_v_study.py, n = 200, 2026-12-03): DDIM's
# final latents within 1.2× the training latents' spread and the attributes within 3 points of ancestral sampling.
# The scale factor makes the training latents' std 1 (autoencoder.compute_scale_factor; 1.000 [0.998, 1.002] on 2000
# toy faces), so the spread is std(z_0) itself. Measured at s = 2: 1.027 and −0.5 points (the ε-model: 1.249, −5.8).
FACE_V_SPREAD_MAX = 1.2
FACE_V_GAP_MIN = -0.03


@pytest.fixture(scope="module")
def faces_v_gate():
    from minildm.face_classifier import attribute_rates, load_attribute_classifier
    from minildm.faces import random_attributes

    model = load_diffusion(shipped("latent_faces_toy_v"))
    judge = load_attribute_classifier(shipped("face_judge_toy"))
    y = random_attributes(N_FACES, model.attributes, seed=1)
    out = {}
    for sampler in ("ddpm", "ddim"):  # the same requests and z_T
        images, z0 = model.sample(N_FACES, sampler=sampler, steps=50, seed=0, y=y, guidance=model.guidance,
                                  batch_size=N_FACES, return_latents=True)
        out[sampler] = dict(carried=attribute_rates(judge, images, y).nanmean().item(), spread=z0.std().item())
    return model, out


def test_v_face_model_deterministic_samples_stay_on_the_data(faces_v_gate):
    """The v-prediction face model: DDIM η = 0 neither drifts (the ε-model's latents end 1.25× too wide) nor loses
    attributes against ancestral sampling (the ε-model: 5.8 points below)."""
    model, out = faces_v_gate
    assert model.prediction == "v"
    assert shipped("latent_faces_toy_v").stat().st_size < 6e6
    note = load_checkpoint(shipped("latent_faces_toy_v"), kind="latent_faces")["release"]["note"]
    assert "not celeba" in note.lower()
    assert out["ddim"]["spread"] <= FACE_V_SPREAD_MAX, out
    assert out["ddpm"]["spread"] <= FACE_V_SPREAD_MAX, out
    assert out["ddim"]["carried"] - out["ddpm"]["carried"] >= FACE_V_GAP_MIN, out
    assert out["ddim"]["carried"] >= FACES_RATE_MIN, out


def test_sampler_gate_25_ancestral_steps_do_not_rule_out_the_target(model, gate):
    """Issue 15's few-step target (≤ 25 network evaluations within 1.1× of the reference FD; at n = 2000, 25 ancestral
    steps sit at 0.84× [0.65, 1.03] of DDPM-1000's, benchmarks/RESULTS.md): 25 trailing ancestral steps from the same
    x_T against the gate's 50, by a paired bootstrap at n = 500. At this n one seed's ratio varies 0.85–1.44 across
    seeds, so the gate asks that the interval reaches 1.1 (the target is not ruled out) and that the ratio stays
    under 1.6; a sampler that broke (wrong spacing, a lost x̂_0) lands far above both. Measured 2026-12-02 (seed 0):
    1.385 [1.056, 1.718] trailing, 1.44 [1.12, 1.79] leading: at n = 500 the few-step gap looks larger than at n = 2000,
    and this gate only holds the sampler where it is."""
    from minildm.evaluate import FrechetReference, feature_stats
    from minildm.uncertainty import bootstrap

    images, _ = gate
    ev = Evaluator()
    real = FrechetReference(*feature_stats(ev.embed(ev.real_sets(N_GATE, 0)[0])))
    f50 = ev.embed(images).double().numpy()
    f25 = ev.embed(model.sample(N_GATE, sampler="ddpm", steps=25, spacing="trailing", seed=0)).double().numpy()
    ratio = bootstrap(lambda a, b: real.distance(*feature_stats(a)) / real.distance(*feature_stats(b)), f25, f50,
                      n_boot=100, seed=0, recentre=True)
    assert ratio.low <= 1.1 and ratio.value <= 1.6, ratio
