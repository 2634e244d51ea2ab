"""Feature alignment by a statistic of the two feature distributions: MMD (DAN) and CORAL."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import spec
from ..losses import coral_loss, gaussian_bandwidths, median_sq_distance, mmd2_unbiased
from .base import Strategy, aligned_phase


@dataclass(frozen=True)
class MMDConfig:
    weight: float = spec(1.0, "weight of the MMD² term against the task loss", 0.0, 100.0)
    num_kernels: int = spec(5, "Gaussian kernels, bandwidths spread by factors of 2 around the median distance", 1, 11)


class MMD(Strategy):
    name = "mmd"
    summary = ("DAN-style: add the multi-kernel MMD² between source and target features to the task loss "
               "(Long et al., ICML 2015).")
    Config = MMDConfig

    def phases(self, ctx):
        k = self.params.num_kernels

        def align(fs, ft):
            sigma2 = gaussian_bandwidths(median_sq_distance(fs, ft), num_kernels=k)
            return mmd2_unbiased(fs, ft, sigma2)
        return [aligned_phase(align, "mmd", ctx)]

    def weights(self, ctx):
        return {"mmd": self.params.weight}


@dataclass(frozen=True)
class CoralConfig:
    weight: float = spec(1.0, "weight of the CORAL term against the task loss", 0.0, 1000.0)


class Coral(Strategy):
    name = "coral"
    summary = "Deep CORAL: match the covariances of source and target features (Sun & Saenko, ECCV-W 2016)."
    Config = CoralConfig

    def phases(self, ctx):
        return [aligned_phase(coral_loss, "coral", ctx)]

    def weights(self, ctx):
        return {"coral": self.params.weight}
