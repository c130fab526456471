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
    ### BEGIN SOLUTION
    ### TODO: starts uniform in 0 .. len(data) - block_size - 1 (torch.randint with the generator)
    ### TODO: x = data[s : s + block_size], y = data[s + 1 : s + 1 + block_size], stacked, int64, on device
    if len(data) <= block_size:
        raise ValueError(f"The data has {len(data)} tokens; a window needs block_size + 1 = {block_size + 1}.")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
    windows = [torch.as_tensor(np.asarray(data[s : s + block_size + 1], dtype=np.int64)) for s in starts]
    windows = torch.stack(windows)
    x, y = windows[:, :-1], windows[:, 1:]
    return x.to(device), y.to(device)
    ### END SOLUTION


def clip_grad_norm(parameters, max_norm):
    """Scale the gradients so their global L2 norm is at most max_norm. Returns the norm before clipping.

    parameters: an iterable of Parameters, or a single Tensor, as for torch.nn.utils.clip_grad_norm_.
    Returns a 0-d Tensor (no .item()).
    """
    ### BEGIN SOLUTION
    ### TODO: total = sqrt(sum of squared gradient entries over all parameters with a grad)
    ### TODO: if total > max_norm, multiply every grad by max_norm / (total + 1e-6); return total
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total
    ### END SOLUTION


def train_step(model, optimizer, micro_batches, grad_clip=1.0, lr=None):
    """One optimiser step over a list of (x, y) micro-batches. Returns their mean loss (a float)."""
    ### BEGIN SOLUTION
    ### TODO: model.train(); zero the grads; for each (x, y): loss = model(x, y)[1], backward of loss / len
    ### TODO: clip_grad_norm if grad_clip; set every group's lr if lr is given; optimizer.step()
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total_loss = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        total_loss += loss.detach()
    if grad_clip:
        clip_grad_norm(model.parameters(), grad_clip)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    return float(total_loss / len(micro_batches))
    ### END SOLUTION


def estimate_loss(model, data, batch_size, block_size, iters, generator=None):
    """Mean loss over iters random batches, in eval mode without gradients; restores the model's mode."""
    ### BEGIN SOLUTION
    ### TODO: remember model.training; eval(); under no_grad average the loss of iters get_batch batches
    ### TODO: (on the model's device); put the model back in the mode it was in
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        losses = []
        with torch.no_grad():
            for _ in range(iters):
                x, y = get_batch(data, batch_size, block_size, generator=generator, device=device)
                losses.append(model(x, y)[1].item())
    finally:
        model.train(was_training)
    return sum(losses) / len(losses)
    ### END SOLUTION
