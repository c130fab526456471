"""The training loop: nanoGPT's train.py built from the learner's parts.

Every step: the lr from lr_at (07), micro-batches from get_batch (08), train_step (08).
Every --eval-interval steps: estimate_loss (08) on both splits and a sample from generate (09).
Every --checkpoint-interval steps, at the end and on Ctrl-C: an atomic checkpoint.
The set-up before the first step (model, optimizer, resume, threads) is grader/training/build.py.
"""

import dataclasses
import math
import sys
import time

from data.shakespeare import DataError
from grader.training.build import build
from grader.training.log import Log, append_sample, nan_message, printable
from grader.training.report import write_json, write_reports
from grader.training.runtime import StopRequest, device_rng_state, pick_dtype
from grader.training.stats import record as record_stats
from grader.training.train import PROGRAM

SAMPLE_SETTINGS = dict(temperature=0.8, top_k=40)  # for the samples printed while training


class Trainer:
    def __init__(self, run, device, ckpt):
        self.run, self.device, self.ckpt = run, device, ckpt
        self.torch, self.parts, self.dist = run.torch, run.parts, run.dist
        self.s = run.settings.resolved()
        self.autocast_dtype = pick_dtype(run.args.dtype, device, self.torch)

    # -- the loop --

    def train(self) -> int:
        self.router = None
        try:
            return self.loop()
        finally:
            if self.router is not None:
                self.router.__exit__(None, None, None)

    def loop(self) -> int:
        build(self)  # the model, optimizer, data and threads (grader/training/build.py)
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
                         run=dict(preset=run.preset_name, impl=run.impl, data=run.source, threads=self.threads,
                                  swapped=[ex.id for ex in run.swapped]),
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


def params_finite(model) -> bool:
    return all(bool(p.isfinite().all()) for p in model.parameters())
