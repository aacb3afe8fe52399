"""esp-ppq's calibration feed: the run's one calibration set (shared/calibration.py: which images,
each net on what the FP32 chain hands it) as the list of [1, 3, H, W] tensors esp-ppq takes."""
from __future__ import annotations

import numpy as np
import torch


def as_batches(arr: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(arr[i:i + 1])) for i in range(len(arr))]
