"""08 train: batches, gradient clipping, one optimisation step, and evaluation.

A language model learns to predict each next token. A batch is batch_size
random windows of block_size + 1 consecutive tokens from the data:

    x = window[:-1],  y = window[1:]      y[t] is the token after x[t]

Gradient accumulation: when a batch is too big for memory, split it into
micro-batches, run backward on each, and let the gradients add up in p.grad.
Each micro-batch's loss is a mean, so divide it by the number of micro-batches
first; then p.grad equals the gradient of the whole batch.

Gradient clipping: if the global norm  sqrt(sum over all p of |p.grad|²)
exceeds max_norm, scale every gradient by max_norm / (norm + 1e-6).

Off limits here: torch.nn.utils.clip_grad_norm_.
"""

import numpy as np
import torch


def get_batch(data, batch_size, block_size, generator=None, device="cpu"):
    """data: 1-D ints (tensor or numpy). Returns x, y: (batch_size, block_size) int64 on device."""
    # TODO: starts uniform in 0 .. len(data) - block_size - 1 (torch.randint with the generator)
    #       x = data[s : s + block_size], y = data[s + 1 : s + 1 + block_size], stacked, int64, on device
    raise NotImplementedError("08 train: get_batch — starts uniform in 0 .. len(data) - block_size - 1 (torch.randint with the generator)")


def clip_grad_norm(parameters, max_norm):
    """Scale the gradients so their global L2 norm is at most max_norm. Returns the norm before clipping.

    parameters: an iterable of Parameters, or a single Tensor, as for torch.nn.utils.clip_grad_norm_.
    Returns a 0-d Tensor (no .item()).
    """
    # TODO: total = sqrt(sum of squared gradient entries over all parameters with a grad)
    #       if total > max_norm, multiply every grad by max_norm / (total + 1e-6); return total
    raise NotImplementedError("08 train: clip_grad_norm — total = sqrt(sum of squared gradient entries over all parameters with a grad)")


def train_step(model, optimizer, micro_batches, grad_clip=1.0, lr=None):
    """One optimiser step over a list of (x, y) micro-batches. Returns their mean loss (a float)."""
    # TODO: model.train(); zero the grads; for each (x, y): loss = model(x, y)[1], backward of loss / len
    #       clip_grad_norm if grad_clip; set every group's lr if lr is given; optimizer.step()
    raise NotImplementedError("08 train: train_step — model.train(); zero the grads; for each (x, y): loss = model(x, y)[1], backward of loss / len")


def estimate_loss(model, data, batch_size, block_size, iters, generator=None):
    """Mean loss over iters random batches, in eval mode without gradients; restores the model's mode."""
    # TODO: remember model.training; eval(); under no_grad average the loss of iters get_batch batches
    #       (on the model's device); put the model back in the mode it was in
    raise NotImplementedError("08 train: estimate_loss — remember model.training; eval(); under no_grad average the loss of iters get_batch batches")
