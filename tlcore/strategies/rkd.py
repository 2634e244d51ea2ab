"""Relational knowledge distillation (Park et al., CVPR 2019): a source-trained teacher, and a
target student that keeps the teacher's pairwise distances and triplet angles on target inputs."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import spec
from ..data.shifts import derive_seed
from ..losses import rkd_angle_loss, rkd_distance_loss
from .base import Phase, Strategy, cross_entropy_phase, forward_streams, task_loss


@dataclass(frozen=True)
class RKDConfig:
    teacher_share: float = spec(0.5, "fraction of the step budget spent training the teacher on the source",
                                0.05, 0.95)
    distance_weight: float = spec(25.0, "weight of the distance-wise relational loss (the paper uses 25)", 0.0, 1000.0)
    angle_weight: float = spec(50.0, "weight of the angle-wise relational loss (the paper uses 50)", 0.0, 1000.0)
    angle_rows: int = spec(32, "target rows of each batch whose triplet angles are compared (the angle loss costs "
                                "O(n³) in the rows; the distance loss uses the whole batch)", 3, 4096)
    student_init: str = spec("fresh", "the student starts from a fresh random initialisation (distillation proper) "
                                      "or from the teacher's weights", choices=("fresh", "teacher"))


def reinitialise(model: nn.Module, seed: int) -> None:
    """Give every layer of ``model`` fresh seeded parameters (batch-norm statistics too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()


class RKD(Strategy):
    name = "rkd"
    summary = ("Relational knowledge distillation: a teacher trained on the source, then a target student that "
               "keeps the teacher's distances and angles between target examples, plus the cross-entropy on the "
               "labelled target examples (Park et al., CVPR 2019).")
    Config = RKDConfig
    streams = frozenset({"source", "target", "target_labelled"})
    needs_target_labels = True

    def __init__(self, params):
        super().__init__(params)
        self.teacher: nn.Module | None = None

    def phases(self, ctx):
        p: RKDConfig = self.params
        streams = ("target_labelled", "target")

        def start_student(c):
            self.teacher = copy.deepcopy(c.model).eval()
            for parameter in self.teacher.parameters():
                parameter.requires_grad_(False)
            if p.student_init == "fresh":
                reinitialise(c.model, derive_seed(c.config.seed, "rkd student"))

        def losses(batch, c):
            out = forward_streams(c.model, batch, streams)
            student = out["target"][0]
            with torch.no_grad():
                teacher = self.teacher.features(batch["target"].x)
            return {"task": task_loss(out, batch, ("target_labelled",)),
                    "rkd_distance": rkd_distance_loss(student, teacher),
                    "rkd_angle": rkd_angle_loss(student[:p.angle_rows], teacher[:p.angle_rows])}

        return [cross_entropy_phase("teacher", ("source",), share=p.teacher_share),
                Phase("distill", streams, losses, share=1.0 - p.teacher_share, on_start=start_student)]

    def weights(self, ctx):
        return {"rkd_distance": self.params.distance_weight, "rkd_angle": self.params.angle_weight}

    def artifacts(self):
        """The teacher's weights (Inspect draws its distance matrix beside the student's)."""
        if self.teacher is None:
            return {}
        return {"teacher_state": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}}
