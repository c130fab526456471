"""Mistakes learners make in 08 train."""

from . import Mutant

LR = ("    if lr is not None:\n        for group in optimizer.param_groups:\n            group[\"lr\"] = lr\n")
CLIP = "    if grad_clip:\n        clip_grad_norm(model.parameters(), grad_clip)\n"

MUTANTS = [
    Mutant(
        "08-last-start-never-drawn", "train",
        "get_batch draws starts from torch.randint(len(data) - block_size - 1), so the last window never comes.",
        (("torch.randint(len(data) - block_size, ", "torch.randint(len(data) - block_size - 1, "),),
        ("last valid start",),
    ),
    Mutant(
        "08-y-not-shifted", "train",
        "get_batch returns the same window for x and y.",
        (("x, y = windows[:, :-1], windows[:, 1:]", "x, y = windows[:, :-1], windows[:, :-1]"),),
        ("not shifted",),
    ),
    Mutant(
        "08-batch-ignores-generator", "train",
        "get_batch draws from torch's global generator, ignoring the one it is given.",
        (("(batch_size,), generator=generator)", "(batch_size,))"),),
        ("generator",),
    ),
    Mutant(
        "08-batch-ignores-device", "train",
        "get_batch returns CPU tensors whatever device is asked for.",
        (("return x.to(device), y.to(device)", "return x, y"),),
        ("device",),
    ),
    Mutant(
        "08-batch-int32", "train",
        "get_batch keeps the tokens as int32.",
        (("dtype=np.int64", "dtype=np.int32"),),
        ("int64",),
    ),
    Mutant(
        "08-norm-after-clipping", "train",
        "clip_grad_norm returns the norm of the clipped gradients.",
        (("        g.mul_(scale.to(g.dtype))\n    return total", "        g.mul_(scale.to(g.dtype))\n    return total * scale"),),
        ("after clipping",),
    ),
    Mutant(
        "08-clip-scales-up", "train",
        "clip_grad_norm always rescales to max_norm, scaling small gradients up.",
        (("scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)", "scale = max_norm / (total + 1e-6)"),),
        ("scaled up",),
    ),
    Mutant(
        "08-clip-per-parameter", "train",
        "clip_grad_norm clips every gradient by its own norm.",
        (("    for g in grads:\n        g.mul_(scale.to(g.dtype))\n",
          "    for g in grads:\n        g.mul_(torch.clamp(max_norm / (g.norm() + 1e-6), max=1.0))\n"),),
        ("its own norm",),
    ),
    Mutant(
        "08-clip-iterates-generator-twice", "train",
        "clip_grad_norm loops over `parameters` a second time to scale, which a generator cannot give again.",
        (("    for g in grads:\n        g.mul_(scale.to(g.dtype))\n",
          "    for p in parameters:\n        if p.grad is not None:\n            p.grad.mul_(scale.to(p.grad.dtype))\n"),),
        ("generator",),
    ),
    Mutant(
        "08-no-loss-division", "train",
        "train_step backpropagates each micro-batch's loss without dividing by their number.",
        (("(loss / len(micro_batches)).backward()", "loss.backward()"),),
        ("not divided",),
    ),
    Mutant(
        "08-clip-inside-loop", "train",
        "train_step clips after every micro-batch's backward.",
        ((CLIP, ""),
         ("        total_loss += loss.detach()\n",
          "        total_loss += loss.detach()\n        if grad_clip:\n            clip_grad_norm(model.parameters(), grad_clip)\n")),
        ("inside the accumulation loop",),
    ),
    Mutant(
        "08-no-zero-grad", "train",
        "train_step never zeroes the gradients, so each step adds to the previous one's.",
        (("    optimizer.zero_grad(set_to_none=True)\n", ""),),
        ("not zeroed",),
    ),
    Mutant(
        "08-zero-grad-inside-loop", "train",
        "train_step zeroes the gradients before every micro-batch.",
        (("    optimizer.zero_grad(set_to_none=True)\n    total_loss = 0.0\n    for x, y in micro_batches:\n",
          "    total_loss = 0.0\n    for x, y in micro_batches:\n        optimizer.zero_grad(set_to_none=True)\n"),),
        ("only the last micro-batch",),
    ),
    Mutant(
        "08-lr-not-set", "train",
        "train_step ignores its lr argument.",
        ((LR, ""),),
        ("lr was not set",),
    ),
    Mutant(
        "08-lr-after-step", "train",
        "train_step sets the lr after optimizer.step(), so each step uses the previous lr.",
        ((LR + "    optimizer.step()\n", "    optimizer.step()\n" + LR),),
        ("not after it",),
    ),
    Mutant(
        "08-grad-clip-zero-clips", "train",
        "train_step tests `grad_clip is not None`, so grad_clip=0 zeroes every gradient.",
        (("    if grad_clip:\n", "    if grad_clip is not None:\n"),),
        ("grad_clip=0",),
    ),
    Mutant(
        "08-no-train-mode", "train",
        "train_step never calls model.train(), so after estimate_loss it trains in eval mode.",
        (("    model.train()\n    optimizer.zero_grad", "    optimizer.zero_grad"),),
        ("eval mode",),
    ),
    Mutant(
        "08-zero-grad-after-step", "train",
        "train_step zeroes the gradients after the step, so p.grad is gone.",
        (("    optimizer.step()\n    return", "    optimizer.step()\n    optimizer.zero_grad(set_to_none=True)\n    return"),),
        ("leave the gradients in p.grad",),
    ),
    Mutant(
        "08-returns-last-loss", "train",
        "train_step returns the loss of the last micro-batch.",
        (("return float(total_loss / len(micro_batches))", "return loss.item()"),),
        ("last micro-batch",),
    ),
    Mutant(
        "08-estimate-no-eval", "train",
        "estimate_loss measures in train mode, with dropout on.",
        (("    model.eval()\n    try:", "    try:"),),
        ("model.eval()",),
    ),
    Mutant(
        "08-estimate-with-grad", "train",
        "estimate_loss builds an autograd graph for every batch.",
        (("        with torch.no_grad():\n            for _ in range(iters):", "        if True:\n            for _ in range(iters):"),),
        ("no_grad",),
    ),
    Mutant(
        "08-estimate-always-train", "train",
        "estimate_loss ends with model.train(), so a model in eval mode comes back in train mode.",
        (("        model.train(was_training)", "        model.train()"),),
        ("restore",),
    ),
    Mutant(
        "08-estimate-sums", "train",
        "estimate_loss returns the sum of the batch losses.",
        (("return sum(losses) / len(losses)", "return sum(losses)"),),
        ("sum",),
    ),
    Mutant(
        "08-uses-torch-clip", "train",
        "clip_grad_norm takes the shortcut through torch.nn.utils.clip_grad_norm_.",
        (("    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))\n",
          "    return torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], max_norm)\n"
          "    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))\n"),),
        ("off limits",),
    ),
]
