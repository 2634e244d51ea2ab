"""Feature alignment by a statistic of the two feature distributions: MMD (DAN) and CORAL."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import UNLESS_DEFAULT, spec
from ..losses import coral_loss, gaussian_bandwidths, median_sq_distance, mmd2_unbiased
from .base import Phase, Strategy, aligned_phase, forward_streams, supervised_streams, task_loss


@dataclass(frozen=True)
class MMDConfig:
    weight: float = spec(1.0, "weight of the MMD² term against the task loss", 0.0, 100.0)
    num_kernels: int = spec(5, "Gaussian kernels, bandwidths spread by factors of 2 around the median distance", 1, 11)
    layers: str = spec("features", "what is aligned: the penultimate features, or features+outputs: also the "
                                   "classifier's softmax outputs, each with its own median bandwidth (DAN aligns "
                                   "the classifier's layers too; steadier over seeds on moons:rotate=40)",
                       choices=("features", "features+outputs"), result=UNLESS_DEFAULT)


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
        if self.params.layers == "features":
            return [aligned_phase(align, "mmd", ctx)]
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            (fs, ls), (ft, lt) = out["source"], out["target"]
            return {"task": task_loss(out, batch, supervised),
                    "mmd": align(fs.float(), ft.float()) + align(torch.softmax(ls.float(), 1),
                                                                 torch.softmax(lt.float(), 1))}
        return [Phase("adapt", streams, losses)]

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
