"""Brief supervised fine-tuning of a pruned model (claim C7, §4.3.3).

:func:`materialize_pruned` builds the pruned network as a real, smaller model
(only the kept layers are copied), so training never touches the original.
:func:`finetune_pruned` then trains it on a multiple-choice training split
(disjoint from evaluation) with the scoring's own prompts: the loss is the
cross-entropy, over the full vocabulary, of the gold option letter at the
answer position (letter format) or of the gold option's continuation tokens
(cloze format). ``method="lora"`` trains rank-8 LoRA adapters on ``q_proj`` and
``v_proj`` via ``peft`` and merges them; ``method="full"`` trains every weight.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from layercollapse.data.tasks import Item
from layercollapse.model.layers import (
    clear_view_state,
    intact_layers,
    keep_layers,
    n_layers,
    validate_layer_indices,
)
from layercollapse.progress import progress_bar
from layercollapse.readout.batching import Batch, Request, collate, model_device
from layercollapse.readout.scoring import (
    build_requests,
    letter_token_ids,
    read_positions,
    readout_logprobs,
    run_backbone,
    score,
)
from layercollapse.readout.tuned_lens import epoch_order
from torch import nn

METHODS = ("lora", "full")
#: Default learning rates: LoRA adapters tolerate a larger step than full weights.
DEFAULT_LR = {"lora": 2e-4, "full": 1e-5}


def materialize_pruned(model: nn.Module, kept: Sequence[int]) -> nn.Module:
    """A new model holding copies of only the decoder layers ``kept`` (original indices).

    The copy's config has ``num_hidden_layers = len(kept)`` and the kept subset of
    ``layer_types``; attention ``layer_idx`` is renumbered 0..len(kept)-1; embeddings,
    final norm and unembedding are copied too. The original model is unchanged.
    The copy records the original indices in ``layercollapse_kept_layers``.
    """
    kept = validate_layer_indices(kept, n_layers(model), "kept layer")
    with keep_layers(model, kept):
        # The view holds only the kept layers; leave the stashed full layer list out of the copy.
        memo = {id(intact_layers(model)): None}
        pruned = copy.deepcopy(model, memo)
    clear_view_state(pruned)
    pruned.layercollapse_kept_layers = tuple(kept)
    return pruned


@dataclass(frozen=True)
class FinetuneResult:
    """A fine-tuned pruned model and its training trace.

    Attributes:
        model: the trained pruned model (LoRA merged into its weights), in eval mode.
        kept_layers: original indices of its layers.
        losses: float64 [steps], mean cross-entropy (nats per target token) of each step's batch.
    """

    model: nn.Module
    kept_layers: tuple[int, ...]
    losses: np.ndarray


def training_requests(tokenizer, items: Sequence[Item], format: str, task: str | None,
                      shots: Sequence[Item] = ()) -> list[Request]:
    """The scoring's requests for the gold answers: letter prompts (behind ``shots``), or each item's gold cloze option."""
    requests = build_requests(tokenizer, items, format, task, shots)
    if format == "cloze":
        requests = [request for request in requests if request.option == items[request.item].gold]
    return requests


def training_batch(
    requests: Sequence[Request], items: Sequence[Item], tokenizer, device: torch.device, letter: bool
) -> Batch:
    """A batch whose ``targets`` ([P] token ids) are the gold letters (letter) or gold continuation tokens (cloze)."""
    batch = collate(requests, tokenizer.pad_token_id, device)
    if not letter:
        return batch
    n_options = max(len(item.options) for item in items)
    letter_ids = letter_token_ids(tokenizer, n_options)
    gold = [letter_ids[items[request.item].gold] for request in requests]
    return dataclasses.replace(batch, targets=torch.tensor(gold, dtype=torch.long, device=device))


def answer_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy (nats) of the batch's targets at its read positions: scalar float32."""
    hidden = run_backbone(model, batch)  # [B, T, d_model], final-normed
    return -readout_logprobs(model, read_positions(hidden, batch), batch, None, normed=True).mean()


def add_lora_(model: nn.Module, rank: int, seed: int) -> nn.Module:
    """Wrap ``model`` in place with LoRA on q_proj and v_proj (``rank``, alpha 2·rank, no dropout).

    Returns the ``PeftModel``; ``model``'s own modules now hold the adapters.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def finetune_pruned(
    model: nn.Module,
    tokenizer,
    kept_layers: Sequence[int],
    train_items: Sequence[Item],
    format: str = "letter",
    task: str | None = None,
    *,
    steps: int = 100,
    lr: float | None = None,
    method: str = "lora",
    batch_size: int = 8,
    lora_rank: int = 8,
    seed: int = 0,
    shots: Sequence[Item] = (),
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune the pruned network ``kept_layers`` of ``model`` on multiple-choice training items.

    AdamW, constant learning rate; each step takes ``batch_size`` items in a seeded
    order (every item once per epoch). The original model is not modified. Training runs
    in the model's dtype (LoRA adapters in fp32); load in fp32 for full fine-tuning beyond
    a few hundred steps, where bf16 weight updates lose precision.

    Args:
        kept_layers: original indices of the layers the pruned model keeps.
        train_items: training split, disjoint from the items the model is evaluated on.
        format: "letter" (loss on the gold letter at "Answer:") or "cloze" (loss on the gold option text).
        lr: learning rate; None: :data:`DEFAULT_LR` of ``method``.
        method: "lora" (adapters on q_proj/v_proj, merged at the end) or "full" (every weight).
        shots: solved examples prepended to letter prompts (the prompts the network is evaluated with).
    Returns:
        :class:`FinetuneResult` with the trained pruned model (same class as ``model``, scorable
        with :func:`layercollapse.readout.scoring.score`) and the per-step training losses.
    Raises:
        ValueError: unknown method; RuntimeError: no gradient reaches the trainable weights.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown fine-tuning method '{method}'; use one of {METHODS}")
    if not train_items:
        raise ValueError("finetune_pruned needs at least one training item")
    lr = DEFAULT_LR[method] if lr is None else lr
    pruned = materialize_pruned(model, kept_layers)
    trained = add_lora_(pruned, lora_rank, seed) if method == "lora" else pruned
    parameters = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    requests = training_requests(tokenizer, train_items, format, task, shots)
    order = epoch_order(len(requests), steps * batch_size, seed)
    device = model_device(pruned)
    losses = np.zeros(steps)
    trained.train()
    for step in progress_bar(range(steps), f"fine-tune ({method})", enabled=progress):
        chosen = [requests[i] for i in order[step * batch_size:(step + 1) * batch_size]]
        batch = training_batch(chosen, train_items, tokenizer, device, letter=format == "letter")
        optimizer.zero_grad(set_to_none=True)
        loss = answer_loss(pruned, batch)  # LoRA layers sit inside ``pruned``'s modules
        loss.backward()
        if step == 0 and not any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters):
            raise RuntimeError("No gradient reached the trainable weights; are they quantized or detached?")
        optimizer.step()
        losses[step] = loss.item()
    result = trained.merge_and_unload() if method == "lora" else trained
    return FinetuneResult(result.eval(), tuple(pruned.layercollapse_kept_layers), losses)


def finetune_recovery(model: nn.Module, tokenizer, trace, steps: Sequence[int], train_items: Sequence[Item],
                      evaluation: Sequence[Item], format: str, task: str | None, *, train_steps: int, lr: float,
                      method: str, seed: int, shots: Sequence[Item] = ()) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Fine-tune the network after each of ``steps`` of a pruning trace and score it again (claim C7).

    Args:
        trace: a ``pruning.Trace`` whose evaluation items are ``evaluation`` (its scores are the "before").
        steps: trace steps to fine-tune after; train_items: disjoint from ``evaluation``.
        train_steps, lr, method, seed, shots: as in :func:`finetune_pruned` (``shots``: the trace's).
    Returns:
        (one row per step: step, n_removed, n_kept; arrays scores_before / scores_after float32
        [n_steps, n_items, n_options], gold int [n_items], losses float64 [n_steps, train_steps]).
    """
    rows, before, after, losses = [], [], [], []
    for step in steps:
        kept = trace.kept_layers(step)
        tuned = finetune_pruned(model, tokenizer, kept, train_items, format, task, steps=train_steps, lr=lr,
                                method=method, seed=seed, shots=shots)
        before.append(trace.scores[step])
        after.append(score(tuned.model, tokenizer, evaluation, format, task=task, shots=shots, progress=False))
        losses.append(tuned.losses)
        rows.append({"step": step, "n_removed": trace.n_layers - len(kept), "n_kept": len(kept)})
        del tuned
    return rows, {"scores_before": np.stack(before), "scores_after": np.stack(after), "gold": trace.gold,
                  "losses": np.stack(losses)}
