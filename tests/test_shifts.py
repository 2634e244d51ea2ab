"""Every shift: determinism, purity, what it changes and what it leaves alone."""
import math

import pytest
import torch

from tlcore.data import SHIFTS, Domain, apply_shifts, load_domain
from tlcore.data.shifts import first_principal_axis, gaussian_kernel_1d
from tlcore.errors import SpecError, UnknownNameError

TYPICAL_VALUES = {
    "rotate": 30.0, "invert": None, "noise": 0.2, "blur": 1.0, "scale": 1.5, "texture": 0.5,
    "label_noise": 0.3, "prior": 5.0, "permute": 1.0, "bias": 2.0, "resize": 16.0, "limit": 20.0,
    "embed": 20.0, "flatten": None,
}
RANDOMISED = {"noise", "texture", "label_noise", "prior", "permute", "bias", "limit", "embed"}
# A phrase each shift's description step must contain (with its TYPICAL_VALUES value).
DESCRIPTION_PHRASES = {
    "rotate": "rotated by 30°", "invert": "1 − x", "noise": "Gaussian", "blur": "blur σ=1",
    "scale": "1.5", "texture": "texture α=0.5", "label_noise": "test labels stay clean",
    "prior": "imbalance 5", "permute": "permuted", "bias": "sample-selection bias 2",
    "resize": "to 16×16", "limit": "at most 20 examples per class",
    "embed": "from 2 to 20 dimensions", "flatten": "784-dimensional vectors",
}


@pytest.fixture(scope="module")
def digits() -> Domain:
    return load_domain("digits")


@pytest.fixture(scope="module")
def moons() -> Domain:
    return load_domain("moons")


def shift(domain: Domain, name: str, value=None, seed: int = 0) -> Domain:
    return apply_shifts(domain, [(name, value)], seed)


def tensors(domain: Domain) -> list[torch.Tensor]:
    return [domain.x_train, domain.y_train, domain.x_test, domain.y_test]


def identical(a: Domain, b: Domain) -> bool:
    return (
        all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(tensors(a), tensors(b)))
        and a.class_names == b.class_names and a.description == b.description
    )


def image_domain(x_train: torch.Tensor, labels: int = 2) -> Domain:
    """A small image domain whose test split equals its training split."""
    y = torch.arange(len(x_train)) % labels
    return Domain("tiny", "image", x_train, y, x_train.clone(), y.clone(), tuple(str(i) for i in range(labels)))


def vector_domain(x: torch.Tensor, y: torch.Tensor, classes: int) -> Domain:
    return Domain("points", "vector", x, y, x.clone(), y.clone(), tuple(f"c{i}" for i in range(classes)))


def row_lookup(domain: Domain, split: str) -> dict[bytes, int]:
    """Each input row's bytes -> its label, to find where kept rows came from."""
    x, y = getattr(domain, f"x_{split}"), getattr(domain, f"y_{split}")
    return {row.numpy().tobytes(): int(label) for row, label in zip(x.reshape(len(x), -1), y)}


# --------------------------------------------------------------------------- the contract, for every shift
def test_every_shift_has_a_typical_value_here():
    assert set(TYPICAL_VALUES) == set(SHIFTS) == set(DESCRIPTION_PHRASES)


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_registry_entry_is_consistent(name):
    entry = SHIFTS[name]
    assert entry.name == name
    assert entry.help and "\n" not in entry.help
    assert entry.applies_to and entry.applies_to <= {"vector", "image"}
    assert entry.takes_value == (entry.value_range is not None)
    if entry.default is not None:
        lo, hi = entry.value_range
        assert lo <= entry.default <= hi
    assert entry.usage.startswith(name)


def _cases():
    for name in sorted(SHIFTS):
        for kind in sorted(SHIFTS[name].applies_to):
            yield pytest.param(name, kind, id=f"{name}-{kind}")


@pytest.mark.parametrize("name, kind", list(_cases()))
def test_shift_is_deterministic_pure_and_described(name, kind, digits, moons):
    base = digits if kind == "image" else moons
    before = [t.clone() for t in tensors(base)]
    first = shift(base, name, TYPICAL_VALUES[name], seed=3)
    second = shift(base, name, TYPICAL_VALUES[name], seed=3)

    assert identical(first, second)
    assert all(torch.equal(a, b) for a, b in zip(before, tensors(base))), "the input domain was modified"
    assert first.description[:-1] == base.description and len(first.description) == len(base.description) + 1
    assert DESCRIPTION_PHRASES[name] in first.description[-1]
    assert not identical(first, base)
    if kind == "image":
        assert first.x_train.dtype == torch.float32
        assert 0.0 <= float(first.x_train.min()) and float(first.x_train.max()) <= 1.0
    if name in RANDOMISED:
        assert not identical(first, shift(base, name, TYPICAL_VALUES[name], seed=4))


def test_apply_shifts_checks_values_and_kinds(moons):
    with pytest.raises(SpecError, match="invert applies to image domains only"):
        apply_shifts(moons, [("invert", None)], seed=0)
    with pytest.raises(SpecError, match="rotate needs a value"):
        apply_shifts(moons, [("rotate", None)], seed=0)
    with pytest.raises(UnknownNameError, match="valid shifts"):
        apply_shifts(moons, [("twist", 1.0)], seed=0)


def test_adding_a_shift_keeps_the_earlier_shifts_randomness(moons):
    noisy = apply_shifts(moons, [("noise", 0.3)], seed=7)
    noisy_then_relabelled = apply_shifts(moons, [("noise", 0.3), ("label_noise", 0.2)], seed=7)
    assert torch.equal(noisy.x_train, noisy_then_relabelled.x_train)
    assert not torch.equal(noisy.y_train, noisy_then_relabelled.y_train)
    twice = apply_shifts(moons, [("noise", 0.3), ("noise", 0.3)], seed=7)
    first_draw, second_draw = noisy.x_train - moons.x_train, twice.x_train - noisy.x_train
    assert not torch.allclose(first_draw, second_draw, atol=1e-4), "two positions drew the same noise"


# --------------------------------------------------------------------------- rotate
def test_rotate_vectors_about_the_origin():
    points = vector_domain(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0]]), torch.tensor([0, 1, 0]), 2)
    quarter = shift(points, "rotate", 90.0)
    assert torch.allclose(quarter.x_train, torch.tensor([[0.0, 1.0], [-2.0, 0.0], [1.0, 3.0]]), atol=1e-6)
    assert torch.allclose(shift(points, "rotate", 360.0).x_train, points.x_train, atol=1e-6)
    assert torch.allclose(shift(points, "rotate", -90.0).x_train[0], torch.tensor([0.0, -1.0]), atol=1e-6)
    assert torch.equal(quarter.y_train, points.y_train)


def test_rotate_images_counter_clockwise_about_the_centre():
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 0, 4] = 1.0  # top middle
    turned = shift(image_domain(image), "rotate", 90.0).x_train[0, 0]
    assert turned[4, 0] == pytest.approx(1.0, abs=1e-5)  # left middle
    assert float(turned.sum()) == pytest.approx(1.0, abs=1e-5)


def test_rotate_images_keeps_a_centred_disc_and_360_is_identity(digits):
    rows, cols = torch.meshgrid(torch.arange(15.0), torch.arange(15.0), indexing="ij")
    disc = (((rows - 7) ** 2 + (cols - 7) ** 2) <= 16).float().reshape(1, 1, 15, 15)
    turned = shift(image_domain(disc), "rotate", 37.0).x_train[0, 0]
    assert float(turned[7, 7]) == pytest.approx(1.0)
    assert float(turned.sum()) == pytest.approx(float(disc.sum()), rel=0.05)
    assert torch.allclose(shift(digits, "rotate", 360.0).x_test, digits.x_test, atol=1e-5)


# --------------------------------------------------------------------------- invert, noise, blur, scale
def test_invert_is_one_minus_x_and_its_own_inverse(digits):
    once = shift(digits, "invert")
    assert torch.allclose(once.x_train, 1.0 - digits.x_train)
    assert torch.allclose(shift(once, "invert").x_train, digits.x_train, atol=1e-6)
    assert torch.equal(once.y_train, digits.y_train)


def test_shifts_keep_uint8_images_uint8(digits):
    as_bytes = digits.with_steps(
        x_train=(digits.x_train * 255).round().to(torch.uint8), x_test=(digits.x_test * 255).round().to(torch.uint8)
    )
    assert torch.equal(shift(as_bytes, "invert").x_train, 255 - as_bytes.x_train)
    for name in ("rotate", "noise", "blur", "scale", "texture"):
        assert shift(as_bytes, name, TYPICAL_VALUES[name]).x_train.dtype == torch.uint8


def test_noise_on_vectors_has_the_requested_spread(moons):
    noisy = shift(moons, "noise", 0.5)
    difference = noisy.x_train - moons.x_train
    assert float(difference.std()) == pytest.approx(0.5, rel=0.06)
    assert float(difference.mean()) == pytest.approx(0.0, abs=0.05)
    assert torch.equal(noisy.y_train, moons.y_train)


def test_noise_on_images_is_clamped_and_changes_both_splits(digits):
    noisy = shift(digits, "noise", 0.3)
    assert float(noisy.x_train.min()) == 0.0 and float(noisy.x_train.max()) == 1.0
    assert not torch.equal(noisy.x_test, digits.x_test)


def test_gaussian_kernel_has_radius_ceil_three_sigma_and_sums_to_one():
    assert len(gaussian_kernel_1d(1.0)) == 7 and len(gaussian_kernel_1d(1.1)) == 9
    assert float(gaussian_kernel_1d(2.5).sum()) == pytest.approx(1.0)
    assert torch.equal(gaussian_kernel_1d(0.0), torch.ones(1))


def test_blur_spreads_an_impulse_into_the_separable_gaussian():
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 10] = 1.0
    blurred = shift(image_domain(image), "blur", 1.0).x_train[0, 0]
    kernel = gaussian_kernel_1d(1.0)
    assert torch.allclose(blurred[7:14, 7:14], torch.outer(kernel, kernel), atol=1e-6)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5)


def test_blur_keeps_a_constant_image_and_sigma_zero_is_identity(digits):
    flat = torch.full((2, 1, 10, 10), 0.7)
    assert torch.allclose(shift(image_domain(flat), "blur", 3.0).x_train, flat, atol=1e-6)
    assert torch.equal(shift(digits, "blur", 0.0).x_train, digits.x_train)


def test_scale_multiplies_vectors(moons):
    assert torch.allclose(shift(moons, "scale", 2.5).x_test, moons.x_test * 2.5)


def test_scale_above_one_zooms_images_in():
    columns = torch.arange(32, dtype=torch.float32) / 31
    ramp = columns.expand(32, 32).reshape(1, 1, 32, 32).clone()
    zoomed = shift(image_domain(ramp), "scale", 2.0).x_train[0, 0]
    slope = zoomed[16, 8:24].diff()
    assert torch.allclose(slope, torch.full_like(slope, 1 / 62), atol=1e-5)  # half the original slope
    assert float(zoomed[16, 15:17].mean()) == pytest.approx(0.5, abs=1e-5)  # the centre stays put


# --------------------------------------------------------------------------- texture
def test_texture_gives_rgb_in_unit_range(digits):
    textured = shift(digits, "texture", 0.5)
    assert textured.input_shape == (3, 28, 28)
    assert 0.0 <= float(textured.x_train.min()) and float(textured.x_train.max()) <= 1.0
    assert not torch.equal(textured.x_train[:, 0], textured.x_train[:, 1])  # coloured, not gray
    assert "repeated to 3 channels" in textured.description[-1]
    assert torch.equal(textured.y_train, digits.y_train)


def test_texture_alpha_zero_only_repeats_gray(digits):
    plain = shift(digits, "texture", 0.0)
    assert torch.equal(plain.x_test, digits.x_test.expand(-1, 3, -1, -1))


def test_texture_blends_with_the_absolute_difference():
    # Crops depend only on the generator and the number of images, so black and
    # white images of equal count see the same patches: |P − 0| = P, |P − 1| = 1 − P.
    black = shift(image_domain(torch.zeros(4, 1, 16, 16)), "texture", 1.0, seed=5).x_train
    white = shift(image_domain(torch.ones(4, 1, 16, 16)), "texture", 1.0, seed=5).x_train
    assert torch.allclose(white, 1.0 - black, atol=1e-6)
    half = shift(image_domain(torch.ones(4, 1, 16, 16)), "texture", 0.5, seed=5).x_train
    assert torch.allclose(half, 0.5 + 0.5 * (1.0 - black), atol=1e-6)


def test_texture_patches_differ_between_images():
    blank = image_domain(torch.zeros(4, 1, 28, 28))
    patches = shift(blank, "texture", 1.0).x_train  # |patch - 0| is the patch itself
    assert all(not torch.equal(patches[0], patches[i]) for i in range(1, 4))
    assert float(patches.std()) > 0.05


# --------------------------------------------------------------------------- label noise
@pytest.fixture(scope="module")
def many_points() -> Domain:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=generator)
    return vector_domain(x, torch.arange(20000) % 4, 4)


def test_label_noise_flips_the_requested_fraction_to_other_classes(many_points):
    noisy = shift(many_points, "label_noise", 0.3)
    changed = noisy.y_train != many_points.y_train
    # Flipping to "any class" instead of "a different class" would give 0.3 · 3/4 = 0.225.
    assert float(changed.float().mean()) == pytest.approx(0.3, abs=0.015)
    destinations = (noisy.y_train[changed] - many_points.y_train[changed]) % 4
    shares = torch.bincount(destinations, minlength=4).float() / int(changed.sum())
    assert shares[0] == 0 and torch.allclose(shares[1:], torch.full((3,), 1 / 3), atol=0.03)
    assert torch.equal(noisy.y_test, many_points.y_test)
    assert torch.equal(noisy.x_train, many_points.x_train)


# --------------------------------------------------------------------------- prior shift
def test_prior_shift_follows_an_exponential_profile(digits):
    shifted = shift(digits, "prior", 10.0)
    counts = sorted(shifted.class_counts("train"), reverse=True)
    assert counts[0] / counts[-1] == pytest.approx(10.0, rel=0.1)
    head = counts[0]
    for rank, count in enumerate(counts):
        assert abs(count - head * 10.0 ** (-rank / 9)) <= 1.5
    assert min(shifted.class_counts("test")) >= 5
    lookup = row_lookup(digits, "train")
    flat = shifted.x_train.reshape(len(shifted.y_train), -1)
    assert all(lookup[row.numpy().tobytes()] == int(y) for row, y in zip(flat, shifted.y_train)), "p(x|y) changed"


def test_prior_one_is_a_uniform_prior(digits):
    counts = shift(digits, "prior", 1.0).class_counts("train")
    assert len(set(counts)) == 1 and counts[0] == min(digits.class_counts("train"))


def test_prior_never_drops_a_class(digits):
    shifted = shift(digits, "prior", 100.0)
    assert min(shifted.class_counts("train")) >= 5 and min(shifted.class_counts("test")) >= 5


# --------------------------------------------------------------------------- permute
def label_mapping(before: Domain, after: Domain) -> dict[int, set[int]]:
    mapping: dict[int, set[int]] = {}
    for split in ("train", "test"):
        for old, new in zip(getattr(before, f"y_{split}").tolist(), getattr(after, f"y_{split}").tolist()):
            mapping.setdefault(old, set()).add(new)
    return mapping


def test_permute_is_a_derangement_of_all_classes_by_default(digits):
    permuted = shift(digits, "permute", 1.0)
    assert torch.equal(permuted.x_train, digits.x_train) and torch.equal(permuted.x_test, digits.x_test)
    mapping = label_mapping(digits, permuted)
    assert all(len(targets) == 1 for targets in mapping.values()), "one class must map to one class"
    image = {old: next(iter(targets)) for old, targets in mapping.items()}
    assert sorted(image.values()) == list(range(10))
    assert all(old != new for old, new in image.items())
    assert permuted.class_names == digits.class_names


def test_permute_fraction_moves_that_many_classes(digits):
    image = {old: next(iter(new)) for old, new in label_mapping(digits, shift(digits, "permute", 0.5)).items()}
    moved = [old for old, new in image.items() if old != new]
    assert len(moved) == 5 and sorted(image[old] for old in moved) == sorted(moved)
    smallest = {old: next(iter(new)) for old, new in label_mapping(digits, shift(digits, "permute", 0.01)).items()}
    assert sum(old != new for old, new in smallest.items()) == 2
    assert torch.equal(shift(digits, "permute", 0.0).y_train, digits.y_train)


# --------------------------------------------------------------------------- selection bias
def test_first_principal_axis_is_the_direction_of_largest_spread():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 2, generator=generator) * torch.tensor([0.2, 3.0])
    _, axis = first_principal_axis(x)
    assert abs(float(axis[1])) == pytest.approx(1.0, abs=0.01) and float(axis[1]) > 0


@pytest.mark.parametrize("strength", [3.0, -3.0])
def test_bias_keeps_labels_of_kept_points_and_moves_the_input_mean(moons, strength):
    biased = shift(moons, "bias", strength)
    for split in ("train", "test"):
        lookup = row_lookup(moons, split)
        x, y = getattr(biased, f"x_{split}"), getattr(biased, f"y_{split}")
        assert 0.2 * len(getattr(moons, f"y_{split}")) <= len(y) < len(getattr(moons, f"y_{split}"))
        assert all(lookup[row.numpy().tobytes()] == int(label) for row, label in zip(x, y)), "p(y|x) changed"
    _, axis = first_principal_axis(moons.x_train)
    moved = float((biased.x_train.mean(0) - moons.x_train.mean(0)).double() @ axis)
    assert moved * strength > 0.2


def test_bias_selection_never_looks_at_labels(moons):
    relabelled = moons.with_steps(y_train=1 - moons.y_train, y_test=1 - moons.y_test)
    assert torch.equal(shift(moons, "bias", 3.0).x_train, shift(relabelled, "bias", 3.0).x_train)
    assert torch.equal(shift(moons, "bias", -2.0).x_test, shift(relabelled, "bias", -2.0).x_test)


def test_bias_keep_rate_follows_the_principal_component(moons):
    _, axis = first_principal_axis(moons.x_train)
    projection = moons.x_train.double() @ axis
    kept = {row.numpy().tobytes() for row in shift(moons, "bias", 3.0).x_train}
    is_kept = torch.tensor([row.numpy().tobytes() in kept for row in moons.x_train])
    low, high = projection < projection.quantile(0.25), projection > projection.quantile(0.75)
    assert float(is_kept[high].float().mean()) > 0.85 and float(is_kept[low].float().mean()) < 0.15


def test_bias_tops_up_to_a_fifth_with_the_most_probable_examples():
    # 900 points at 0 and 100 far out at 10: bias=10 keeps few of the 900 (z ≈ −0.33).
    x = torch.cat([torch.zeros(900, 2), torch.full((100, 2), 10.0)])
    points = vector_domain(x, torch.arange(1000) % 2, 2)
    biased = shift(points, "bias", 10.0)
    assert len(biased.y_train) == 200 and len(biased.y_test) == 200
    assert int((biased.x_train[:, 0] == 10.0).sum()) == 100


def test_strong_bias_still_keeps_a_fifth_and_every_class(digits):
    biased = shift(digits, "bias", 10.0)
    for split in ("train", "test"):
        assert len(getattr(biased, f"y_{split}")) >= math.ceil(0.2 * len(getattr(digits, f"y_{split}")))
        assert min(biased.class_counts(split)) >= 1
    assert "p(y|x)" in biased.description[-1]


def test_zero_bias_keeps_about_half(moons):
    assert len(shift(moons, "bias", 0.0).y_train) == pytest.approx(500, abs=60)
