"""The training loop: nanoGPT's train.py built from the learner's parts.

Every step: the lr from lr_at (07), micro-batches from get_batch (08), train_step (08).
Every --eval-interval steps: estimate_loss (08) on both splits and a sample from generate (09).
Every --checkpoint-interval steps, at the end and on Ctrl-C: an atomic checkpoint.
"""

import dataclasses
import math
import sys
import time

from data.shakespeare import DataError
from grader.training.log import Log, append_sample, nan_message, printable
from grader.training.report import write_json, write_reports
from grader.training.runtime import (Autocast, StopRequest, device_rng_state, pick_dtype, rng_kept,
                                     set_device_rng_state)
from grader.training.stats import record as record_stats
from grader.training.train import PROGRAM

SAMPLE_SETTINGS = dict(temperature=0.8, top_k=40)  # for the samples printed while training


class Trainer:
    def __init__(self, run, device, ckpt):
        self.run, self.device, self.ckpt = run, device, ckpt
        self.torch, self.parts, self.dist = run.torch, run.parts, run.dist
        self.s = run.settings.resolved()
        self.autocast_dtype = pick_dtype(run.args.dtype, device, self.torch)

    # -- set-up --

    def build(self):
        """The model, optimizer, batch generator, step and metrics (from the checkpoint when resuming)."""
        torch, parts, s, dist, run = self.torch, self.parts, self.s, self.dist, self.run
        torch.manual_seed(s.seed)
        self.raw = parts.GPT(run.config).to(self.device)  # the same initial weights in every process
        if dist.enabled:
            torch.manual_seed(s.seed + dist.rank)  # but each its own dropout masks
        if run.muon is not None:  # exercise 12: Muon for the blocks' matrices, AdamW (at --lr) for the rest
            self.optimizer = run.muon.configure_muon(self.raw, muon_lr=s.muon_lr, adam_lr=s.lr,
                                                     betas=(s.beta1, s.beta2), eps=s.eps)
        else:
            self.optimizer = parts.configure_optimizers(self.raw, s.lr, weight_decay=s.weight_decay,
                                                        betas=(s.beta1, s.beta2), eps=s.eps)
        self.batch_rng = torch.Generator().manual_seed(s.seed)
        self.step, self.metrics = 0, new_metrics()
        if self.ckpt is not None:
            try:
                if self.ckpt["layout"] == 1 or run.checkpoints.__name__.startswith("grader"):
                    self.raw.load_state_dict(self.ckpt["model"], strict=True)
                    self.optimizer.load_state_dict(self.ckpt["optimizer"])
                else:  # exercise 13's load_checkpoint: it checks the config, loads both, restores the RNG
                    run.checkpoints.load_checkpoint(run.ckpt_path, self.raw, self.optimizer)
            except (RuntimeError, ValueError, KeyError) as error:
                from grader.training.runtime import TrainError

                raise TrainError(f"The checkpoint in {run.out} does not fit this model "
                                 f"({str(error).splitlines()[0]}); train again into another --out.") from None
            self.step, self.metrics = self.ckpt["step"], self.ckpt["metrics"]
            restore_rng(self.ckpt["rng"], self.batch_rng, self.device, dist, torch)
        self.route_attention()
        model = self.raw
        if run.args.compile:
            model = torch.compile(model)
        if self.autocast_dtype is not None:
            model = Autocast(model, self.device.split(":")[0], self.autocast_dtype, torch)
        self.eval_model = model  # estimate_loss: same shapes as training (compiled if asked)
        self.sample_model = Autocast(self.raw, self.device.split(":")[0], self.autocast_dtype, torch) \
            if self.autocast_dtype is not None else self.raw
        self.model = dist.wrap(model, self.device)
        B, T = s.batch_size, run.config.block_size
        self.tokens_per_step = B * T * s.grad_accum * dist.world_size
        self.threads = run.threads(self.ckpt, 6 * sum(p.numel() for p in self.raw.parameters()) * self.tokens_per_step,
                                   self.probe, self.device)

    def route_attention(self):
        """Exercise 14's flash_attention in place of 03's causal_attention, when the run uses it (run.py)."""
        if self.run.flash is None:
            return
        from grader.training.speedups import Router

        attention, flash, whose = self.run.flash
        router = Router(attention, flash)
        torch = self.torch
        idx = torch.zeros(1, min(2, self.run.config.block_size), dtype=torch.long, device=self.device)
        training = self.raw.training
        self.raw.eval()  # the probe leaves no trace: no dropout drawn, the RNG as it was
        with torch.no_grad(), rng_kept(torch, self.device):
            reached = router.probe(lambda: self.raw(idx))
        self.raw.train(training)
        if reached:
            router.route()
            self.router = router  # put back when the run ends (the module outlives the run in this process)
            if self.run.config.dropout:  # the routed call keeps attention dropout handwritten (Router)
                self.run.notes.append(f"attention: SDPA through {whose} flash_attention (exercise 14) when "
                                      f"evaluating and sampling; the training steps stay handwritten (dropout "
                                      f"{self.run.config.dropout:g}: flash_attention has no attention dropout)")
            else:
                self.run.notes.append(f"attention: SDPA through {whose} flash_attention (exercise 14)")
        else:
            self.run.notes.append("attention: handwritten (your CausalSelfAttention does not call its module's "
                                  "causal_attention, so 14's flash_attention cannot stand in)")

    def probe(self):
        """One forward and backward pass on a training batch, leaving no trace: what the thread choice times."""
        torch, s = self.torch, self.s
        x, y = self.parts.get_batch(self.run.corpus.train, s.batch_size, self.run.config.block_size,
                                    generator=torch.Generator().manual_seed(0), device=self.device)
        with rng_kept(torch, self.device):
            _, loss = self.eval_model(x, y)  # not the DDP wrapper: no collective calls while timing
            loss.backward()
        self.raw.zero_grad(set_to_none=True)

    # -- the loop --

    def train(self) -> int:
        self.router = None
        try:
            return self.loop()
        finally:
            if self.router is not None:
                self.router.__exit__(None, None, None)

    def loop(self) -> int:
        self.build()
        run, s, master = self.run, self.s, self.dist.master
        self.log = log = Log(master)
        start_step = self.step
        if master:
            run.out.mkdir(parents=True, exist_ok=True)
            if self.ckpt is None:
                (run.out / "samples.txt").write_text("", encoding="utf-8")
            log.header(run, self.raw, self.device, self.autocast_dtype, self.tokens_per_step, start_step, self.threads)
            if self.ckpt is None and run.corpus.tokenizer.kind == "bpe":
                write_json(run.corpus.tokenizer.state(), run.out / "tokenizer.json")
        self.last_saved = start_step if self.ckpt is not None else None
        timing = self.metrics["timing"]
        self.prior_wall, self.wall_start = timing["wall"], time.perf_counter()
        bar = log.progress(s.max_steps, start_step)
        recent, last_log, last_log_step = [], time.perf_counter(), self.step
        exit_code = 0
        with StopRequest() as stop:
            while True:
                evaluated = bool(self.metrics["eval"]) and self.metrics["eval"][-1]["step"] == self.step
                if master and (self.step % s.eval_interval == 0 or self.step == s.max_steps) and not evaluated:
                    self.evaluate()
                if self.step != start_step and (self.step % s.checkpoint_interval == 0 or self.step == s.max_steps):
                    if not params_finite(self.raw):
                        exit_code = self.stop_nan(float("nan"), None, bar)
                        break
                    self.save()
                if self.step >= s.max_steps:
                    break
                lr = self.parts.lr_at(self.step, s.warmup_steps, s.lr_decay_steps, s.lr, s.min_lr)
                if self.run.muon is not None:  # each group follows the schedule from its own initial_lr
                    for group in self.optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * lr / s.lr
                loss, stops = self.train_step(None if self.run.muon is not None else lr, stop)
                if not math.isfinite(loss):
                    exit_code = self.stop_nan(loss, lr, bar)
                    break
                self.metrics["train"].append([self.step, loss])
                recent.append(loss)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_log >= 1.0 or self.step == s.max_steps:
                        rate = (self.step - last_log_step) * self.tokens_per_step / (now - last_log)
                        bar.set_postfix_str(f"loss {sum(recent) / len(recent):.4f}, {rate:,.0f} tok/s, lr {lr:.2e}")
                        recent, last_log, last_log_step = [], now, self.step
                if stops:
                    self.save()
                    log.write(f"Stopped at step {self.step}; the checkpoint is in {run.ckpt_path}. "
                              f"Continue with: {PROGRAM} --resume --out {run.out}")
                    exit_code = 130
                    break
        if bar is not None:
            bar.close()
        self.finish(exit_code)
        return exit_code

    def train_step(self, lr, stop):
        """One optimizer step; (the mean loss over all processes, whether any process was asked to stop)."""
        s, dist, corpus = self.s, self.dist, self.run.corpus
        timing = self.metrics["timing"]
        t0 = time.perf_counter()
        B, T, accum, world = s.batch_size, self.run.config.block_size, s.grad_accum, dist.world_size
        # every process draws all the step's micro-batches (one shared generator) and keeps its own
        batches = [self.parts.get_batch(corpus.train, B, T, generator=self.batch_rng, device="cpu")
                   for _ in range(accum * world)]
        batches = [(x.to(self.device), y.to(self.device)) for x, y in batches[dist.rank * accum:(dist.rank + 1) * accum]]
        t1 = time.perf_counter()
        loss = self.parts.train_step(self.model, self.optimizer, batches, grad_clip=s.grad_clip, lr=lr)
        t2 = time.perf_counter()
        timing["data"] += t1 - t0
        timing["train_steps"] += t2 - t1
        loss_sum, stops = dist.sum([loss, 1.0 if stop.signum is not None else 0.0], self.device)
        return loss_sum / world, stops

    def elapsed(self) -> float:
        return self.prior_wall + (time.perf_counter() - self.wall_start)

    def evaluate(self):
        torch, s, corpus, timing = self.torch, self.s, self.run.corpus, self.metrics["timing"]
        B, T = s.batch_size, self.run.config.block_size
        t0 = time.perf_counter()
        losses = {}
        for split, data, offset in (("train", corpus.train, 1), ("val", corpus.val, 2)):
            rng = torch.Generator().manual_seed(s.seed + offset)  # the same batches at every evaluation
            losses[split] = self.parts.estimate_loss(self.eval_model, data, B, T, s.eval_iters, generator=rng)
        t1 = time.perf_counter()
        text = self.sample(s.sample_tokens, s.seed)
        timing["eval"] += t1 - t0
        timing["sample"] += time.perf_counter() - t1
        entry = dict(step=self.step, train_loss=losses["train"], val_loss=losses["val"], elapsed=self.elapsed(),
                     tokens=self.step * self.tokens_per_step)
        self.metrics["eval"].append(entry)
        self.log.evaluation(entry, text, corpus.entropy)
        append_sample(self.run.out / "samples.txt", f"step {self.step}, val loss {losses['val']:.4f}", text)
        if getattr(self.run.args, "stats", False):  # --stats: per-layer activations, gradients, update sizes
            record_stats(self)

    def sample(self, n_tokens, seed) -> str:
        if n_tokens <= 0:
            return ""
        torch, tok = self.torch, self.run.corpus.tokenizer
        try:
            prompt = tok.encode("\n")
        except DataError:
            prompt = []
        if len(prompt) != 1:
            prompt = [int(self.run.corpus.train[0])]
        idx = torch.tensor([prompt], dtype=torch.long, device=self.device)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        out = self.parts.generate(self.sample_model, idx, n_tokens, generator=rng, **SAMPLE_SETTINGS)
        return printable(tok.decode(out[0, len(prompt):].tolist()))

    def save(self):
        """Every process calls it (they gather their RNG states); the first one writes."""
        from grader.training import checkpoint

        torch, dist, run, timing = self.torch, self.dist, self.run, self.metrics["timing"]
        t0 = time.perf_counter()
        timing["wall"] = self.elapsed()
        accelerator = device_rng_state(torch, self.device)  # CUDA's or MPS's, where dropout draws
        rng_per_rank = dict(torch=dist.gather(torch.get_rng_state()),
                            device=dist.gather(accelerator) if accelerator is not None else None)
        if dist.master:  # exercise 13's save_checkpoint (the learner's once 13 passes), the rest of the run in extra
            extra = dict(format=checkpoint.FORMAT, settings=dataclasses.asdict(run.settings),
                         tokenizer=run.corpus.tokenizer.state(), metrics=self.metrics,
                         run=dict(preset=run.preset_name, impl=run.impl, data=run.source, threads=self.threads),
                         batches=self.batch_rng.get_state(), rng_per_rank=rng_per_rank)
            run.checkpoints.save_checkpoint(run.ckpt_path, self.raw, self.optimizer, self.step, run.config, extra)
        timing["checkpoint"] += time.perf_counter() - t0
        self.last_saved = self.step

    def stop_nan(self, loss, lr, bar) -> int:
        if bar is not None:
            bar.close()
        if self.dist.master:
            kept = self.last_saved if self.last_saved is not None and self.run.ckpt_path.exists() else None
            print(nan_message(self.step, loss, lr, kept, self.run.ckpt_path), file=sys.stderr)
        return 1

    def finish(self, exit_code):
        run, s, timing = self.run, self.s, self.metrics["timing"]
        timing["wall"] = self.elapsed()
        self.metrics["steps"] = self.step
        if not self.dist.master:
            return
        if exit_code == 0 and s.final_sample_tokens:
            text = self.sample(s.final_sample_tokens, s.seed + 3)
            append_sample(run.out / "samples.txt", f"final sample after {self.step} steps", text)
            self.log.write(f"\n--- final sample ({s.final_sample_tokens} tokens) ---\n{text}\n---")
        write_reports(run, self.raw, self.metrics, self.tokens_per_step, self.device, self.autocast_dtype, self.step,
                      self.last_saved, self.threads)
        if exit_code == 0:
            self.log.write(f"Done: {self.step} steps. Wrote {run.ckpt_path}, {run.out / 'loss.png'}, "
                           f"{run.out / 'samples.txt'}, {run.out / 'metrics.json'}.\n"
                           f"Sample more with: python -m grader sample --out {run.out} --prompt \"ROMEO:\"")


def new_metrics() -> dict:
    return dict(eval=[], train=[], steps=0,
                timing=dict(wall=0.0, train_steps=0.0, data=0.0, eval=0.0, sample=0.0, checkpoint=0.0))


def params_finite(model) -> bool:
    return all(bool(p.isfinite().all()) for p in model.parameters())


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
