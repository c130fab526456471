"""08 train, alternative implementation A (einsum_style): advanced indexing for batches,
torch.cat of flattened gradients for the global norm, torch-like clamped clip coefficient."""

import numpy as np
import torch


def get_batch(data, batch_size, block_size, generator=None, device="cpu"):
    """data: 1-D ints (tensor or numpy). Returns x, y: (batch_size, block_size) int64 on device."""
    n_starts = len(data) - block_size
    if n_starts < 1:
        raise ValueError(f"data of length {len(data)} is too short for block_size {block_size}: need at least {block_size + 1} tokens.")
    starts = torch.randint(n_starts, (batch_size,), generator=generator)
    index = starts[:, None] + torch.arange(block_size + 1)[None, :]  # (B, block_size + 1)
    if isinstance(data, torch.Tensor):
        windows = data.cpu()[index].to(torch.int64)
    else:
        windows = torch.from_numpy(np.asarray(data)[index.numpy()].astype(np.int64))
    x = windows[:, :-1].contiguous().to(device)
    y = windows[:, 1:].contiguous().to(device)
    return x, y


def clip_grad_norm(parameters, max_norm):
    """Scale the gradients so their global L2 norm is at most max_norm. Returns the norm before clipping."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    flat = torch.cat([g.detach().reshape(-1).to(device) for g in grads])
    total = torch.linalg.vector_norm(flat, 2)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(coef.to(g.device, g.dtype))
    return total


def train_step(model, optimizer, micro_batches, grad_clip=1.0, lr=None):
    """One optimiser step over a list of (x, y) micro-batches. Returns their mean loss (a float)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    losses = []
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / n).backward()
        losses.append(loss.item())
    if grad_clip:
        clip_grad_norm(model.parameters(), grad_clip)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    return sum(losses) / n


def estimate_loss(model, data, batch_size, block_size, iters, generator=None):
    """Mean loss over iters random batches, in eval mode without gradients; restores the model's mode."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        total = 0.0
        with torch.no_grad():
            for _ in range(iters):
                x, y = get_batch(data, batch_size, block_size, generator=generator, device=device)
                _, loss = model(x, y)
                total += loss.item()
        return total / iters
    finally:
        model.train(was_training)
