"""Golden outputs of every result kind: the references that keep the compute versions honest.

Every kind of stored result is computed through the path the profiles use (``Experiments.plan``,
as ``reproduce`` runs it) for a small profile on tiny random models, into a results store. The
committed references live in ``tests/golden/store`` (a results store like ``data/store``, keyed
the same way); ``tests/study/test_golden.py`` recomputes them and compares.

After bumping a compute version (``COMPUTE_VERSIONS`` in ``lib/storage/provenance.py``), regenerate:

    python tests/golden.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from layercollapse.storage.store import Store
from layercollapse.study.experiments import Experiments
from layercollapse.study.profiles import FinetuneSpec, ModelRun, NoiseSpec, Profile

GOLDEN_STORE = Path(__file__).resolve().parent / "golden" / "store"

#: The tiny random models of the golden profile: name -> (architecture, layers, seed); fp32.
GOLDEN_MODELS = {"tiny-llama-letter": ("llama", 5, 0), "tiny-qwen2-cloze": ("qwen2", 4, 1)}

#: Every experiment kind at the smallest sizes that still exercise its code (both prompt formats,
#: every schedule, several seeds, a tuned lens, noise with a draw, fine-tuning one fraction).
GOLDEN_PROFILE = Profile(
    name="golden", description="tiny random models: golden outputs of every result kind",
    models=(ModelRun("tiny-llama-letter", "letter"), ModelRun("tiny-qwen2-cloze", "cloze")),
    main_model="tiny-llama-letter", pruning_model="tiny-qwen2-cloze", pruning_task="arc_easy",
    tasks=("arc_easy",), eval_split="test", n_items=6, n_calibration=4, n_pruning_items=6, n_pruning_calibration=3,
    seeds=(0, 1), n_bootstrap=50,
    schedules=("iterative", "block_influence", "angular_distance", "reverse", "random"), n_random_orders=2,
    phase_k_max=2, n_phase_seeds=2, text_corpus="sciq_support", n_text_passages=2, tuned_lens_steps=2,
    tuned_lens_tokens=24, noise=NoiseSpec(sigma2=(0.0, 0.1), n_draws=1, layers_per_phase=1),
    finetune=FinetuneSpec(prune_fractions=(0.5,), steps=2, learning_rate=1e-3, method="full", n_train_items=4),
    finetune_main=FinetuneSpec(prune_fractions=(0.4,), steps=2, learning_rate=1e-3, method="lora", n_train_items=4),
    dtype="fp32")


def golden_loader():
    """``load_model`` for the golden profile: a freshly built tiny model and SmolLM2's tokenizer."""
    from conftest import build_tiny_model, load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()

    def load(name: str, dtype=None):
        arch, n_layers, seed = GOLDEN_MODELS[name]
        model = build_tiny_model(arch, n_layers, seed)
        model.layercollapse_name = name
        return model, tokenizer

    return load


def compute_golden(store: Store) -> Store:
    """Run every experiment of the golden profile into ``store`` (the order ``reproduce`` uses); return it."""
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
    experiments = Experiments(GOLDEN_PROFILE, store=store, compute=True, progress=False, load_model=golden_loader())
    for step in experiments.plan:
        step.run()
    return store


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    shutil.rmtree(GOLDEN_STORE, ignore_errors=True)
    compute_golden(Store(GOLDEN_STORE))
    n_files = sum(1 for path in GOLDEN_STORE.rglob("*") if path.is_file())
    print(f"golden references regenerated in {GOLDEN_STORE} ({n_files} files); commit them with the version bump")
