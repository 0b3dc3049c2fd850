"""How many tokens one forward pass should hold: the batching knob of scoring and pruning.

In float32, results do not depend on it (batched scoring equals one-item-at-a-time scoring to
~1e-5, ``tests/readout/test_scoring.py``); only speed does. In bf16 they do: the backbone's bf16 matmuls
round differently for other batch shapes, and SmolLM2-135M option log-probabilities move by up to
0.56 nats between budgets 128, 1,024 and 8,192 (mean 0.10; the float32 readout barely changes
that, but halves to quarters the change of mean Decision Margin), enough to change a greedy
pruning choice on 16 calibration items (``benchmarks/results/readout_precision.json``, README). On a GPU, big batches fill the device. On a
CPU, small ones run faster: the activations of a 1,024-token batch stay in cache, and
length-sorted small batches pad less (SmolLM2-135M, 2 cores, bf16: 1.35x (MMLU letter) and
1.54x (packed ARC-Easy cloze) more items/s at 1,024 than at 8,192 tokens,
``benchmarks/results/throughput.json``). ``scoring.score``, the layer-wise readout and the
pruning engine use it when no budget is given.
"""

from __future__ import annotations

import torch

GPU_TOKEN_BUDGET = 8192
CPU_TOKEN_BUDGET = 1024


def default_token_budget(device: torch.device | str) -> int:
    """Rows x padded length per batch that runs fastest on ``device`` (see the module docstring)."""
    return CPU_TOKEN_BUDGET if torch.device(device).type == "cpu" else GPU_TOKEN_BUDGET
