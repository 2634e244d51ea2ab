"""Built-in datasets, the dataset registry, load_domain and make_pair."""
import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tlcore.data
from tlcore.data import (
    DATASETS,
    SHIFTS,
    DatasetInfo,
    Domain,
    describe_datasets,
    describe_shifts,
    load_domain,
    make_pair,
    split_label_budget,
)
from tlcore.errors import BudgetError, ClassMismatchError, RepresentationMismatchError, SpecError


def rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


# --------------------------------------------------------------------------- built-in loaders
@pytest.mark.parametrize("name", sorted(name for name, info in DATASETS.items() if info.builtin))
def test_every_dataset_loads_a_valid_deterministic_domain(name):
    # Datasets read from files are tested on small files in their formats:
    # tests/test_torchvision_data.py and tests/test_folder_data.py.
    info = DATASETS[name]
    domain = info.load(seed=0)
    assert domain.name == name and domain.kind == info.kind
    assert domain.x_train.dtype == torch.float32 and domain.y_train.dtype == torch.int64
    assert set(domain.y_train.tolist()) == set(range(domain.num_classes))
    assert set(domain.y_test.tolist()) == set(range(domain.num_classes))
    assert domain.description and info.description
    again = info.load(seed=0)
    assert torch.equal(domain.x_train, again.x_train) and torch.equal(domain.y_test, again.y_test)


@pytest.mark.parametrize("name, classes", [("moons", ("upper", "lower")), ("blobs", ("A", "B", "C"))])
def test_toy_domains_are_centred_2d_and_balanced(name, classes):
    domain = load_domain(name)
    assert domain.input_shape == (2,) and domain.class_names == classes
    assert (len(domain.y_train), len(domain.y_test)) == (1000, 500)
    assert torch.allclose(domain.x_train.mean(0), torch.zeros(2), atol=0.1)
    counts = domain.class_counts("train")
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("name", ["moons", "blobs"])
def test_toy_domain_parts_are_separate_samples_with_a_shared_test_set(name):
    whole, first, second = (load_domain(name, part=part) for part in (None, 0, 1))
    assert not rows(first.x_train) & rows(second.x_train)
    assert not rows(whole.x_train) & rows(first.x_train)
    assert torch.equal(first.x_test, second.x_test) and torch.equal(whole.x_test, first.x_test)
    assert not torch.equal(load_domain(name, seed=1).x_train, whole.x_train)


def test_moons_upper_class_lies_above_lower_on_average():
    moons = load_domain("moons")
    assert moons.x_train[moons.y_train == 0, 1].mean() > moons.x_train[moons.y_train == 1, 1].mean() + 0.3


@pytest.fixture(scope="module")
def digits() -> Domain:
    return load_domain("digits")


def test_digits_are_28px_in_unit_range_with_a_fixed_split(digits):
    assert digits.input_shape == (1, 28, 28)
    assert digits.class_names == tuple("0123456789")
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert len(digits.y_test) == pytest.approx(0.3 * 1797, abs=5)
    assert float(digits.x_train.min()) == 0.0 and float(digits.x_train.max()) <= 1.0
    assert "scikit-learn digits (1797 8×8 images)" in digits.description[0]
    reseeded = load_domain("digits", seed=5)
    assert torch.equal(reseeded.x_test, digits.x_test) and torch.equal(reseeded.x_train, digits.x_train)
    assert not rows(digits.x_train) & rows(digits.x_test)


def test_digits_resize_preserves_the_original_pixels_on_average(digits):
    from sklearn.datasets import load_digits

    small = F.avg_pool2d(digits.x_train[:20], kernel_size=7, stride=3)  # rough 8x8 view
    assert small.shape[-1] == 8 and float(small.max()) > 0.3
    assert load_digits().images.max() == 16  # the scaling to [0, 1] divides by 16


def test_digits_halves_are_disjoint_stratified_and_cover_the_training_set(digits):
    first, second = load_domain("digits", part=0), load_domain("digits", part=1)
    assert not rows(first.x_train) & rows(second.x_train)
    assert rows(first.x_train) | rows(second.x_train) == rows(digits.x_train)
    assert all(abs(a - b) <= 1 for a, b in zip(first.class_counts(), second.class_counts()))
    assert torch.equal(first.x_test, digits.x_test)
    assert "training half 1 of 2" in second.description[0]


def test_invalid_part_is_rejected():
    with pytest.raises(SpecError, match="part must be None, 0 or 1"):
        load_domain("moons", part=2)


# --------------------------------------------------------------------------- load_domain
def test_load_domain_names_the_domain_by_its_canonical_spec():
    domain = load_domain("  digits : rotate = 30.0, invert ")
    assert domain.name == "digits:rotate=30,invert"
    assert len(domain.description) == 3 and "rotated by 30°" in domain.description[1]


def test_load_domain_is_seeded():
    first, again = load_domain("moons:noise=0.3", seed=2), load_domain("moons:noise=0.3", seed=2)
    assert torch.equal(first.x_train, again.x_train)
    assert not torch.equal(first.x_train, load_domain("moons:noise=0.3", seed=3).x_train)


# --------------------------------------------------------------------------- make_pair
def test_pair_from_one_base_dataset_shares_no_training_example():
    pair = make_pair("digits", "digits:permute=0", seed=0)  # permute=0 keeps the pixels comparable
    assert not rows(pair.source.x_train) & rows(pair.target.x_train)
    assert rows(pair.source.x_train) | rows(pair.target.x_train) == rows(load_domain("digits").x_train)
    assert any("share no training example" in line for line in pair.harmonisation)
    moons = make_pair("moons", "moons:rotate=30")
    assert not torch.equal(moons.source.x_train, load_domain("moons").x_train)  # a part, not the whole


def test_class_mismatch_lists_both_class_sets():
    with pytest.raises(ClassMismatchError) as caught:
        make_pair("moons", "blobs")
    message = str(caught.value)
    assert "source classes (2): upper, lower" in message and "target classes (3): A, B, C" in message


def test_vector_and_image_domains_cannot_pair():
    with pytest.raises(RepresentationMismatchError, match="a vector domain .* an image domain"):
        make_pair("moons", "digits")


def _register(monkeypatch, name: str, kind: str, make) -> None:
    monkeypatch.setitem(DATASETS, name, DatasetInfo(name, kind, "test double", builtin=True, loader=make))


def test_vector_dimensions_must_match(monkeypatch):
    def three_d_moons(seed, part):
        moons = load_domain("moons", seed, part=part)
        pad = lambda x: torch.cat([x, torch.zeros(len(x), 1)], dim=1)  # noqa: E731
        return moons.with_steps(name="moons3d", x_train=pad(moons.x_train), x_test=pad(moons.x_test))

    _register(monkeypatch, "moons3d", "vector", three_d_moons)
    with pytest.raises(RepresentationMismatchError, match="2-dimensional inputs but target 'moons3d' has 3"):
        make_pair("moons", "moons3d")


def test_same_classes_in_another_order_are_remapped(monkeypatch, digits):
    def reversed_digits(seed, part):
        base = load_domain("digits", seed, part=part)
        return base.with_steps(name="reversed", y_train=9 - base.y_train, y_test=9 - base.y_test,
                               class_names=tuple(reversed(base.class_names)))

    _register(monkeypatch, "reversed", "image", reversed_digits)
    pair = make_pair("digits", "reversed")
    assert pair.target.class_names == pair.source.class_names
    assert torch.equal(pair.target.y_train, digits.y_train) and torch.equal(pair.target.y_test, digits.y_test)
    assert any("remapped to the source's class order" in line for line in pair.harmonisation)


def test_gray_source_is_repeated_to_rgb_for_a_textured_target():
    pair = make_pair("digits", "digits:texture=0.5", target_labels=2)
    assert pair.source.input_shape == pair.target.input_shape == (3, 28, 28)
    assert torch.equal(pair.source.x_train[:, 0], pair.source.x_train[:, 2])
    assert any("source grayscale images repeated to 3 channels" in line for line in pair.harmonisation)
    assert any("texture" in line for line in pair.describe())


def test_smaller_images_are_resized_to_the_larger_size(monkeypatch):
    def small_digits(seed, part):
        base = load_domain("digits", seed, part=part)
        shrink = lambda x: F.interpolate(x, size=(14, 14), mode="bilinear", antialias=True)  # noqa: E731
        return base.with_steps(name="small", x_train=shrink(base.x_train), x_test=shrink(base.x_test))

    _register(monkeypatch, "small", "image", small_digits)
    pair = make_pair("small", "digits")
    assert pair.source.input_shape == pair.target.input_shape == (1, 28, 28)
    assert any("source images resized from 14×14 to 28×28" in line for line in pair.harmonisation)


def test_label_budget_picks_k_per_class_and_leaves_the_rest_unlabelled():
    pair = make_pair("digits", "digits:rotate=30", seed=1, target_labels=3)
    labelled, unlabelled = pair.target_labelled, pair.target_unlabelled
    assert labelled.dtype == unlabelled.dtype == torch.int64
    assert torch.equal(labelled, labelled.sort().values) and torch.equal(unlabelled, unlabelled.sort().values)
    assert torch.bincount(pair.target.y_train[labelled], minlength=10).tolist() == [3] * 10
    both = torch.cat([labelled, unlabelled]).sort().values
    assert torch.equal(both, torch.arange(len(pair.target.y_train)))
    again = make_pair("digits", "digits:rotate=30", seed=1, target_labels=3)
    assert torch.equal(again.target_labelled, labelled)
    assert not torch.equal(make_pair("digits", "digits:rotate=30", seed=2, target_labels=3).target_labelled, labelled)
    assert "3 labelled example(s) per class" in pair.describe()[-1]


def test_labelled_examples_are_a_seeded_random_choice():
    y = torch.arange(400) % 4
    first = split_label_budget(y, tuple("abcd"), 5, torch.Generator().manual_seed(1))[0]
    again = split_label_budget(y, tuple("abcd"), 5, torch.Generator().manual_seed(1))[0]
    other = split_label_budget(y, tuple("abcd"), 5, torch.Generator().manual_seed(2))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, torch.arange(20)), "not simply the first examples of each class"


def test_zero_budget_leaves_everything_unlabelled():
    pair = make_pair("moons", "moons:rotate=30")
    assert len(pair.target_labelled) == 0 and len(pair.target_unlabelled) == len(pair.target.y_train)


def test_budget_larger_than_a_class_names_the_class_and_the_largest_valid_budget():
    smallest = min(load_domain("digits:prior=10", part=1).class_counts())
    with pytest.raises(BudgetError) as caught:
        make_pair("digits", "digits:prior=10", target_labels=smallest + 1)
    message = str(caught.value)
    assert f"has only {smallest} training examples" in message
    assert f"largest valid target_labels is {smallest}" in message
    assert len(make_pair("digits", "digits:prior=10", target_labels=smallest).target_labelled) == 10 * smallest


def test_negative_budget_is_an_error():
    with pytest.raises(BudgetError, match=">= 0"):
        make_pair("moons", "moons", target_labels=-1)


# --------------------------------------------------------------------------- listings and hygiene
def test_listings_cover_every_dataset_and_shift():
    datasets = describe_datasets()
    assert [row["name"] for row in datasets] == list(DATASETS)
    assert all({"name", "kind", "builtin", "description"} <= set(row) for row in datasets)
    shifts = {row["name"]: row for row in describe_shifts()}
    assert set(shifts) == set(SHIFTS)
    assert shifts["noise"]["range"] == "[0, 1] (images), [0, 5] (vectors)"
    assert shifts["invert"]["takes_value"] is False and shifts["invert"]["applies_to"] == ["image"]
    assert shifts["permute"]["usage"] == "permute[=FRACTION]" and shifts["rotate"]["usage"] == "rotate=DEG"
    assert shifts["rotate"]["value_name"] == "DEG" and shifts["invert"]["value_name"] is None


def test_data_package_neither_prints_nor_imports_streamlit(capsys):
    make_pair("digits", "digits:texture=0.3,noise=0.1,bias=1", target_labels=1)
    assert capsys.readouterr() == ("", "")
    # Static check rather than sys.modules: other test modules may import streamlit.
    for path in Path(tlcore.data.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                assert not any(m.split(".")[0] == "streamlit" for m in modules), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path.name} prints"
