"""One training run: settings, data and model from the preset, flags and checkpoint; then the loop."""

import dataclasses
import math
import sys
import time
from pathlib import Path

from data.shakespeare import DataError
from grader.training.checkpoint import FILENAME
from grader.training.log import Log, append_sample
from grader.training.parts import load_parts
from grader.training.presets import Settings, preset
from grader.training.runtime import Autocast, Distributed, StopRequest, TrainError, pick_device, pick_dtype
from grader.training.train import PROGRAM

SAMPLE_SETTINGS = dict(temperature=0.8, top_k=40)  # for the samples printed while training


class Run:
    def __init__(self, args, model_flags, setting_flags):
        self.args, self.model_flags, self.setting_flags = args, model_flags, setting_flags

    def start(self) -> int:
        import torch

        self.torch = torch
        args = self.args
        self.dist = Distributed(torch)
        name = getattr(args, "preset", None)
        self.out = Path(args.out if args.out else f"runs/{name or 'cpu'}")
        self.ckpt_path = self.out / FILENAME
        ckpt = None
        if args.resume:
            from grader.training import checkpoint

            ckpt = checkpoint.load(self.ckpt_path)
            run = ckpt["run"]
            if name is not None and name != run["preset"]:
                raise TrainError(f"The checkpoint in {self.out} was trained with --preset {run['preset']}; "
                                 f"resume it without --preset, or train {name} into another --out.")
            name = run["preset"]
            self.impl = getattr(args, "impl", None) or run["impl"]
            self.source = getattr(args, "data", None) or run["data"]
        else:
            name = name or "cpu"
            self.impl = getattr(args, "impl", None) or "exercises"
            self.source = getattr(args, "data", None) or "shakespeare"
        try:
            self.preset = preset(name)
        except ValueError as error:
            raise TrainError(str(error)) from None
        self.preset_name = name
        self.parts = load_parts(self.impl)
        self.settings = self.resolve_settings(ckpt)
        self.corpus = self.prepare_data(ckpt)
        self.config = self.resolve_config(ckpt)
        self.check_fits()
        device = self.dist.start(pick_device(args.device, torch))
        try:
            return self.train(device, ckpt)
        finally:
            self.dist.stop()

    # -- settings, data, config --

    def resolve_settings(self, ckpt) -> Settings:
        values = dict(self.preset["train"])
        if ckpt is not None:
            values.update(ckpt["settings"])
        values.update(self.setting_flags)
        try:
            settings = Settings(**values)
            settings.check()
        except (TypeError, ValueError) as error:
            raise TrainError(str(error)) from None
        return settings

    def prepare_data(self, ckpt):
        from grader.training.corpus import prepare

        kind = getattr(self.args, "tokenizer", None)
        if ckpt is not None:
            stored = ckpt["tokenizer"].get("kind")
            if kind is not None and kind != stored:
                raise TrainError(f"The checkpoint in {self.out} uses the {stored} tokenizer, not {kind}: "
                                 f"resume without --tokenizer, or train into another --out.")
            return prepare(self.source, stored, ckpt["tokenizer"])
        return prepare(self.source, kind or "char")

    def resolve_config(self, ckpt):
        GPTConfig = self.parts.GPTConfig
        vocab_size = self.corpus.tokenizer.vocab_size
        if ckpt is not None:
            stored = dict(ckpt["config"])
            for key, value in self.model_flags.items():
                if stored.get(key) != value:
                    raise TrainError(f"The checkpoint in {self.out} has {key}={stored.get(key)!r}, not {value!r}: "
                                     f"a resumed run keeps its model; drop --{key.replace('_', '-')} or use another --out.")
            if stored.get("vocab_size") != vocab_size:
                raise TrainError(f"The checkpoint in {self.out} has a vocabulary of {stored.get('vocab_size')} tokens "
                                 f"but its tokenizer gives {vocab_size}: the checkpoint is inconsistent; train again.")
            fields = stored
        else:
            fields = {**self.preset["model"], **self.model_flags, "vocab_size": vocab_size}
        try:
            return GPTConfig(**fields)
        except (TypeError, ValueError) as error:
            raise TrainError(f"The model configuration does not work: {error}") from None

    def check_fits(self):
        T, corpus = self.config.block_size, self.corpus
        shortest = min(len(corpus.train), len(corpus.val))
        if shortest <= T:
            split = "validation" if len(corpus.val) <= len(corpus.train) else "training"
            raise TrainError(
                f"The context ({T} tokens) is longer than the data allows: the {split} split of {corpus.description} "
                f"has {shortest} tokens and a window needs {T + 1}; use --block-size {max(1, shortest - 1)} or less, "
                f"or more text."
            )

    # -- training --

    def train(self, device, ckpt) -> int:
        torch, parts, s, dist = self.torch, self.parts, self.settings.resolved(), self.dist
        config, corpus = self.config, self.corpus
        master = dist.master
        autocast_dtype = pick_dtype(self.args.dtype, device, torch)
        device_type = device.split(":")[0]

        torch.manual_seed(s.seed)
        raw = parts.GPT(config).to(device)  # the same initial weights in every process
        if dist.enabled:
            torch.manual_seed(s.seed + dist.rank)  # but each its own dropout masks
        optimizer = parts.configure_optimizers(raw, s.lr, weight_decay=s.weight_decay, betas=(s.beta1, s.beta2), eps=s.eps)
        batch_rng = torch.Generator().manual_seed(s.seed)
        step, metrics = 0, new_metrics()
        if ckpt is not None:
            try:
                raw.load_state_dict(ckpt["model"], strict=True)
                optimizer.load_state_dict(ckpt["optimizer"])
            except (RuntimeError, ValueError, KeyError) as error:
                raise TrainError(f"The checkpoint in {self.out} does not fit this model ({str(error).splitlines()[0]}); "
                                 f"train again into another --out.") from None
            step, metrics = ckpt["step"], ckpt["metrics"]
            restore_rng(ckpt["rng"], batch_rng, device, dist, torch)
        start_step = step

        model = raw
        if self.args.compile:
            model = torch.compile(model)
        if autocast_dtype is not None:
            model = Autocast(model, device_type, autocast_dtype, torch)
        eval_model = model  # estimate_loss: same shapes as training (compiled if asked)
        sample_model = Autocast(raw, device_type, autocast_dtype, torch) if autocast_dtype is not None else raw
        model = dist.wrap(model, device)

        B, T, accum, world = s.batch_size, config.block_size, s.grad_accum, dist.world_size
        tokens_per_step = B * T * accum * world
        log = Log(master)
        if master:
            self.out.mkdir(parents=True, exist_ok=True)
            if ckpt is None:
                (self.out / "samples.txt").write_text("", encoding="utf-8")
            log.header(self, raw, device, autocast_dtype, tokens_per_step, start_step)
        last_saved = start_step if ckpt is not None else None
        timing = metrics["timing"]

        def evaluate():
            t0 = time.perf_counter()
            losses = {}
            for split, data, offset in (("train", corpus.train, 1), ("val", corpus.val, 2)):
                rng = torch.Generator().manual_seed(s.seed + offset)  # the same batches at every evaluation
                losses[split] = parts.estimate_loss(eval_model, data, B, T, s.eval_iters, generator=rng)
            t1 = time.perf_counter()
            text = self.sample(sample_model, device, s.sample_tokens, s.seed)
            t2 = time.perf_counter()
            timing["eval"] += t1 - t0
            timing["sample"] += t2 - t1
            entry = dict(step=step, train_loss=losses["train"], val_loss=losses["val"],
                         elapsed=prior_wall + (time.perf_counter() - wall_start), tokens=step * tokens_per_step)
            metrics["eval"].append(entry)
            log.evaluation(entry, text, corpus.entropy)
            append_sample(self.out / "samples.txt", f"step {step}, val loss {losses['val']:.4f}", text)

        def save():  # every process calls it (they gather their RNG states); the first one writes
            t0 = time.perf_counter()
            timing["wall"] = prior_wall + (t0 - wall_start)
            rng = dict(torch=dist.gather(torch.get_rng_state()), batches=batch_rng.get_state(),
                       cuda=dist.gather(torch.cuda.get_rng_state(device)) if device.startswith("cuda") else None)
            if master:
                self.save(raw, optimizer, step, rng, metrics)
            timing["checkpoint"] += time.perf_counter() - t0

        prior_wall, wall_start = timing["wall"], time.perf_counter()
        bar = log.progress(s.max_steps, start_step)
        recent, last_log, last_log_step = [], time.perf_counter(), step
        exit_code = 0
        with StopRequest() as stop:
            while True:
                evaluated = bool(metrics["eval"]) and metrics["eval"][-1]["step"] == step
                due_eval = step % s.eval_interval == 0 or step == s.max_steps
                if master and due_eval and not evaluated:
                    evaluate()
                if step != start_step and (step % s.checkpoint_interval == 0 or step == s.max_steps):
                    if not params_finite(raw):
                        exit_code = self.stop_nan(step, float("nan"), None, last_saved, bar)
                        break
                    save()
                    last_saved = step
                if step >= s.max_steps:
                    break

                t0 = time.perf_counter()
                lr = parts.lr_at(step, s.warmup_steps, s.lr_decay_steps, s.lr, s.min_lr)
                # every process draws all the step's micro-batches (one shared generator) and keeps its own
                batches = [parts.get_batch(corpus.train, B, T, generator=batch_rng, device="cpu")
                           for _ in range(accum * world)]
                batches = [(x.to(device), y.to(device)) for x, y in batches[dist.rank * accum:(dist.rank + 1) * accum]]
                t1 = time.perf_counter()
                loss = parts.train_step(model, optimizer, batches, grad_clip=s.grad_clip, lr=lr)
                t2 = time.perf_counter()
                timing["data"] += t1 - t0
                timing["train_steps"] += t2 - t1
                loss_sum, stops = dist.sum([loss, 1.0 if stop.signum is not None else 0.0], device)
                loss = loss_sum / world
                if not math.isfinite(loss):
                    exit_code = self.stop_nan(step, loss, lr, last_saved, bar)
                    break
                metrics["train"].append([step, loss])
                recent.append(loss)
                step += 1
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_log >= 1.0 or step == s.max_steps:
                        rate = (step - last_log_step) * tokens_per_step / (now - last_log)
                        bar.set_postfix_str(f"loss {sum(recent) / len(recent):.4f}, {rate:,.0f} tok/s, lr {lr:.2e}")
                        recent, last_log, last_log_step = [], now, step
                if stops:
                    save()
                    last_saved = step
                    log.write(f"Stopped at step {step}; the checkpoint is in {self.ckpt_path}. "
                              f"Continue with: {PROGRAM} --resume --out {self.out}")
                    exit_code = 130
                    break
        if bar is not None:
            bar.close()
        timing["wall"] = prior_wall + (time.perf_counter() - wall_start)
        metrics["steps"] = step
        if master:
            if exit_code == 0 and s.final_sample_tokens:
                text = self.sample(sample_model, device, s.final_sample_tokens, s.seed + 3)
                append_sample(self.out / "samples.txt", f"final sample after {step} steps", text)
                log.write(f"\n--- final sample ({s.final_sample_tokens} tokens) ---\n{text}\n---")
            self.write_reports(raw, metrics, tokens_per_step, device, autocast_dtype, step, last_saved)
            if exit_code == 0:
                log.write(f"Done: {step} steps. Wrote {self.ckpt_path}, {self.out / 'loss.png'}, "
                          f"{self.out / 'samples.txt'}, {self.out / 'metrics.json'}.\n"
                          f"Sample more with: python -m grader sample --out {self.out} --prompt \"ROMEO:\"")
        return exit_code

    def sample(self, model, device, n_tokens, seed) -> str:
        if n_tokens <= 0:
            return ""
        torch, tok = self.torch, self.corpus.tokenizer
        try:
            prompt = tok.encode("\n")
        except DataError:
            prompt = []
        if len(prompt) != 1:
            prompt = [int(self.corpus.train[0])]
        idx = torch.tensor([prompt], dtype=torch.long, device=device)
        rng = torch.Generator(device=device).manual_seed(seed)
        out = self.parts.generate(model, idx, n_tokens, generator=rng, **SAMPLE_SETTINGS)
        return tok.decode(out[0, len(prompt):].tolist())

    def save(self, raw, optimizer, step, rng, metrics):
        from grader.training import checkpoint

        payload = dict(
            model=raw.state_dict(), optimizer=optimizer.state_dict(), config=dataclasses.asdict(self.config),
            settings=dataclasses.asdict(self.settings), step=step, tokenizer=self.corpus.tokenizer.state(),
            rng=rng, metrics=metrics, run=dict(preset=self.preset_name, impl=self.impl, data=self.source),
        )
        checkpoint.save(payload, self.ckpt_path)

    def stop_nan(self, step, loss, lr, last_saved, bar) -> int:
        if bar is not None:
            bar.close()
        what = "inf" if math.isinf(loss) else "nan"
        if lr is None:
            where = f"The parameters became {what} before step {step}"
        else:
            where = f"The loss became {what} at step {step}"
        if step == 0 and lr is not None:
            cause = ("before any update, so not the learning rate: look at the initialisation (06 init_weights: "
                     "std 0.02, residual projections 0.02/sqrt(2*n_layer)) and for a missing scale (1/sqrt(head_dim) "
                     "in 03 attention, eps inside the square root in 01 norms)")
        else:
            lr_text = f" ({lr:.2e} at that step)" if lr is not None else ""
            cause = (f"most likely the learning rate is too high{lr_text}: try a smaller --lr or a longer "
                     f"--warmup-steps; else look at the initialisation (std 0.02) and for a missing scale "
                     f"(1/sqrt(head_dim) in attention, eps in the norms)")
        if last_saved is not None and self.ckpt_path.exists():
            kept = f"the last good checkpoint (step {last_saved}) is kept in {self.ckpt_path}"
        else:
            kept = "no checkpoint had been written yet"
        if self.dist.master:
            print(f"{where}: {cause}; {kept}.", file=sys.stderr)
        return 1

    def write_reports(self, raw, metrics, tokens_per_step, device, autocast_dtype, step, last_saved):
        from grader.training.report import plot_losses, write_json

        timing = metrics["timing"]
        train_time = timing["train_steps"]
        steps_here = len(metrics["train"])
        summary = dict(
            preset=self.preset_name, impl=self.impl, data=self.corpus.description, tokenizer=self.corpus.tokenizer.kind,
            vocab_size=self.config.vocab_size, train_tokens=len(self.corpus.train), val_tokens=len(self.corpus.val),
            best_possible_loss=self.corpus.entropy,
            config=dataclasses.asdict(self.config), settings=dataclasses.asdict(self.settings),
            parameters=raw.num_params() if hasattr(raw, "num_params") else sum(p.numel() for p in raw.parameters()),
            device=device, dtype=str(autocast_dtype or "float32").replace("torch.", ""),
            world_size=self.dist.world_size, compile=self.args.compile,
            steps=step, tokens_per_step=tokens_per_step, checkpoint_step=last_saved,
            final=metrics["eval"][-1] if metrics["eval"] else None,
            tokens_per_second=(steps_here * tokens_per_step / timing["wall"]) if timing["wall"] else None,
            train_step_tokens_per_second=(steps_here * tokens_per_step / train_time) if train_time else None,
            overhead=((timing["wall"] - train_time) / train_time) if train_time else None,
            timing=timing, eval=metrics["eval"], train=metrics["train"],
        )
        write_json(summary, self.out / "metrics.json")
        plot_losses(metrics, self.out / "loss.png", title=f"{self.preset_name} ({self.impl}), {summary['parameters']:,} parameters",
                    floor=self.corpus.entropy)


def new_metrics() -> dict:
    return dict(eval=[], train=[], steps=0,
                timing=dict(wall=0.0, train_steps=0.0, data=0.0, eval=0.0, sample=0.0, checkpoint=0.0))


def params_finite(model) -> bool:
    return all(bool(p.isfinite().all()) for p in model.parameters())


def restore_rng(state, batch_rng, device, dist, torch):
    """The batch sampler's generator (shared by all processes), and this process's own torch/CUDA RNG."""
    batch_rng.set_state(state["batches"])
    if len(state["torch"]) == dist.world_size:  # resumed with as many processes as saved: exactly
        torch.set_rng_state(state["torch"][dist.rank])
        if state.get("cuda") is not None and device.startswith("cuda"):
            torch.cuda.set_rng_state(state["cuda"][dist.rank], device)
    else:  # another number of processes: fresh dropout randomness, derived from the saved one
        torch.manual_seed(int(state["torch"][0][:8].sum()) + dist.rank)
