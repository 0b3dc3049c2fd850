"""The whole plan in one process, in ``reproduce``'s order, in the paper profile's numerics (bf16 weights, float32
readout): steps share the loaded model, so what one step leaves on it (a cached float32 copy of the unembedding made
under inference mode) must not break a later one (the tuned lens trains through that unembedding). Each chapter test
runs in a kernel of its own and cannot see this."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from golden import GOLDEN_PROFILE, golden_loader
from layercollapse.storage.store import Store
from layercollapse.study.experiments import Experiments


@pytest.mark.slow
def test_every_plan_step_runs_in_one_process_with_bf16_weights_and_a_float32_readout(tmp_path):
    load = golden_loader()

    def load_bf16(name: str, dtype=None):
        model, tokenizer = load(name)
        return model.to(torch.bfloat16), tokenizer

    # one model, as in the test profile: it stays loaded from its first readout to its tuned lens
    main = GOLDEN_PROFILE.models[0]
    profile = dataclasses.replace(GOLDEN_PROFILE, name="golden-bf16", models=(main,), pruning_model=main.name,
                                  finetune_main=None, dtype="bf16", readout="float32")
    experiments = Experiments(profile, store=Store(tmp_path), compute=True, progress=False, load_model=load_bf16)
    names = [step.name for step in experiments.plan]
    assert names.index("tuned lens tiny-llama-letter") > names.index("readout tiny-llama-letter arc_easy")
    for step in experiments.plan:
        step.run()  # raises on the first step that fails
    readout, kl = experiments.tuned_readout()
    assert readout.scores.dtype.name == "float32" and len(kl)
