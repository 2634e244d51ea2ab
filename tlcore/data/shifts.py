"""Composable, seeded domain shifts: the ``SHIFTS`` registry and :func:`apply_shifts`.

A shift turns one :class:`~tlcore.data.domain.Domain` into a new one and
appends a sentence saying what it did to ``Domain.description``. Shifts are
pure: they never modify their input tensors, and all their randomness comes
from the ``torch.Generator`` they are handed, so the same seed gives the same
tensors.

Each entry of :data:`SHIFTS` is a :class:`ShiftDef` that carries its own value
range, the domain kinds it applies to and a one-line help text (the CLI and the
app show it). Spec strings such as ``"digits:rotate=30,invert"`` name shifts by
these keys (see :mod:`tlcore.data.spec`).

Unless a description says otherwise, a shift applies to the training and the
test split alike: the target domain's test set is drawn from the shifted
distribution.

Streamed domains (inputs are :class:`~tlcore.data.lazy.LazyImages`, decoded
when read) take the shifts marked ``streamable``: the deterministic per-image
ones (``rotate``, ``invert``, ``blur``, ``scale``, ``resize``) are appended to
the images' transforms and run when a batch is decoded, giving the same pixels
as on a resident domain; the label and subset shifts (``label_noise``,
``prior``, ``permute``, ``limit``) only touch labels and row indices. ``noise``
and ``texture`` draw one random sequence over a whole split and ``bias`` fits
a principal axis on every input, so they refuse a streamed domain with a
message naming the fix (shrink it below the resident limit with a leading
``resize=`` / ``limit=``, or load it resident).
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..errors import SpecError, UnknownNameError, with_article
from .domain import Domain, as_float
from .lazy import is_lazy, take_rows

VECTOR, IMAGE = "vector", "image"
BOTH_KINDS = frozenset({VECTOR, IMAGE})
IMAGES_ONLY = frozenset({IMAGE})
SPLITS = ("train", "test")

ShiftFunction = Callable[[Domain, "float | None", torch.Generator], Domain]


# --------------------------------------------------------------------------- seeding and formatting
def derive_seed(*labels: object) -> int:
    """A 63-bit seed derived from ``labels`` (e.g. ``(seed, position, name)``).

    Uses SHA-256 rather than :func:`hash`, whose value for strings changes from
    one Python process to the next.
    """
    digest = hashlib.sha256(repr(labels).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def derive_generator(*labels: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``labels``."""
    return torch.Generator().manual_seed(derive_seed(*labels))


def format_value(value: float) -> str:
    """Compact, round-trippable text for a shift value: ``30`` not ``30.0``, ``0.25``."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


# --------------------------------------------------------------------------- the registry entry
@dataclass(frozen=True)
class ShiftDef:
    """One shift: its name, value, valid range, where it applies and what it does.

    Attributes
    ----------
    name: key in :data:`SHIFTS` and in spec strings.
    takes_value: whether the spec writes ``name=VALUE``.
    default: value used when the spec writes the bare name although the shift
        takes a value (only ``permute``: 1.0); ``None`` means a value is required.
    value_range: inclusive ``(lo, hi)`` valid for image domains, and for vector
        domains unless ``vector_range`` says otherwise.
    vector_range: inclusive range for vector domains when it differs (``noise``
        is in data units there, in [0, 1] intensity units on images).
    applies_to: the domain kinds (``"vector"``, ``"image"``) it applies to.
    value_name: placeholder shown in usage text, e.g. ``"DEG"``.
    help: one line for the CLI and the app.
    apply: ``apply(domain, value, generator) -> Domain``; returns a new domain.
    streamable: whether it applies to a streamed domain (inputs decoded when read;
        see the module docstring). Shifts that need every input at once are not.
    """

    name: str
    takes_value: bool
    value_range: tuple[float, float] | None
    applies_to: frozenset[str]
    help: str
    apply: ShiftFunction = field(repr=False)
    default: float | None = None
    vector_range: tuple[float, float] | None = None
    value_name: str = "VALUE"
    streamable: bool = False

    @property
    def usage(self) -> str:
        """How a spec writes it, e.g. ``"rotate=DEG"`` or ``"permute[=FRACTION]"``."""
        if not self.takes_value:
            return self.name
        if self.default is not None:
            return f"{self.name}[={self.value_name}]"
        return f"{self.name}={self.value_name}"

    def range_for(self, kind: str) -> tuple[float, float] | None:
        """The valid value range on a domain of ``kind``."""
        if kind == VECTOR and self.vector_range is not None:
            return self.vector_range
        return self.value_range

    def range_text(self) -> str:
        """The valid range in words, e.g. ``"[0, 1] (images), [0, 5] (vectors)"``."""
        if not self.takes_value or self.value_range is None:
            return "-"
        text = _interval(self.value_range)
        if self.vector_range is not None:
            text = f"{text} (images), {_interval(self.vector_range)} (vectors)"
        return text


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{format_value(bounds[0])}, {format_value(bounds[1])}]"


def resolve_shift_value(name: str, value: float | None, kind: str, context: str = "") -> float | None:
    """Check one shift against a domain kind and return its value (default filled in).

    Parameters
    ----------
    name: shift name; unknown names raise :class:`UnknownNameError` listing the valid ones.
    value: the value written in the spec, or ``None`` when the spec wrote the bare name.
    kind: ``"vector"`` or ``"image"``: the kind of the domain it will apply to.
    context: a word naming that domain in messages, e.g. ``"moons"``.

    Raises
    ------
    SpecError: a flag given a value, a value missing, a value out of range, or a
        shift that does not apply to ``kind``. Messages name the shift, the value
        and what is valid, e.g. ``"noise=-1: noise must be in [0, 1]"``.
    """
    if name not in SHIFTS:
        raise UnknownNameError("shift", name, SHIFTS)
    shift = SHIFTS[name]
    written = name if value is None else f"{name}={format_value(value)}"
    if kind not in shift.applies_to:
        only = " and ".join(sorted(shift.applies_to))
        where = f"; {context} is {with_article(kind)} domain" if context else f", not {kind} domains"
        raise SpecError(f"{written}: {name} applies to {only} domains only{where}")
    if not shift.takes_value:
        if value is not None:
            raise SpecError(f"{written}: {name} takes no value; write just '{name}'")
        return None
    if value is None:
        if shift.default is None:
            raise SpecError(
                f"{name}: {name} needs a value; write {name}={shift.value_name} "
                f"with {shift.value_name} in {_interval(shift.range_for(kind))}"
            )
        value = shift.default
    lo, hi = shift.range_for(kind)
    if not lo <= value <= hi:  # also rejects nan
        for_kind = f" on {kind} domains" if shift.vector_range is not None else ""
        raise SpecError(f"{written}: {name} must be in {_interval((lo, hi))}{for_kind}")
    return float(value)


# --------------------------------------------------------------------------- image helpers
def _image_like(result: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Bring float [0, 1] ``result`` back to ``original``'s dtype (uint8 stays uint8, so large
    datasets stay small)."""
    if original.dtype == torch.uint8:
        return result.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return result.to(original.dtype)


def _through_float(x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``transform`` applied to ``x`` as float in [0, 1], the result back in ``x``'s dtype."""
    return _image_like(transform(as_float(x)), x)


def _map_images(domain: Domain, transform: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply ``transform`` (float images in [0, 1] in, float images out) to both splits.

    ``transform`` must not modify its argument in place: for float32 data it is
    the domain's own tensor. Streamed inputs get it as a per-image transform
    applied when read, so it must then be picklable (a module-level function or
    a ``functools.partial`` of one) and treat each image independently.
    """
    return {f"x_{split}": _map_split(getattr(domain, f"x_{split}"), functools.partial(_through_float, transform=transform))
            for split in SPLITS}


def _map_split(x, transform: Callable[[torch.Tensor], torch.Tensor]):
    """``transform(x)`` now for a tensor; appended to the per-image transforms of streamed inputs."""
    return x.map(transform) if is_lazy(x) else transform(x)


def _affine_images(x: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
    """Resample images ``x`` (N, C, H, W) so that output pixel p reads input pixel ``linear @ p``.

    ``linear`` is a 2×2 map in pixel units about the image centre (x to the
    right, y down). It is converted to ``affine_grid``'s normalised coordinates,
    which stretch x and y by different amounts on non-square images.
    Bilinear interpolation; points outside the image read 0.
    """
    n, _, height, width = x.shape
    to_pixels = torch.diag(torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64))
    theta_2x2 = torch.linalg.inv(to_pixels) @ linear.to(torch.float64) @ to_pixels
    theta = torch.zeros(n, 2, 3, dtype=torch.float32)
    theta[:, :, :2] = theta_2x2.to(torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _rotation_matrix(degrees: float) -> torch.Tensor:
    radians = math.radians(degrees)
    c, s = math.cos(radians), math.sin(radians)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


# --------------------------------------------------------------------------- the shifts
def rotate(domain: Domain, degrees: float, generator: torch.Generator) -> Domain:
    """Rotate counter-clockwise by ``degrees``: points about the origin, images about their centre.

    Vectors: ``x @ R.T`` with the usual rotation matrix, so (1, 0) turns into
    (cos θ, sin θ); with more than two coordinates only the first two rotate.
    Images: counter-clockwise as displayed (row 0 at the top), bilinear, zero fill.
    Deterministic; ``generator`` is unused.
    """
    if domain.kind == VECTOR:
        rotation = _rotation_matrix(degrees).to(torch.float32)

        def turn(x: torch.Tensor) -> torch.Tensor:
            plane = x[:, :2].float() @ rotation.T
            return torch.cat([plane.to(x.dtype), x[:, 2:]], dim=1)

        plane_note = "" if domain.input_shape[0] == 2 else " in the plane of the first two coordinates"
        return domain.with_steps(
            f"rotated by {format_value(degrees)}° counter-clockwise about the origin{plane_note}",
            x_train=turn(domain.x_train), x_test=turn(domain.x_test),
        )
    # Output pixel p (y down) reads the input at R(θ) p, which turns the picture
    # counter-clockwise on screen (the same sense as torchvision's rotate).
    rotation = _rotation_matrix(degrees)
    return domain.with_steps(
        f"rotated by {format_value(degrees)}° counter-clockwise about the image centre (bilinear, zero fill)",
        **_map_images(domain, functools.partial(_affine_images, linear=rotation)),
    )


def _flip_intensities(x: torch.Tensor) -> torch.Tensor:
    return 255 - x if x.dtype == torch.uint8 else 1.0 - x


def invert(domain: Domain, value: None, generator: torch.Generator) -> Domain:
    """Invert intensities, x → 1 − x (255 − x for uint8). Its own inverse."""
    return domain.with_steps(
        "inverted intensities: x → 1 − x",
        x_train=_map_split(domain.x_train, _flip_intensities), x_test=_map_split(domain.x_test, _flip_intensities),
    )


def add_noise(domain: Domain, sigma: float, generator: torch.Generator) -> Domain:
    """Add Gaussian noise of standard deviation ``sigma`` to every input, train and test.

    Images: ``sigma`` is in [0, 1] intensity units and the result is clamped to
    [0, 1]. Vectors: ``sigma`` is in data units.
    """
    if domain.kind == VECTOR:
        def noisy(x: torch.Tensor) -> torch.Tensor:
            return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)

        return domain.with_steps(
            f"added Gaussian noise σ={format_value(sigma)} (data units) to train and test inputs",
            x_train=noisy(domain.x_train), x_test=noisy(domain.x_test),
        )

    def noisy_images(x: torch.Tensor) -> torch.Tensor:
        return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)

    return domain.with_steps(
        f"added Gaussian pixel noise σ={format_value(sigma)} to train and test images, clamped to [0, 1]",
        **_map_images(domain, noisy_images),
    )


def gaussian_kernel_1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel of radius ``ceil(3σ)`` (length 1 for σ = 0)."""
    radius = math.ceil(3 * sigma)
    if radius == 0:
        return torch.ones(1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(torch.float32)


def blur(domain: Domain, sigma: float, generator: torch.Generator) -> Domain:
    """Gaussian blur of ``sigma`` pixels: a separable convolution, kernel radius ``ceil(3σ)``.

    Edge pixels are replicated outward, so borders neither darken nor brighten.
    Deterministic; ``generator`` is unused.
    """
    kernel = gaussian_kernel_1d(sigma)
    radius = (len(kernel) - 1) // 2
    return domain.with_steps(
        f"Gaussian blur σ={format_value(sigma)} px (separable, kernel radius {radius}, edges replicated)",
        **_map_images(domain, functools.partial(_blur_images, kernel=kernel)),
    )


def _blur_images(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable convolution of images ``x`` with the 1-D ``kernel``, edges replicated."""
    radius = (len(kernel) - 1) // 2
    if radius == 0:
        return x.clone()
    channels = x.shape[1]
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), rows, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), cols, groups=channels)


def scale(domain: Domain, factor: float, generator: torch.Generator) -> Domain:
    """Vectors: multiply by ``factor``. Images: zoom about the centre (> 1 zooms in, zero fill).

    Deterministic; ``generator`` is unused.
    """
    if domain.kind == VECTOR:
        return domain.with_steps(
            f"multiplied by {format_value(factor)} (scaled about the origin)",
            x_train=domain.x_train * factor, x_test=domain.x_test * factor,
        )
    # Output pixel p reads the input at p / factor: factor > 1 magnifies the centre.
    shrink = torch.eye(2, dtype=torch.float64) / factor
    return domain.with_steps(
        f"zoomed ×{format_value(factor)} about the image centre (>1 zooms in; bilinear, zero fill)",
        **_map_images(domain, functools.partial(_affine_images, linear=shrink)),
    )


TEXTURE_PHOTOS = ("china.jpg", "flower.jpg")


@lru_cache(maxsize=8)
def texture_photos(short_side: int) -> torch.Tensor:
    """scikit-learn's two bundled sample photos as float (2, H, W, 3) in [0, 1],
    downscaled so that their shorter side is ``short_side`` pixels.

    Downscaling first (rather than cropping the 427×640 originals directly)
    puts visible texture into a small patch. Cached: callers must not modify it.
    """
    from sklearn.datasets import load_sample_images  # reads JPEGs with pillow; only needed for texture

    bunch = load_sample_images()
    by_file = {path.replace("\\", "/").rsplit("/", 1)[-1]: image for path, image in zip(bunch.filenames, bunch.images)}
    photos = torch.stack([torch.tensor(by_file[name]) for name in TEXTURE_PHOTOS])  # copies: the arrays are read-only
    photos = photos.permute(0, 3, 1, 2).float() / 255.0
    height, width = photos.shape[-2:]
    ratio = short_side / min(height, width)
    size = (max(short_side, round(height * ratio)), max(short_side, round(width * ratio)))
    photos = F.interpolate(photos, size=size, mode="bilinear", align_corners=False, antialias=True)
    return photos.clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous()


def texture(domain: Domain, alpha: float, generator: torch.Generator) -> Domain:
    """MNIST-M-style texture blending (Ganin et al., JMLR 2016).

    Each image is blended with its own random crop of a natural photograph:
    ``out = (1 − α)·x + α·|patch − x|``. The photographs are scikit-learn's
    bundled ``china.jpg`` and ``flower.jpg``, downscaled to a short side of four
    times the image size. The result has 3 (RGB) channels; grayscale input is
    repeated to 3 channels first. Values stay in [0, 1].
    """
    height, width = domain.input_shape[1:]
    photos = texture_photos(4 * max(height, width))
    photo_height, photo_width = photos.shape[1:3]
    channels = domain.input_shape[0]
    if channels not in (1, 3):
        raise SpecError(f"texture={format_value(alpha)}: texture needs 1- or 3-channel images, got {channels} channels")

    def textured(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rgb = x.expand(-1, 3, -1, -1) if channels == 1 else x
        which = torch.randint(len(photos), (n,), generator=generator)
        top = torch.randint(photo_height - height + 1, (n,), generator=generator)
        left = torch.randint(photo_width - width + 1, (n,), generator=generator)
        rows = top[:, None] + torch.arange(height)
        cols = left[:, None] + torch.arange(width)
        patches = photos[which[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, H, W, 3)
        patches = patches.permute(0, 3, 1, 2)
        return ((1.0 - alpha) * rgb + alpha * (patches - rgb).abs()).clamp(0.0, 1.0)

    gray_note = "grayscale repeated to 3 channels, then " if channels == 1 else ""
    return domain.with_steps(
        f"texture α={format_value(alpha)} (MNIST-M style, Ganin et al. 2016): {gray_note}each image blended with "
        f"its own random {height}×{width} crop of a scikit-learn sample photo ({', '.join(TEXTURE_PHOTOS)}, "
        f"downscaled to {photo_height}×{photo_width}): out = (1 − α)·x + α·|patch − x|; RGB output in [0, 1]",
        **_map_images(domain, textured),
    )


def label_noise(domain: Domain, rate: float, generator: torch.Generator) -> Domain:
    """Replace each training label, with probability ``rate``, by a different class chosen uniformly.

    Test labels stay clean, so test accuracy still measures the clean task.
    """
    classes = domain.num_classes
    y = domain.y_train
    if classes < 2:
        return domain.with_steps(f"label noise {format_value(rate)}: no effect with a single class")
    flip = torch.rand(y.shape, generator=generator) < rate
    # An offset in 1..C-1 modulo C picks each other class with equal probability.
    offset = torch.randint(1, classes, y.shape, generator=generator)
    noisy = torch.where(flip, (y + offset) % classes, y)
    return domain.with_steps(
        f"label noise {format_value(rate)}: each training label replaced with probability {format_value(rate)} "
        f"by a different class chosen uniformly ({int(flip.sum())} of {len(y)} changed); test labels stay clean",
        y_train=noisy,
    )


MIN_KEPT_PER_CLASS = 5


def _take(domain: Domain, keep: dict[str, torch.Tensor], *steps: str) -> Domain:
    """A new domain holding the rows ``keep[split]`` (sorted int64 indices) of each split."""
    changes = {}
    for split, index in keep.items():
        changes[f"x_{split}"] = take_rows(getattr(domain, f"x_{split}"), index)
        changes[f"y_{split}"] = getattr(domain, f"y_{split}")[index]
    return domain.with_steps(*steps, **changes)


def prior_shift(domain: Domain, imbalance: float, generator: torch.Generator) -> Domain:
    """Class-prior (label) shift: subsample classes to an exponential frequency profile.

    Classes are ranked by a seeded permutation; the class at rank ``r`` of
    ``C`` gets a share proportional to ``imbalance ** (−r / (C − 1))``, so the
    most frequent class has ``imbalance`` times as many examples as the least.
    Within each split the largest counts that fit the available examples are
    used, and a class never drops below ``min(5, available)`` examples (so at
    very large ratios on small splits the achieved ratio is lower; the
    description reports it). ``prior=1`` gives a uniform class prior. p(x|y) is
    unchanged: which examples of a class are kept is a uniform random choice.
    """
    classes = domain.num_classes
    if classes < 2:
        return domain.with_steps(f"prior imbalance {format_value(imbalance)}: no effect with a single class")
    order = torch.randperm(classes, generator=generator)
    rank = torch.empty(classes, dtype=torch.float64)
    rank[order] = torch.arange(classes, dtype=torch.float64)
    share = imbalance ** (-rank / (classes - 1))  # 1 for the most frequent class

    keep, reports = {}, []
    for split in SPLITS:
        y = getattr(domain, f"y_{split}")
        available = torch.bincount(y, minlength=classes).to(torch.float64)
        present = available > 0
        # The largest head count whose profile fits every present class.
        head = torch.min(available[present] / share[present])
        target = torch.floor(head * share + 1e-9)
        target = torch.maximum(target, torch.minimum(available, torch.full_like(available, MIN_KEPT_PER_CLASS)))
        target = torch.minimum(target, available).to(torch.int64)
        kept = []
        for label in range(classes):
            members = torch.nonzero(y == label).flatten()
            chosen = members[torch.randperm(len(members), generator=generator)[: int(target[label])]]
            kept.append(chosen)
        keep[split] = torch.sort(torch.cat(kept)).values
        counts = target[present]
        reports.append(f"{split} {len(keep[split])}/{len(y)} kept, counts {int(counts.max())}..{int(counts.min())} "
                       f"(ratio {float(counts.max()) / max(1, int(counts.min())):.3g})")
    most, least = domain.class_names[int(order[0])], domain.class_names[int(order[-1])]
    return _take(
        domain, keep,
        f"class-prior shift, imbalance {format_value(imbalance)}: classes subsampled so their frequencies fall "
        f"exponentially from '{most}' (most frequent) to '{least}' (least), seeded class order; "
        + "; ".join(reports),
    )


def permute_labels(domain: Domain, fraction: float, generator: torch.Generator) -> Domain:
    """Swap the task: cyclically permute the labels of ``round(fraction × C)`` classes.

    At least two classes take part when ``fraction > 0`` (one class cannot be
    permuted). The chosen classes, in a seeded order, each take the label of
    the next, so none keeps its own label. Train and test labels change alike;
    images and class names stay, so the same inputs now carry a different task.
    """
    classes = domain.num_classes
    count = round(fraction * classes)
    if fraction > 0 and classes >= 2:
        count = max(2, count)
    count = min(count, classes)
    if count < 2:
        return domain.with_steps(f"permute {format_value(fraction)}: no classes permuted")
    chosen = torch.randperm(classes, generator=generator)[:count]
    mapping = torch.arange(classes)
    mapping[chosen] = torch.roll(chosen, -1)
    names = domain.class_names
    listed = ", ".join(f"{names[int(old)]}→{names[int(mapping[old])]}" for old in chosen)
    return domain.with_steps(
        f"permute {format_value(fraction)}: labels of {count} of {classes} classes cyclically permuted in train and "
        f"test (same inputs, different task): {listed}",
        y_train=mapping[domain.y_train], y_test=mapping[domain.y_test],
    )


MIN_KEPT_FRACTION = 0.2
PCA_MAX_ROWS = 2000
PCA_BLOCK = 4
PCA_ITERATIONS = 30
PROJECTION_CHUNK = 4096


def _flat_rows(x: torch.Tensor, index: torch.Tensor | slice) -> torch.Tensor:
    """Rows ``index`` of images or vectors ``x``, flattened, as float64 (uint8 scaled to [0, 1])."""
    rows = x[index]
    return as_float(rows).reshape(len(rows), -1).to(torch.float64)


def first_principal_axis(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and first principal axis (unit norm, float64) of the flattened rows of ``x``.

    Fitted on at most 2000 evenly spaced rows. An exact eigendecomposition
    costs O(D³), seconds for RGB images, so the axis comes from block power
    (subspace) iteration from a fixed start, then Rayleigh–Ritz inside the
    block; with D ≤ 4 this is exact. Everything is fixed, so the result is
    deterministic; the sign makes the entry of largest magnitude positive.
    """
    if len(x) > PCA_MAX_ROWS:
        rows = _flat_rows(x, torch.linspace(0, len(x) - 1, PCA_MAX_ROWS).round().long())
    else:
        rows = _flat_rows(x, slice(None))
    mean = rows.mean(dim=0)
    centred = rows - mean
    dimension = centred.shape[1]
    start = torch.randn(dimension, min(PCA_BLOCK, dimension), generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    block = torch.linalg.qr(start).Q
    for _ in range(PCA_ITERATIONS):
        block = torch.linalg.qr(centred.T @ (centred @ block)).Q
    projected = centred @ block
    _, eigenvectors = torch.linalg.eigh(projected.T @ projected)  # ascending eigenvalues
    axis = block @ eigenvectors[:, -1]
    axis = axis / axis.norm()
    if axis[torch.argmax(axis.abs())] < 0:
        axis = -axis
    return mean, axis


def _projection(x: torch.Tensor, mean: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """``(flatten(x) − mean) @ axis`` in chunks, so no float64 copy of a large dataset is made."""
    chunks = [(_flat_rows(x, slice(i, i + PROJECTION_CHUNK)) - mean) @ axis for i in range(0, len(x), PROJECTION_CHUNK)]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.float64)


def selection_bias(domain: Domain, strength: float, generator: torch.Generator) -> Domain:
    """Sample-selection bias: covariate shift that keeps p(y|x).

    Each training and test example is kept with probability
    ``sigmoid(strength · z)``, where ``z`` is the projection of its flattened
    input on the first principal component of the training inputs,
    standardised with the mean and standard deviation of the training
    projections. Selection depends on x only, never on y, so p(y|x) is
    unchanged while p(x) moves along that axis: the setting of importance
    weighting (Shimodaira 2000; Huang et al., NIPS 2006). Then,
    deterministically, the most probable dropped examples are added back until
    each split keeps at least 20% of its examples, and every class present in a
    split keeps at least its most probable example.
    """
    mean, axis = first_principal_axis(domain.x_train)
    train_projection = _projection(domain.x_train, mean, axis)
    centre, spread = train_projection.mean(), train_projection.std().clamp_min(1e-12)

    keep, reports = {}, []
    for split in SPLITS:
        x, y = getattr(domain, f"x_{split}"), getattr(domain, f"y_{split}")
        n = len(y)
        projection = train_projection if split == "train" else _projection(x, mean, axis)
        probability = torch.sigmoid(strength * (projection - centre) / spread)
        kept = torch.rand(n, generator=generator, dtype=torch.float64) < probability
        most_probable_first = torch.argsort(-probability, stable=True)
        shortfall = math.ceil(MIN_KEPT_FRACTION * n) - int(kept.sum())
        if shortfall > 0:
            dropped = most_probable_first[~kept[most_probable_first]]
            kept[dropped[:shortfall]] = True
        for label in torch.unique(y).tolist():
            in_class = most_probable_first[y[most_probable_first] == label]
            if not kept[in_class].any():
                kept[in_class[0]] = True
        keep[split] = torch.nonzero(kept).flatten()
        reports.append(f"kept {int(kept.sum())}/{n} {split}")
    return _take(
        domain, keep,
        f"sample-selection bias {format_value(strength)}: each example kept with probability "
        f"sigmoid({format_value(strength)}·z), z = standardised projection of the input on the training inputs' "
        "first principal component (covariate shift that keeps p(y|x); Shimodaira 2000, Huang et al. 2006; "
        "at least 20% of each split kept); " + ", ".join(reports),
    )


# --------------------------------------------------------------------------- size and count (also load options)
RESIZE_CHUNK = 2048


def _whole_number(name: str, value: float) -> int:
    if not float(value).is_integer():
        raise SpecError(f"{name}={format_value(value)}: {name} must be a whole number")
    return int(value)


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of images ``x`` (N, C, H, W) to ``size``, antialiased when shrinking.

    Works in chunks so that a large uint8 dataset is never converted to float
    as a whole; uint8 stays uint8. Returns a new tensor.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    chunks = []
    for start in range(0, len(x), RESIZE_CHUNK):
        part = as_float(x[start:start + RESIZE_CHUNK])
        part = F.interpolate(part, size=size, mode="bilinear", align_corners=False, antialias=True)
        chunks.append(_image_like(part.clamp(0.0, 1.0), x))
    return torch.cat(chunks) if chunks else x.new_zeros((0, x.shape[1], *size))


def resize(domain: Domain, pixels: float, generator: torch.Generator) -> Domain:
    """Resize every image to ``pixels``×``pixels`` (bilinear, antialiased when shrinking).

    Non-square images are stretched. Refuses (before allocating) a result larger
    than the resident-memory limit (:mod:`tlcore.data.limits`). Loaders that
    read images from files (``folder``, ``stl10``) apply a leading ``resize``
    while reading instead. Deterministic; ``generator`` is unused.
    """
    from .limits import check_resident_size

    side = _whole_number("resize", pixels)
    channels, height, width = domain.input_shape
    total = len(domain.y_train) + len(domain.y_test)
    if is_lazy(domain.x_train):
        transform = functools.partial(resize_images, size=(side, side))
        return domain.with_steps(
            f"resized from {height}×{width} to {side}×{side} (bilinear, antialiased) when each batch is read",
            x_train=domain.x_train.map(transform), x_test=domain.x_test.map(transform),
        )
    check_resident_size(f"{domain.name}:resize={side}", total, (channels, side, side),
                        bytes_per_value=domain.x_train.element_size())
    return domain.with_steps(
        f"resized from {height}×{width} to {side}×{side} (bilinear, antialiased)",
        x_train=resize_images(domain.x_train, (side, side)), x_test=resize_images(domain.x_test, (side, side)),
    )


def limit_per_class(domain: Domain, count: float, generator: torch.Generator) -> Domain:
    """Keep at most ``count`` examples of each class in each split (a seeded random choice).

    Classes with fewer examples keep them all; the kept rows stay in their
    original order. Useful to make a large dataset quick to train on, or small
    enough to hold in memory (loaders that read files apply a leading ``limit``
    before decoding).
    """
    per_class = _whole_number("limit", count)
    keep, reports = {}, []
    for split in SPLITS:
        y = getattr(domain, f"y_{split}")
        kept = []
        for label in range(domain.num_classes):
            members = torch.nonzero(y == label).flatten()
            if len(members) > per_class:
                members = members[torch.randperm(len(members), generator=generator)[:per_class]]
            kept.append(members)
        keep[split] = torch.sort(torch.cat(kept)).values if kept else torch.zeros(0, dtype=torch.int64)
        reports.append(f"{split} {len(keep[split])}/{len(y)} kept")
    return _take(
        domain, keep,
        f"limited to at most {per_class} examples per class in each split (seeded random choice); "
        + ", ".join(reports),
    )


# --------------------------------------------------------------------------- heterogeneous representations
EMBED_NOISE = 0.05


def embed(domain: Domain, dimension: float, generator: torch.Generator) -> Domain:
    """Send vectors into ``dimension`` dimensions by a seeded random isometry, plus noise.

    ``x ↦ Q x + ε`` with ``Q`` a ``(D, d)`` matrix of orthonormal columns (the QR
    factor of a Gaussian matrix) and ``ε`` Gaussian of std ``EMBED_NOISE`` in every
    one of the ``D`` coordinates: the same clusters, at the same distances from each
    other, in an input space that shares no coordinate with the original. Paired
    with the un-embedded dataset, it makes a *heterogeneous* pair, which only
    strategies that learn from structure alone (``gromov``) can use.
    """
    target_dim = _whole_number("embed", dimension)
    (d,) = domain.input_shape
    if target_dim < d:
        raise SpecError(f"embed={target_dim}: the domain has {d}-dimensional inputs; embed needs at least {d} dimensions")
    basis, _ = torch.linalg.qr(torch.randn(target_dim, d, generator=generator, dtype=torch.float64))
    changes = {}
    for split in SPLITS:
        x = getattr(domain, f"x_{split}").to(torch.float64)
        noise = EMBED_NOISE * torch.randn(len(x), target_dim, generator=generator, dtype=torch.float64)
        changes[f"x_{split}"] = (x @ basis.T + noise).to(torch.float32)
    return domain.with_steps(
        f"embedded from {d} to {target_dim} dimensions by a seeded random isometry (orthonormal columns) plus "
        f"Gaussian noise of std {format_value(EMBED_NOISE)} per coordinate: same structure, new input space",
        **changes,
    )


def flatten(domain: Domain, value: None, generator: torch.Generator) -> Domain:
    """Images ``(C, H, W)`` become vectors of ``C·H·W`` values in [0, 1] (a vector domain).

    With a different image size on the other side (``digits:resize=8,flatten`` →
    ``digits:flatten``), the two domains share no input space. Deterministic.
    """
    channels, height, width = domain.input_shape
    changes = {f"x_{split}": as_float(getattr(domain, f"x_{split}")).reshape(len(getattr(domain, f"y_{split}")), -1)
               .clone() for split in SPLITS}
    return domain.with_steps(f"flattened from {channels}×{height}×{width} images to "
                             f"{channels * height * width}-dimensional vectors", kind=VECTOR, **changes)


# --------------------------------------------------------------------------- the registry
SHIFTS: dict[str, ShiftDef] = {
    "rotate": ShiftDef(
        "rotate", True, (-360.0, 360.0), BOTH_KINDS, value_name="DEG", apply=rotate,
        help="rotate counter-clockwise by DEG degrees (points about the origin, images about their centre)",
        streamable=True,
    ),
    "invert": ShiftDef(
        "invert", False, None, IMAGES_ONLY, apply=invert,
        help="invert image intensities: x → 1 − x",
        streamable=True,
    ),
    "noise": ShiftDef(
        "noise", True, (0.0, 1.0), BOTH_KINDS, vector_range=(0.0, 5.0), value_name="SIGMA", apply=add_noise,
        help="add Gaussian noise of std SIGMA (images: intensity units, clamped to [0, 1]; vectors: data units)",
    ),
    "blur": ShiftDef(
        "blur", True, (0.0, 5.0), IMAGES_ONLY, value_name="SIGMA", apply=blur,
        help="Gaussian blur of SIGMA pixels",
        streamable=True,
    ),
    "scale": ShiftDef(
        "scale", True, (0.25, 4.0), BOTH_KINDS, value_name="FACTOR", apply=scale,
        help="multiply points by FACTOR; zoom images about their centre (FACTOR > 1 zooms in)",
        streamable=True,
    ),
    "texture": ShiftDef(
        "texture", True, (0.0, 1.0), IMAGES_ONLY, value_name="ALPHA", apply=texture,
        help="MNIST-M-style blend with random photo crops, out = (1−ALPHA)·x + ALPHA·|patch − x| (gives RGB)",
    ),
    "label_noise": ShiftDef(
        "label_noise", True, (0.0, 1.0), BOTH_KINDS, value_name="RATE", apply=label_noise,
        help="replace each training label with probability RATE by another class (test labels stay clean)",
        streamable=True,
    ),
    "prior": ShiftDef(
        "prior", True, (1.0, 100.0), BOTH_KINDS, value_name="IMBALANCE", apply=prior_shift,
        help="class-prior shift: subsample classes so the most frequent has IMBALANCE times the least",
        streamable=True,
    ),
    "permute": ShiftDef(
        "permute", True, (0.0, 1.0), BOTH_KINDS, default=1.0, value_name="FRACTION", apply=permute_labels,
        help="cyclically permute the labels of a FRACTION of the classes (default all): same inputs, new task",
        streamable=True,
    ),
    "bias": ShiftDef(
        "bias", True, (-10.0, 10.0), BOTH_KINDS, value_name="STRENGTH", apply=selection_bias,
        help="sample-selection bias along the first principal component: covariate shift keeping p(y|x)",
    ),
    "resize": ShiftDef(
        "resize", True, (8.0, 1024.0), IMAGES_ONLY, value_name="PX", apply=resize,
        help="resize images to PX×PX pixels (bilinear); first in a file-based spec, it applies while reading",
        streamable=True,
    ),
    "embed": ShiftDef(
        "embed", True, (1.0, 4096.0), frozenset({VECTOR}), value_name="DIM", apply=embed,
        help="send vectors to DIM dimensions by a seeded random isometry plus noise (a heterogeneous pair "
             "with the original: only strategies that accept heterogeneous pairs can use it)",
    ),
    "flatten": ShiftDef(
        "flatten", False, None, IMAGES_ONLY, apply=flatten,
        help="turn images into flat vectors of C·H·W values (e.g. digits:resize=8,flatten → digits:flatten "
             "is a heterogeneous pair)",
    ),
    "limit": ShiftDef(
        "limit", True, (1.0, 1e7), BOTH_KINDS, value_name="N", apply=limit_per_class,
        help="keep at most N examples per class in each split (seeded); first in a file-based spec, before decoding",
        streamable=True,
    ),
}


def apply_shifts(domain: Domain, spec_shifts: Iterable[tuple[str, float | None]], seed: int) -> Domain:
    """Apply ``spec_shifts`` (``(name, value)`` pairs, e.g. ``DatasetSpec.shifts``) left to right.

    Each shift draws from its own generator, derived from ``(seed, position,
    name)``, so appending a shift never changes the randomness of the ones
    before it. Values are checked as in :func:`resolve_shift_value` (a bare
    ``permute`` gets its default). Returns a new domain; ``domain`` is untouched.
    """
    for position, (name, value) in enumerate(spec_shifts):
        value = resolve_shift_value(name, value, domain.kind, context=domain.name)
        if is_lazy(domain.x_train) and not SHIFTS[name].streamable:
            written = name if value is None else f"{name}={format_value(value)}"
            raise SpecError(
                f"{domain.name}: the shift {written} needs every image of a split in memory at once (it draws one "
                "random sequence over the whole split, or fits on all inputs), but this domain is streamed from disk "
                "(above the resident limit, or data_mode=stream). Fix: start the spec with resize=PX and/or limit=N "
                "so the images fit under TRANSFER_LAB_MAX_RESIDENT_MB (then set data_mode to auto or resident), "
                "or raise that limit; streamed domains take rotate, invert, blur, scale, resize, label_noise, "
                "prior, permute and limit")
        generator = derive_generator(seed, position, name)
        domain = SHIFTS[name].apply(domain, value, generator)
    return domain
