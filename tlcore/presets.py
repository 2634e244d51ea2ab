"""One-click presets: a named configuration with a sentence on what to look for.

The app's Lab page and the CLI read this registry; each preset is a plain
:class:`~tlcore.config.RunConfig` plus the ``compare_with`` strategies that
make its point side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    explanation: str
    look_for: str
    config: RunConfig
    compare_with: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "digits_invert_dann": Preset(
        name="digits_invert_dann",
        title="Digits → inverted digits with DANN",
        explanation=("The same handwritten digits, but white on black in the source and black on white in "
                     "the target. A classifier trained on the source alone fails on the target; DANN trains "
                     "the features so that a discriminator cannot tell the domains apart."),
        look_for=("Watch the domain-discriminator accuracy fall towards 0.5 while the target accuracy moves; "
                  "inversion is one of the hardest shifts for alignment, so compare with source_only."),
        config=RunConfig(source="digits", target="digits:invert", strategy="dann", epochs=30, lr=1e-3),
        compare_with=("source_only",),
    ),
    "moons_dann": Preset(
        name="moons_dann",
        title="Rotating moons: source-only vs DANN",
        explanation=("Two interleaving moons, and the same moons rotated by 35 degrees. The source-only "
                     "boundary cuts through the rotated target; DANN aligns the two feature distributions."),
        look_for="Target accuracy: DANN ends well above source_only; compare their decision boundaries on Inspect.",
        config=RunConfig(source="moons", target="moons:rotate=35", strategy="dann", epochs=40),
        compare_with=("source_only",),
    ),
    "negative_transfer_permuted": Preset(
        name="negative_transfer_permuted",
        title="Negative transfer: a label-permuted source",
        explanation=("The source holds the same kind of images with their labels permuted: a different task. "
                     "Fine-tuning from it with two labelled target examples per class starts from a head that "
                     "maps every digit to the wrong class."),
        look_for="The negative-transfer gap (NTG = target error with the source − without it) is positive.",
        config=RunConfig(source="digits:permute", target="digits", strategy="finetune", target_labels=2,
                         epochs=10),
        compare_with=("target_only",),
    ),
}
