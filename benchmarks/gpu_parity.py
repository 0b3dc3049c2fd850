"""GPU check (run on a CUDA machine): scoring and cached greedy pruning on CUDA equal the CPU results.

    python benchmarks/gpu_parity.py

Tiny random Llama, letter format on ARC-Easy items; exits non-zero on a mismatch. CI has no GPU,
so this lives beside the GPU benchmark instead of in the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import build_tiny_model  # noqa: E402
from layercollapse.data.tasks import load_task, split_calibration  # noqa: E402
from layercollapse.model.embedded import SMOLLM2, gguf_path  # noqa: E402
from layercollapse.model.loading import prepare_tokenizer_  # noqa: E402
from layercollapse.pruning.engine import prune  # noqa: E402
from layercollapse.readout.scoring import score  # noqa: E402


def main() -> int:
    from transformers import AutoTokenizer

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    path = gguf_path(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    prepare_tokenizer_(tokenizer)
    calibration, evaluation = split_calibration(load_task("arc_easy").items, 8, 16, seed=0)
    cpu = build_tiny_model("llama", n_layers=4, seed=5)
    gpu = build_tiny_model("llama", n_layers=4, seed=5).to("cuda")
    np.testing.assert_allclose(score(gpu, tokenizer, evaluation, "letter", task="arc_easy", progress=False),
                               score(cpu, tokenizer, evaluation, "letter", task="arc_easy", progress=False), atol=1e-3)
    traces = [prune(gpu, tokenizer, evaluation, calibration=calibration, n_remove=2, task="arc_easy", cache=cache,
                    progress=False) for cache in ("auto", False)]
    assert traces[0].removed == traces[1].removed
    np.testing.assert_allclose(traces[0].scores, traces[1].scores, atol=1e-4)
    print("CUDA scoring and cached pruning match the CPU / naive paths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
