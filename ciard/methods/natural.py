"""Natural (standard) training: CE on clean inputs, optionally label-smoothed. Trains the clean teacher."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Method, StepOutput


class Natural(Method):
    name = "natural"
    uses_attack = False

    def compute(self, x, y, progress):
        with self.autocast():
            logits = self.student(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.method.label_smoothing)
        return StepOutput(loss, {"loss_ce": loss.detach()}, logits)
