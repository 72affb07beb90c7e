"""Natural (standard) training: CE on clean inputs. Trains the clean teacher."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Method, StepOutput


class Natural(Method):
    name = "natural"

    def compute(self, x, y, progress):
        with self.autocast():
            logits = self.student(x)
        loss = F.cross_entropy(logits.float(), y)
        return StepOutput(loss, {"loss_ce": loss.detach()}, logits)
