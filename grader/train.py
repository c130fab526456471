"""`python -m grader train`: train your own GPT (the parts you wrote) and watch it learn.

    python -m grader train                              # Tiny Shakespeare, characters, --preset cpu (~1.5 min on 2 cores)
    python -m grader train --impl solutions             # the reference implementation instead of yours
    python -m grader train --preset gpu                 # nanoGPT's shakespeare-char on a GPU
    python -m grader train --data synthetic --preset tiny
    python -m grader train --resume --out runs/cpu      # continue exactly where it stopped
    torchrun --nproc_per_node=2 -m grader train ...     # distributed data parallel

The loop is nanoGPT's train.py, built from your parts: GPT (06), configure_optimizers
and lr_at (07), get_batch and train_step (08), estimate_loss (08) and generate (09).
It writes to --out: ckpt.pt (everything --resume needs), metrics.json, samples.txt, loss.png.
"""

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
import types
import typing
from contextlib import nullcontext
from pathlib import Path

from grader.training.checkpoint import FILENAME, CheckpointError
from grader.training.parts import IMPLS, exit_status, load_parts
from grader.training.presets import PRESETS, SETTING_NAMES, Settings, preset
from data.shakespeare import DataError
from data.tokenizers import TOKENIZERS

PROGRAM = "python -m grader train"
SAMPLE_SETTINGS = dict(temperature=0.8, top_k=40)  # for the samples printed while training


class TrainError(ValueError):
    """Something the learner must change, in one sentence; the command exits with 2."""


# --- the command line ---------------------------------------------------------------------------------------


def config_fields():
    from solutions.config import GPTConfig  # the contract's fields (config.py is given, the same in exercises/)

    return [f for f in dataclasses.fields(GPTConfig) if f.name != "vocab_size"]  # vocab_size comes from the data


def _parse_value(kind, optional):
    def parse(text):
        if optional and text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None

    return parse


def _field_type(field):
    """(base type, optional) of a dataclass field annotated like `int`, `float | None`, `bool`."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    base = args[0] if args else field.type
    optional = type(None) in typing.get_args(field.type)
    return base, optional


def _add_field_flag(group, field, help_text):
    names = [f"--{field.name.replace('_', '-')}"]
    if "_" in field.name:
        names.append(f"--{field.name}")  # nanoGPT's spelling works too
    base, optional = _field_type(field)
    if base is bool:
        group.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        group.add_argument(*names, dest=field.name, type=_parse_value(base, optional), default=argparse.SUPPRESS,
                           metavar=base.__name__.upper() + ("|none" if optional else ""), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    presets = "; ".join(f"{name}: {p['about']}" for name, p in PRESETS.items())
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Train your GPT (your exercises, swaps applied) and watch it learn.",
        epilog="Model and training flags override the preset's values. With --resume, everything not given "
               "comes from the checkpoint.",
    )
    parser.add_argument("--data", default=argparse.SUPPRESS,
                        help="shakespeare (default), synthetic (or synthetic:N tokens), or the path of a UTF-8 text file")
    parser.add_argument("--tokenizer", default=argparse.SUPPRESS, choices=TOKENIZERS,
                        help="char (default: one token per character) or gpt2 (tiktoken's GPT-2 BPE)")
    parser.add_argument("--preset", default=argparse.SUPPRESS, metavar="NAME", help=f"default cpu. {presets}")
    parser.add_argument("--impl", default=argparse.SUPPRESS, choices=IMPLS,
                        help="exercises (default: yours, swaps applied) or solutions (the reference)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="auto: bfloat16 autocast on CUDA GPUs that support it, else float32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (needs a C++ compiler on CPU)")
    parser.add_argument("--out", default=None, help="output directory (default runs/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    model = parser.add_argument_group("model (GPTConfig fields)")
    for field in config_fields():
        _add_field_flag(model, field, None)
    training = parser.add_argument_group("training")
    for field in dataclasses.fields(Settings):
        _add_field_flag(training, field, None)
    return parser


def parse_args(argv):
    args = build_parser().parse_args(argv)
    explicit = vars(args)
    model_flags = {f.name: explicit.pop(f.name) for f in config_fields() if f.name in explicit}
    setting_flags = {name: explicit.pop(name) for name in SETTING_NAMES if name in explicit}
    return types.SimpleNamespace(**explicit), model_flags, setting_flags


# --- devices, processes, signals ----------------------------------------------------------------------------


def pick_device(name: str, torch):
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but PyTorch sees no CUDA GPU: use --device cpu (or auto).")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainError("--device mps was asked for but this PyTorch has no MPS: use --device cpu (or auto).")
    if kind not in ("cpu", "cuda", "mps"):
        raise TrainError(f"Unknown --device {name!r}: use auto, cpu, cuda, cuda:N or mps.")
    return name


def pick_dtype(name: str, device: str, torch):
    """The autocast dtype, or None for plain float32."""
    cuda = device.startswith("cuda")
    if name == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if name == "bfloat16":
        if not cuda:
            raise TrainError(f"--dtype bfloat16 (autocast) is for CUDA GPUs; on {device} train in float32 (--dtype auto).")
        return torch.bfloat16
    return None


class Distributed:
    """torchrun's environment: RANK, LOCAL_RANK, WORLD_SIZE. world_size 1 is a plain single process."""

    def __init__(self, torch):
        self.torch = torch
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self.master = self.rank == 0

    def start(self, device):
        if not self.enabled:
            return device
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{self.local_rank}"
            self.torch.cuda.set_device(device)
            dist.init_process_group("nccl")
        elif device == "cpu":
            dist.init_process_group("gloo")
        else:
            raise TrainError(f"Several processes need --device cpu (gloo) or cuda (nccl), not {device}.")
        return device

    def wrap(self, model, device):
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # broadcast_buffers=False: a learner may cache rotary tables as (non-persistent) buffers; they need no sync
        return DistributedDataParallel(model, device_ids=[self.local_rank] if device.startswith("cuda") else None,
                                       broadcast_buffers=False)

    def gather(self, obj):
        """[obj of process 0, obj of process 1, ...] (every process calls it at the same step)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values, device):
        """The sums over all processes of a few floats (every process calls it at the same step)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        t = self.torch.tensor(values, dtype=self.torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def stop(self):
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step; a second Ctrl-C quits at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[signum] = signal.signal(signum, self.handle)
            except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
                pass
        return self

    def handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class Autocast:
    """Wraps a model so that its forward runs under torch.autocast (bf16 on CUDA); backward runs outside."""

    def __new__(cls, model, device_type, dtype, torch):
        class AutocastModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.config = getattr(model, "config", None)

            def forward(self, *args, **kwargs):
                with torch.autocast(device_type=device_type, dtype=dtype):
                    return self.model(*args, **kwargs)

        return AutocastModel()


# --- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, model_flags, setting_flags = parse_args(argv)
    return exit_status(Run(args, model_flags, setting_flags).start, getattr(args, "impl", None),
                       (TrainError, DataError, CheckpointError))


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


def append_sample(path, title, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"=== {title} ===\n{text}\n\n")


class Log:
    """What the learner sees: a header, a progress bar, evaluations with a sample. Only the first process prints."""

    def __init__(self, master):
        self.master = master
        self.bar = None

    def write(self, text):
        if not self.master:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def header(self, run, raw, device, autocast_dtype, tokens_per_step, start_step):
        c, s, corpus = run.config, run.settings.resolved(), run.corpus
        n = raw.num_params() if hasattr(raw, "num_params") else sum(p.numel() for p in raw.parameters())
        parts = f"{c.norm}, {c.pos_emb}, {c.mlp}" + (", qk-norm" if c.qk_norm else "") + \
                ("" if c.tie_embeddings else ", untied") + (f", softcap {c.logit_softcap:g}" if c.logit_softcap else "")
        dtype = str(autocast_dtype).replace("torch.", "") + " autocast" if autocast_dtype is not None else "float32"
        lines = [
            f"Training {'your GPT (exercises/, swaps applied)' if run.impl == 'exercises' else 'the reference GPT (solutions/)'}"
            f" with --preset {run.preset_name} on {corpus.description}",
            f"  data: {corpus.tokens:,} tokens ({corpus.tokenizer.kind}, vocabulary {corpus.tokenizer.vocab_size}), "
            f"{len(corpus.train):,} train / {len(corpus.val):,} validation",
            f"  model: {n:,} parameters, {c.n_layer} layers x {c.n_embd}, {c.n_head} heads, context {c.block_size} ({parts})",
            f"  training: {s.max_steps} steps x {tokens_per_step:,} tokens (batch {s.batch_size} x accum {s.grad_accum}"
            f" x {run.dist.world_size} process{'es' if run.dist.world_size > 1 else ''}), lr {s.lr:g} -> {s.min_lr:g}, "
            f"warmup {s.warmup_steps}, on {device} ({dtype}{', compiled' if run.args.compile else ''})",
            f"  writing to {run.out}/" + (f", resuming at step {start_step}" if start_step else ""),
        ]
        if corpus.entropy is not None:
            lines.append(f"  the best possible loss on this corpus is {corpus.entropy:.4f}")
        self.write("\n".join(lines))

    def progress(self, total, initial):
        if not self.master:
            return None
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
                        mininterval=0.5 if sys.stderr.isatty() else 5.0, smoothing=0.05)
        return self.bar

    def evaluation(self, entry, text, floor):
        extra = f" (best possible {floor:.4f})" if floor is not None else ""
        self.write(f"step {entry['step']}: train loss {entry['train_loss']:.4f}, val loss {entry['val_loss']:.4f}"
                   f"{extra}, {entry['elapsed']:.0f} s")
        if text:
            self.write(f"--- sample ---\n{text}\n---")


if __name__ == "__main__":
    sys.exit(main())
