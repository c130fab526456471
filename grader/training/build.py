"""A training run's set-up: the model, the optimizer, the batches, the state resumed from a checkpoint,
exercise 14's attention routed in, and the thread count (grader/threads.py, timed on probe()).

    build(trainer)    sets trainer.raw, .optimizer, .batch_rng, .step, .metrics, .eval_model, .sample_model,
                      .model, .tokens_per_step, .threads (the loop is grader/training/loop.py)
"""

from grader.training.runtime import Autocast, rng_kept, set_device_rng_state


def build(trainer):
    """The model, optimizer, batch generator, step and metrics (from the checkpoint when resuming)."""
    torch, parts, s, dist, run = trainer.torch, trainer.parts, trainer.s, trainer.dist, trainer.run
    torch.manual_seed(s.seed)
    trainer.raw = parts.GPT(run.config).to(trainer.device)  # the same initial weights in every process
    if dist.enabled:
        torch.manual_seed(s.seed + dist.rank)  # but each its own dropout masks
    if run.muon is not None:  # exercise 12: Muon for the blocks' matrices, AdamW (at --lr) for the rest
        trainer.optimizer = run.muon.configure_muon(trainer.raw, muon_lr=s.muon_lr, adam_lr=s.lr,
                                                    betas=(s.beta1, s.beta2), eps=s.eps)
    else:
        trainer.optimizer = parts.configure_optimizers(trainer.raw, s.lr, weight_decay=s.weight_decay,
                                                       betas=(s.beta1, s.beta2), eps=s.eps)
    trainer.batch_rng = torch.Generator().manual_seed(s.seed)
    trainer.step, trainer.metrics = 0, new_metrics()
    if trainer.ckpt is not None:
        try:
            if trainer.ckpt["layout"] == 1 or run.checkpoints.__name__.startswith("grader"):
                trainer.raw.load_state_dict(trainer.ckpt["model"], strict=True)
                trainer.optimizer.load_state_dict(trainer.ckpt["optimizer"])
            else:  # exercise 13's load_checkpoint: it checks the config, loads both, restores the RNG
                run.checkpoints.load_checkpoint(run.ckpt_path, trainer.raw, trainer.optimizer)
        except (RuntimeError, ValueError, KeyError) as error:
            from grader.training.runtime import TrainError

            raise TrainError(f"The checkpoint in {run.out} does not fit this model "
                             f"({str(error).splitlines()[0]}); train again into another --out.") from None
        trainer.step, trainer.metrics = trainer.ckpt["step"], trainer.ckpt["metrics"]
        restore_rng(trainer.ckpt["rng"], trainer.batch_rng, trainer.device, dist, torch)
    route_attention(trainer)
    model = trainer.raw
    if run.args.compile:
        model = torch.compile(model)
    if trainer.autocast_dtype is not None:
        model = Autocast(model, trainer.device.split(":")[0], trainer.autocast_dtype, torch)
    trainer.eval_model = model  # estimate_loss: same shapes as training (compiled if asked)
    trainer.sample_model = Autocast(trainer.raw, trainer.device.split(":")[0], trainer.autocast_dtype, torch) \
        if trainer.autocast_dtype is not None else trainer.raw
    trainer.model = dist.wrap(model, trainer.device)
    B, T = s.batch_size, run.config.block_size
    trainer.tokens_per_step = B * T * s.grad_accum * dist.world_size
    flops = 6 * sum(p.numel() for p in trainer.raw.parameters()) * trainer.tokens_per_step
    trainer.threads = run.threads(trainer.ckpt, flops, lambda: probe(trainer), trainer.device)


def route_attention(trainer):
    """Exercise 14's flash_attention in place of 03's causal_attention, when the run uses it (choices.py)."""
    if trainer.run.flash is None:
        return
    from grader.training.speedups import Router

    attention, flash, whose = trainer.run.flash
    router = Router(attention, flash)
    torch = trainer.torch
    idx = torch.zeros(1, min(2, trainer.run.config.block_size), dtype=torch.long, device=trainer.device)
    training = trainer.raw.training
    trainer.raw.eval()  # the probe leaves no trace: no dropout drawn, the RNG as it was
    with torch.no_grad(), rng_kept(torch, trainer.device):
        reached = router.probe(lambda: trainer.raw(idx))
    trainer.raw.train(training)
    if reached:
        router.route()
        trainer.router = router  # put back when the run ends (the module outlives the run in this process)
        if trainer.run.config.dropout:  # the routed call keeps attention dropout handwritten (Router)
            trainer.run.notes.append(f"attention: SDPA through {whose} flash_attention (exercise 14) when "
                                     f"evaluating and sampling; the training steps stay handwritten (dropout "
                                  f"{trainer.run.config.dropout:g}: flash_attention has no attention dropout)")
        else:
            trainer.run.notes.append(f"attention: SDPA through {whose} flash_attention (exercise 14)")
    else:
        trainer.run.notes.append("attention: handwritten (your CausalSelfAttention does not call its module's "
                                 "causal_attention, so 14's flash_attention cannot stand in)")


def probe(trainer):
    """One forward and backward pass on a training batch, leaving no trace: what the thread choice times."""
    torch, s = trainer.torch, trainer.s
    x, y = trainer.parts.get_batch(trainer.run.corpus.train, s.batch_size, trainer.run.config.block_size,
                                   generator=torch.Generator().manual_seed(0), device=trainer.device)
    with rng_kept(torch, trainer.device):
        _, loss = trainer.eval_model(x, y)  # not the DDP wrapper: no collective calls while timing
        loss.backward()
    trainer.raw.zero_grad(set_to_none=True)


def new_metrics() -> dict:
    return dict(eval=[], train=[], steps=0,
                timing=dict(wall=0.0, train_steps=0.0, data=0.0, eval=0.0, sample=0.0, checkpoint=0.0))


def restore_rng(state, batch_rng, device, dist, torch):
    """The batch sampler's generator (shared by all processes), and this process's own torch RNG, the CPU's and
    the device's (CUDA or MPS; an earlier layout saved it as "cuda")."""
    batch_rng.set_state(state["batches"])
    if len(state["torch"]) == dist.world_size:  # resumed with as many processes as saved: exactly
        torch.set_rng_state(state["torch"][dist.rank])
        accelerator = state.get("device", state.get("cuda"))
        if accelerator is not None and str(device).split(":")[0] in ("cuda", "mps"):
            set_device_rng_state(torch, device, accelerator[dist.rank])
    else:  # another number of processes: fresh dropout randomness, derived from the saved one
        torch.manual_seed(int(state["torch"][0][:8].sum()) + dist.rank)
