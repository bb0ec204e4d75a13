"""minildm.conditions: the default conditions per conditioning kind, and the parsing of --label/--prompt/--attributes,
on the shipped models (one of each kind)."""
import pytest
import torch

from minildm.captions import DIGITS
from minildm.conditions import conditions_for, digit_named, parse_attributes
from minildm.faces import NULL
from minildm.release import load_diffusion


@pytest.fixture(scope="module")
def models():
    return {name: load_diffusion(name) for name in ("latent_mnist", "latent_mnist_class", "latent_mnist_text",
                                                    "latent_faces_toy")}


def test_parse_attributes():
    assert parse_attributes("Smiling=1, Eyeglasses=0,") == {"Smiling": 1, "Eyeglasses": 0}
    assert parse_attributes("") == {}
    for bad in ("Smiling", "Smiling=2", "=1", "Smiling=yes"):
        with pytest.raises(ValueError, match="NAME=0 or NAME=1"):
            parse_attributes(bad)


def test_digit_named():
    assert digit_named("a thick slanted Seven") == 7
    assert digit_named("a zero") == 0
    assert digit_named("a thick digit") == -1


def test_unconditional(models):
    assert conditions_for(models["latent_mnist"], 4) == (None, None)
    for kw in (dict(label=3), dict(prompt="a seven"), dict(attributes="Smiling=1")):
        with pytest.raises(ValueError, match="unconditional"):
            conditions_for(models["latent_mnist"], 4, **kw)


def test_class_labels_cycle_or_repeat(models):
    m = models["latent_mnist_class"]
    y, labels = conditions_for(m, 12)
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert torch.equal(labels, y)
    y, _ = conditions_for(m, 3, label=7)
    assert y.tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match=r"0\.\.9"):
        conditions_for(m, 2, label=10)
    with pytest.raises(ValueError, match="class-conditional.*not a prompt"):
        conditions_for(m, 2, prompt="a seven")
    with pytest.raises(ValueError, match="n must be at least 1"):
        conditions_for(m, 0)


def test_text_prompts_cycle_and_name_their_digit(models):
    m = models["latent_mnist_text"]
    y, labels = conditions_for(m, 11)
    assert labels.tolist() == list(range(10)) + [0]
    want = m.tokenizer.encode_batch([f"a {DIGITS[i % 10]}" for i in range(11)])
    assert torch.equal(y, want)
    y, labels = conditions_for(m, 2, prompt="a thick seven")
    assert labels.tolist() == [7, 7]
    assert torch.equal(y[0], m.tokenizer.encode_batch(["a thick seven"])[0])
    with pytest.raises(ValueError, match="purple"):
        conditions_for(m, 2, prompt="a purple seven")
    with pytest.raises(ValueError, match="empty"):
        conditions_for(m, 2, prompt="  ")
    with pytest.raises(ValueError, match="prompts.*not labels"):
        conditions_for(m, 2, label=3)


def test_face_attributes_are_plausible_with_the_requested_values_set(models):
    m = models["latent_faces_toy"]
    names = m.attributes
    y, labels = conditions_for(m, 32, attributes="Smiling=1,Eyeglasses=0", seed=1)
    assert y.shape == (32, len(names))
    assert (y[:, names.index("Smiling")] == 1).all()
    assert (y[:, names.index("Eyeglasses")] == 0).all()
    assert set(y.unique().tolist()) <= {0, 1}  # drawn values, never ∅ = 2
    assert NULL not in y.tolist()
    assert torch.equal(labels, y)
    other = [j for j, n in enumerate(names) if n not in ("Smiling", "Eyeglasses")]
    assert y[:, other].float().std(0).gt(0).any()  # the rest vary across samples
    again, _ = conditions_for(m, 32, attributes="Smiling=1,Eyeglasses=0", seed=1)
    assert torch.equal(again, y)  # the seed decides the plausible rest
    with pytest.raises(ValueError, match="did you mean"):
        conditions_for(m, 2, attributes="Smilling=1")
    with pytest.raises(ValueError, match="--attributes Smiling=1"):
        conditions_for(m, 2, label=3)
