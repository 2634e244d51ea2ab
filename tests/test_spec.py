"""Dataset spec grammar: parsing, canonical formatting and every error message."""
from dataclasses import dataclass

import pytest

from tlcore.data import DATASETS, DatasetSpec, load_domain, parse_spec
from tlcore.errors import SpecError, TransferLabError, UnknownNameError, plural, with_article


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("digits", "digits"),
        ("digits:rotate=30,invert", "digits:rotate=30,invert"),
        ("  digits : rotate = 30.0 ,  invert ", "digits:rotate=30,invert"),
        ("moons:noise=0.25", "moons:noise=0.25"),
        ("moons:rotate=-45.5,scale=2", "moons:rotate=-45.5,scale=2"),
        ("digits:permute", "digits:permute"),
        ("digits:permute=1", "digits:permute"),
        ("digits:permute=0.5,label_noise=0.1", "digits:permute=0.5,label_noise=0.1"),
        ("blobs:bias=-2,prior=10", "blobs:bias=-2,prior=10"),
        ("digits:texture=1e-3", "digits:texture=0.001"),
        ("digits:rotate=0.1234567890123", "digits:rotate=0.1234567890123"),
    ],
)
def test_canonical_string_and_round_trip(text, canonical):
    spec = parse_spec(text)
    assert str(spec) == canonical
    assert parse_spec(str(spec)) == spec


def test_parsed_fields():
    spec = parse_spec("digits:rotate=30,invert,permute")
    assert spec == DatasetSpec("digits", (("rotate", 30.0), ("invert", None), ("permute", 1.0)))
    assert isinstance(spec.shifts[0][1], float)


def test_hand_built_spec_formats_compactly():
    spec = DatasetSpec("digits", (("rotate", 30.0), ("invert", None), ("noise", 0.25)))
    assert str(spec) == "digits:rotate=30,invert,noise=0.25"


def test_unknown_dataset_lists_valid_datasets():
    with pytest.raises(UnknownNameError) as caught:
        parse_spec("mnist_typo:rotate=3")
    message = str(caught.value)
    assert "unknown dataset 'mnist_typo'" in message
    assert all(name in message for name in ("blobs", "digits", "moons", "mnist"))
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, TransferLabError)


@pytest.mark.parametrize("kind, plural_kind", [
    ("strategy", "strategies"), ("class", "classes"), ("dataset", "datasets"), ("torchvision dataset",
    "torchvision datasets"), ("key", "keys"), ("box", "boxes"), ("batch", "batches"), ("lesson", "lessons")])
def test_unknown_name_lists_the_valid_ones_in_good_english(kind, plural_kind):
    assert plural(kind) == plural_kind
    message = str(UnknownNameError(kind, "nope", ["b", "a"]))
    assert message == f"unknown {kind} 'nope'; valid {plural_kind}: a, b"


def test_article_follows_the_sound():
    assert [with_article(w) for w in ("image", "vector", "object")] == ["an image", "a vector", "an object"]


def test_unknown_shift_lists_valid_shifts():
    with pytest.raises(UnknownNameError) as caught:
        parse_spec("digits:rotat=3")
    message = str(caught.value)
    assert "unknown shift 'rotat'" in message
    for name in ("bias", "blur", "invert", "label_noise", "noise", "permute", "prior", "rotate", "scale", "texture"):
        assert name in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "dataset name is missing"),
        ("   ", "dataset name is missing"),
        (":rotate=3", "dataset name is missing"),
        ("digits:rotate=", "'rotate=' has no value"),
        ("digits:rotate=abc", "rotate=abc: 'abc' is not a number"),
        ("digits:rotate", "rotate: rotate needs a value; write rotate=DEG with DEG in [-360, 360]"),
        ("digits:invert=1", "invert=1: invert takes no value"),
        ("digits:noise=-1", "noise=-1: noise must be in [0, 1]"),
        ("moons:noise=7", "noise=7: noise must be in [0, 5] on vector domains"),
        ("digits:rotate=400", "rotate=400: rotate must be in [-360, 360]"),
        ("digits:rotate=nan", "rotate must be in [-360, 360]"),
        ("digits:prior=0.5", "prior=0.5: prior must be in [1, 100]"),
        ("digits:scale=0", "scale=0: scale must be in [0.25, 4]"),
        ("moons:invert", "invert: invert applies to image domains only; moons is a vector domain"),
        ("blobs:texture=0.5", "texture applies to image domains only"),
        ("digits:rotate=30,", "empty shift"),
        ("digits:", "empty shift"),
        ("digits:rotate=30,,invert", "empty shift"),
        ("digits:=3", "no shift name"),
    ],
)
def test_malformed_specs_raise_spec_error_with_a_useful_message(text, expected):
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert expected in str(caught.value)


def test_non_text_spec_is_a_spec_error():
    with pytest.raises(SpecError, match="must be text"):
        parse_spec(None)


def test_load_domain_rechecks_a_hand_built_spec():
    with pytest.raises(SpecError, match="invert applies to image domains only"):
        load_domain(DatasetSpec("moons", (("invert", None),)))


@dataclass(frozen=True)
class _FakeEntry:
    kind: str
    takes_argument: bool = False


FAKE_DATASETS = {"digits": _FakeEntry("image"), "folder": _FakeEntry("image", takes_argument=True)}


@pytest.mark.parametrize(
    "text, argument, shifts",
    [
        ("folder:/data/photos", "/data/photos", ()),
        ("folder:/data/photos:rotate=30,invert", "/data/photos", (("rotate", 30.0), ("invert", None))),
        (" folder : /data/my photos : invert ", "/data/my photos", (("invert", None),)),
    ],
)
def test_grammar_leaves_room_for_datasets_that_take_an_argument(text, argument, shifts):
    spec = parse_spec(text, FAKE_DATASETS)
    assert (spec.dataset, spec.argument, spec.shifts) == ("folder", argument, shifts)
    assert parse_spec(str(spec), FAKE_DATASETS) == spec


def test_dataset_that_takes_an_argument_requires_one():
    with pytest.raises(SpecError, match="needs an argument"):
        parse_spec("folder", FAKE_DATASETS)


def test_registry_is_the_default_dataset_lookup():
    assert parse_spec("digits") == parse_spec("digits", DATASETS)
    with pytest.raises(UnknownNameError, match="valid datasets: digits, folder"):
        parse_spec("moons", FAKE_DATASETS)
