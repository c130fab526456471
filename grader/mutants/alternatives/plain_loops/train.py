"""08 train, alternative implementation B (plain_loops): starts drawn as floor(u * n) from float64
uniforms, windows sliced one by one; the gradient norm summed parameter by parameter in float64;
model.zero_grad; the loss averaged from detached tensors."""

import functools

import numpy as np
import torch


def get_batch(data, batch_size, block_size, generator=None, device="cpu"):
    """data: 1-D ints (tensor or numpy). Returns x, y: (batch_size, block_size) int64 on device."""
    n = len(data) - block_size  # number of valid starts: 0 .. n - 1
    if n <= 0:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(data)}.")
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    starts = torch.clamp((u * n).floor().long(), max=n - 1).tolist()
    xs, ys = [], []
    for s in starts:
        window = data[s: s + block_size + 1]
        if not isinstance(window, torch.Tensor):
            window = torch.from_numpy(np.array(window, dtype=np.int64))
        window = window.to(torch.int64)
        xs.append(window[:-1])
        ys.append(window[1:])
    x = torch.stack(xs).to(device)
    y = torch.stack(ys).to(device)
    return x, y


def clip_grad_norm(parameters, max_norm):
    """Scale the gradients so their global L2 norm is at most max_norm. Returns the norm before clipping."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if len(grads) == 0:
        return torch.tensor(0.0)
    total_sq = torch.zeros((), dtype=torch.float64, device=grads[0].device)
    for g in grads:
        total_sq = total_sq + (g.detach().to(torch.float64) ** 2).sum().to(total_sq.device)
    dtype = functools.reduce(torch.promote_types, [g.dtype for g in grads])
    total = torch.sqrt(total_sq)
    if total.item() > max_norm:
        scale = max_norm / (total.item() + 1e-6)
        for g in grads:
            g.detach().mul_(scale)
    return total.to(dtype)


def train_step(model, optimizer, micro_batches, grad_clip=1.0, lr=None):
    """One optimiser step over a list of (x, y) micro-batches. Returns their mean loss (a float)."""
    model.train()
    model.zero_grad(set_to_none=True)
    optimizer.zero_grad(set_to_none=True)
    count = len(micro_batches)
    running = 0.0
    for x, y in micro_batches:
        logits, loss = model(x, y)
        scaled = loss * (1.0 / count)
        scaled.backward()
        running = running + loss.detach()
    if grad_clip is not None and grad_clip > 0:
        clip_grad_norm([p for p in model.parameters()], grad_clip)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    return float(running / count)


def estimate_loss(model, data, batch_size, block_size, iters, generator=None):
    """Mean loss over iters random batches, in eval mode without gradients; restores the model's mode."""
    mode = model.training
    device = next(iter(model.parameters())).device
    model.eval()
    losses = []
    with torch.set_grad_enabled(False):
        for i in range(iters):
            x, y = get_batch(data, batch_size, block_size, generator, device)
            losses.append(float(model(x, y)[1]))
    model.train(mode)
    return sum(losses) / len(losses)
