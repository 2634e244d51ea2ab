"""Seeded image augmentations in plain torch ops, applied to a batch on its device.

FixMatch-style consistency (Sohn et al., NeurIPS 2020) needs a *weak* view (small shifts;
no flips, which would turn some digits into others) and a *strong* view (a random affine map,
gaussian noise and cutout) of the same images. Every random draw comes from the
``generator`` passed in (a CPU generator; the drawn parameters move to the images' device),
so the same seed gives the same views on any device. Images are float ``(N, C, H, W)``, in
whatever range or normalisation they come in: pixels outside the frame repeat the border,
and cutout fills with each image's mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(n: int, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2 - 1) * bound


def affine(images: torch.Tensor, degrees: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor,
           scale: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate each image by ``degrees`` about its centre, scale it by ``scale`` and shift it by
    (``shift_x``, ``shift_y``) pixels (one value per image; bilinear, border padding)."""
    n, _, h, w = images.shape
    angle = torch.deg2rad(degrees.float())
    zoom = torch.ones(n) if scale is None else scale.float()
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output coordinates (in [-1, 1]) to input ones: shifting the content by +t
    # pixels samples from -t (in normalised units, 2t / size).
    theta = torch.stack([torch.stack([cos, -sin, -2 * shift_x.float() / w], 1),
                         torch.stack([sin, cos, -2 * shift_y.float() / h], 1)], 1).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def weak_augment(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by a whole number of pixels, up to ``max_shift`` each way (exact: no
    interpolation at whole-pixel offsets). ``max_shift=0`` returns the images unchanged."""
    if max_shift <= 0:
        return images
    n = len(images)
    shifts = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator)
    return affine(images, torch.zeros(n), shifts[0], shifts[1])


def cutout(images: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Fill one square of side ``fraction`` × the image side per image, at a random centre
    (clipped at the frame), with that image's mean (DeVries & Taylor, 2017)."""
    n, _, h, w = images.shape
    side = int(round(fraction * min(h, w)))
    if side <= 0:
        return images
    cy = torch.randint(0, h, (n,), generator=generator).to(images.device)
    cx = torch.randint(0, w, (n,), generator=generator).to(images.device)
    rows = torch.arange(h, device=images.device)[None, :, None]
    cols = torch.arange(w, device=images.device)[None, None, :]
    top, left = (cy - side // 2)[:, None, None], (cx - side // 2)[:, None, None]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)  # (n, h, w)
    fill = images.mean(dim=(1, 2, 3), keepdim=True).expand_as(images)
    return torch.where(inside[:, None], fill, images)


def strong_augment(images: torch.Tensor, generator: torch.Generator, degrees: float = 15.0,
                   max_shift: float = 3.0, scale: float = 0.1, noise: float = 0.1,
                   cutout_fraction: float = 0.4) -> torch.Tensor:
    """A strong view: a random affine map (rotation up to ``degrees``, a shift up to
    ``max_shift`` pixels, a zoom in [1 − ``scale``, 1 + ``scale``]), then gaussian noise of
    standard deviation ``noise`` × the batch's pixel standard deviation, then :func:`cutout`."""
    n = len(images)
    out = affine(images, _uniform(n, degrees, generator), _uniform(n, max_shift, generator),
                 _uniform(n, max_shift, generator), 1 + _uniform(n, scale, generator))
    if noise > 0:
        spread = images.std().clamp_min(1e-6)
        eps = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
        out = out + noise * spread * eps
    return cutout(out, cutout_fraction, generator) if cutout_fraction > 0 else out


def jitter(points: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian jitter for vector inputs: ``points + std · ε`` (``std=0`` returns them unchanged)."""
    if std <= 0:
        return points
    return points + std * torch.randn(points.shape, generator=generator).to(points.device, points.dtype)


__all__ = ["affine", "weak_augment", "strong_augment", "cutout", "jitter"]
