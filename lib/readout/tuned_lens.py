"""Tuned lens (Belrose et al. 2023): one learned affine translator per layer before the logit lens.

The residual state ``h`` after a layer is mapped to ``h + A h + b`` and then read
through the final norm and unembedding. ``A`` (d x d) and ``b`` start at zero, so an
untrained :class:`TunedLens` is exactly the logit lens. Each translator is trained on
calibration text to minimise KL(final-layer next-token distribution || lens
distribution at that layer), over every non-pad position, with the model frozen.
The lens plugs into :func:`layercollapse.readout.lens.layerwise_scores` via ``lens=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from layercollapse.data.tasks import Item
from layercollapse.model.architectures import backbone, hidden_to_logits
from layercollapse.model.layers import n_layers
from layercollapse.progress import progress_bar
from layercollapse.readout.batching import Batch, Request, collate, model_device
from layercollapse.readout.lens import LogitLens, capture_read_states, layerwise_scores
from layercollapse.readout.scoring import encode_text, run_backbone
from torch import nn

#: The readout key of the embedding output (before any layer), as in ``layerwise_scores``.
EMBEDDINGS = -1


class TunedLens(nn.Module):
    """Affine translators keyed by the original index of the layer whose output is read.

    Attributes:
        layers: original layer indices with a translator (-1: the embeddings).
        n_layers: number of decoder layers of the intact model; the last layer's output
            is the model's own output and is always read unchanged.
        translators: ``nn.ModuleDict`` of fp32 ``nn.Linear(d_model, d_model)``, keyed ``str(layer)``.
    """

    def __init__(self, d_model: int, layers: Sequence[int], n_layers: int) -> None:
        super().__init__()
        self.layers = tuple(sorted(int(layer) for layer in layers))
        self.n_layers = n_layers
        bad = [layer for layer in self.layers if not EMBEDDINGS <= layer < n_layers]
        if bad:
            raise IndexError(f"Tuned-lens layer {bad[0]} is out of range -1..{n_layers - 1}")
        self.translators = nn.ModuleDict({str(layer): nn.Linear(d_model, d_model) for layer in self.layers})
        for translator in self.translators.values():
            nn.init.zeros_(translator.weight)
            nn.init.zeros_(translator.bias)

    @classmethod
    def for_model(cls, model: nn.Module, layers: Sequence[int] | None = None) -> TunedLens:
        """An identity lens for ``model`` on its device; ``layers`` None means -1..n_layers-2."""
        total = n_layers(model)
        layers = range(EMBEDDINGS, total - 1) if layers is None else layers
        d_model = backbone(model).embed_tokens.weight.shape[-1]
        return cls(d_model, layers, total).to(model_device(model))

    def transform_hidden(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """[..., d_model] residual state after ``layer`` -> h + A h + b, same dtype as ``hidden``.

        The translator runs in fp32. The final layer without a translator is the identity;
        any other layer without one raises ``KeyError``.
        """
        key = str(int(layer))
        if key not in self.translators:
            if layer == self.n_layers - 1:
                return hidden
            raise KeyError(f"This tuned lens has no translator for layer {layer}; it has {list(self.layers)}")
        h = hidden.float()
        return (h + self.translators[key](h)).to(hidden.dtype)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` on every parameter of ``model``; restore the flags on exit."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def text_requests(tokenizer, texts: Sequence[str], max_tokens: int) -> list[Request]:
    """One request per text, truncated to its first ``max_tokens`` tokens (BOS included when the tokenizer adds one)."""
    return [Request(index, -1, tuple(encode_text(tokenizer, text)[:max_tokens]), 0) for index, text in enumerate(texts)]


def token_batch(requests: Sequence[Request], pad_id: int, device: torch.device) -> Batch:
    """Left-padded batch whose read positions are every non-pad token (P = total tokens)."""
    batch = collate(requests, pad_id, device)
    rows, positions = batch.attention_mask.nonzero(as_tuple=True)  # [P], [P]
    return dataclasses.replace(batch, read_rows=rows, read_positions=positions, read_owner=rows)


def epoch_order(n: int, n_draws: int, seed: int) -> np.ndarray:
    """``n_draws`` indices into ``range(n)``: concatenated seeded permutations (each epoch sees every index once)."""
    rng = np.random.default_rng(seed)
    n_epochs = -(-n_draws // n)
    return np.concatenate([rng.permutation(n) for _ in range(n_epochs)])[:n_draws]


def read_all_states(model: nn.Module, batch: Batch) -> list[torch.Tensor]:
    """n_layers + 1 residual states [P, d_model] at the batch's read positions (index 0: embeddings).

    Runs without gradients (not inference mode, so the states can enter an autograd graph).
    """
    states: list[torch.Tensor] = []
    with torch.no_grad(), capture_read_states(model, [batch], states):
        run_backbone(model, batch)
    assert len(states) == n_layers(model) + 1, "read_all_states needs the intact model, not a layer view"
    return states


def lens_kl(
    model: nn.Module, lens: nn.Module, state: torch.Tensor, layer: int, target_logprobs: torch.Tensor
) -> torch.Tensor:
    """KL(final || lens at ``layer``) in nats, averaged over positions: scalar float32.

    Args:
        state: [P, d_model] residual state after ``layer``.
        target_logprobs: float32 [P, vocab] log-probabilities of the model's own output.
    """
    lens_logprobs = torch.log_softmax(hidden_to_logits(model, lens.transform_hidden(state, layer)), dim=-1)
    return nn.functional.kl_div(lens_logprobs, target_logprobs, log_target=True, reduction="batchmean")


def kl_to_final(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    lens: nn.Module,
    layers: Sequence[int] | None = None,
    *,
    batch_size: int = 8,
    max_tokens: int = 256,
) -> np.ndarray:
    """Mean KL(final-layer distribution || lens distribution) at readouts of the intact model.

    Args:
        layers: original indices of the layers whose output is read (-1: embeddings); None: -1..n_layers-1.
    Returns:
        float64 [n_readouts], nats per token, in the order of ``layers`` (None: index 0 = embeddings,
        index l + 1 = after layer l).
    """
    readouts = list(range(EMBEDDINGS, n_layers(model))) if layers is None else [int(layer) for layer in layers]
    sums, n_tokens = np.zeros(len(readouts)), 0
    requests = text_requests(tokenizer, texts, max_tokens)
    with frozen(model), torch.no_grad():
        for start in range(0, len(requests), batch_size):
            batch = token_batch(requests[start:start + batch_size], tokenizer.pad_token_id, model_device(model))
            states = read_all_states(model, batch)
            target = torch.log_softmax(hidden_to_logits(model, states[-1]), dim=-1)  # [P, vocab]
            n_read = len(batch.read_rows)
            for index, layer in enumerate(readouts):
                sums[index] += lens_kl(model, lens, states[layer + 1], layer, target).item() * n_read
            n_tokens += n_read
    return sums / n_tokens


def train_tuned_lens(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    steps: int = 250,
    lr: float = 1e-3,
    batch_size: int = 8,
    max_tokens: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> TunedLens:
    """Train a tuned lens on calibration text, the model frozen.

    Adam with a linear decay to zero; each step takes ``batch_size`` texts in a
    seeded order. The translators are independent, so each layer's loss is
    back-propagated on its own (memory holds one [P, vocab] readout at a time).

    Args:
        texts: calibration text, disjoint from evaluation items.
        layers: original indices of the layers to give a translator (-1: embeddings);
            None: -1..n_layers-2 (the last layer's output is the target itself).
        steps: optimiser steps; lr: Adam learning rate.
        max_tokens: each text is truncated to this many tokens.
    Returns:
        A :class:`TunedLens` in fp32 on the model's device, in eval mode.
    """
    if not texts:
        raise ValueError("train_tuned_lens needs at least one calibration text")
    lens = TunedLens.for_model(model, layers)
    requests = text_requests(tokenizer, texts, max_tokens)
    optimizer = torch.optim.Adam(lens.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    order = epoch_order(len(requests), steps * batch_size, seed)
    device = model_device(model)
    with frozen(model):
        for step in progress_bar(range(steps), "tuned lens", enabled=progress):
            chosen = [requests[i] for i in order[step * batch_size:(step + 1) * batch_size]]
            batch = token_batch(chosen, tokenizer.pad_token_id, device)
            states = read_all_states(model, batch)
            with torch.no_grad():
                target = torch.log_softmax(hidden_to_logits(model, states[-1]), dim=-1)  # [P, vocab]
            optimizer.zero_grad(set_to_none=True)
            for layer in lens.layers:
                lens_kl(model, lens, states[layer + 1], layer, target).backward()
            optimizer.step()
            schedule.step()
    return lens.eval()


def tuned_readout(model: nn.Module, tokenizer, items: Sequence[Item], texts: Sequence[str], format: str,
                  task: str | None, *, steps: int, max_tokens: int, seed: int, train_share: float = 0.75,
                  batch_size: int = 4, shots: Sequence[Item] = (), progress: bool = False
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Train a tuned lens on plain text, read ``items`` through it, and compare both lenses' KL to the final layer.

    Args:
        texts: plain-text passages: the first ``train_share`` train the translators, the rest (or the first
            passage, when none is left) measure KL.
        steps, max_tokens, seed, batch_size: as in :func:`train_tuned_lens`.
        shots: solved examples prepended to the items' letter prompts (``scoring.score``).
    Returns:
        (one row per readout row: layer (-1 = embeddings), kl_logit, kl_tuned in nats;
         scores float32 [n_layers + 1, n_items, n_options] read through the tuned lens).
    """
    n_train = max(1, int(train_share * len(texts)))
    lens = train_tuned_lens(model, tokenizer, texts[:n_train], steps=steps, max_tokens=max_tokens,
                            batch_size=batch_size, seed=seed, progress=progress)
    scores = layerwise_scores(model, tokenizer, items, format, lens=lens, task=task, shots=shots,
                              progress=progress and "tuned readout")
    held_out = texts[n_train:] or texts[:1]
    kl = {name: kl_to_final(model, tokenizer, held_out, which, max_tokens=max_tokens, batch_size=batch_size)
          for name, which in (("logit", LogitLens()), ("tuned", lens))}
    table = pd.DataFrame({"layer": np.arange(-1, len(kl["logit"]) - 1), "kl_logit": kl["logit"],
                          "kl_tuned": kl["tuned"]})
    return table, scores
