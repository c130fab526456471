"""One training run, set up: the preset, the settings and the model's shape are checked before
torch is imported (so a bad flag is refused at once); then the checkpoint (with --resume), the
data (and its tokenizer), the learner's parts (every unfinished one named at once), the device and
the threads.
The loop itself is grader/training/loop.py."""

from pathlib import Path

from grader import threads
from grader.training import choices
from grader.training.checkpoint import FILENAME
from grader.training.parts import load_parts, require_parts, second_half
from grader.training.presets import Settings, preset
from grader.training.runtime import Distributed, TrainError, pick_device
from grader.training.train import PROGRAM

TRAIN_NEEDS = ("model", "optimizer", "train_step", "generate")  # what the training loop calls (grader/training/parts.py)


class Run:
    """What `python -m grader train` was asked to do, checked; start() runs it."""

    def __init__(self, args, model_flags, setting_flags):
        self.args, self.model_flags, self.setting_flags = args, model_flags, setting_flags
        name = getattr(args, "preset", None)
        self.out = Path(args.out if args.out else f"runs/{name or 'cpu'}")
        self.ckpt_path = self.out / FILENAME
        self.preset_name = name
        self.impl = getattr(args, "impl", None)
        self.source = getattr(args, "data", None)
        if not args.resume:  # a resumed run's preset, settings and shape come from its checkpoint
            self.preset_name = name or "cpu"
            self.impl = self.impl or "exercises"
            self.source = self.source or "shakespeare"
            self.preset = checked_preset(self.preset_name)
            self.settings = resolve_settings(self.preset, None, setting_flags)
            self.check_shape()
            self.refuse_to_overwrite()  # after the flags: a wrong one is named first

    def refuse_to_overwrite(self):
        """A new run never replaces one that --out holds, unless --overwrite says so."""
        if not self.ckpt_path.exists() or getattr(self.args, "overwrite", False):
            return
        about = ""
        try:
            import json

            metrics = json.loads((self.out / "metrics.json").read_text(encoding="utf-8"))
            about = f" (--preset {metrics['preset']}, {metrics['steps']} steps)"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        raise TrainError(f"{self.out} already holds a run{about}: continue it with `{PROGRAM} --resume --out "
                         f"{self.out}`, train into another --out, or pass --overwrite to replace it.")

    def check_shape(self):
        """The model flags make a valid GPTConfig (any vocabulary size: the data decides it)."""
        from solutions.config import GPTConfig  # given, the same in exercises/; imports no torch

        try:
            GPTConfig(**{**self.preset["model"], **self.model_flags, "vocab_size": 2})
        except (TypeError, ValueError) as error:
            raise TrainError(f"The model configuration does not work: {error}") from None

    def start(self) -> int:
        import torch

        from grader.training.loop import Trainer

        self.torch = torch
        self.dist = Distributed(torch)
        self.notes = []  # header lines: whose part of exercises 10-14 the run uses, and why
        ckpt = self.load_checkpoint() if self.args.resume else None
        self.corpus = self.prepare_data(ckpt)
        self.config = self.resolve_config(ckpt)
        self.check_fits()
        if self.impl == "exercises":
            require_parts(self.config, TRAIN_NEEDS, "train")  # every unfinished part at once, before any work
        self.parts = load_parts(self.impl)
        choices.note_swaps(self)  # whose parts of 12, 13 and 14 the run uses (grader/training/choices.py)
        choices.choose_optimizer(self, resumed=ckpt is not None)
        choices.choose_attention(self)
        choices.choose_checkpoints(self)
        device = self.dist.start(pick_device(self.args.device, torch))
        returned = False
        try:
            exit_code = Trainer(self, device, ckpt).train()  # every process returns at the same step
            returned = True
            return exit_code
        finally:
            self.dist.stop(together=returned)

    def load_checkpoint(self) -> dict:
        from grader.training import checkpoint

        ckpt = checkpoint.load(self.ckpt_path)
        run = ckpt["run"]
        if self.preset_name is not None and self.preset_name != run["preset"]:
            raise TrainError(f"The checkpoint in {self.out} was trained with --preset {run['preset']}; "
                             f"resume it without --preset, or train {self.preset_name} into another --out.")
        self.preset_name = run["preset"]
        self.impl = self.impl or run["impl"]
        self.source = self.source or run["data"]
        self.preset = checked_preset(self.preset_name)
        stored = ckpt["settings"].get("optimizer", "adamw")
        if self.setting_flags.get("optimizer", stored) != stored:
            raise TrainError(f"The checkpoint in {self.out} was trained with --optimizer {stored}; a resumed run "
                             f"keeps its optimizer: drop --optimizer, or train into another --out.")
        self.settings = resolve_settings(self.preset, ckpt, self.setting_flags)
        return ckpt

    def threads(self, ckpt, flops_per_step: float, step, device) -> int:
        """The intra-op thread count: --threads, else the checkpoint's (resume), else chosen from the work."""
        wanted = getattr(self.args, "threads", None)
        if wanted is None and ckpt is not None:
            wanted = ckpt["run"].get("threads")
        if wanted is None:
            wanted = threads.pick(flops_per_step, step, device)
        return threads.apply(wanted)

    def prepare_data(self, ckpt):
        import time

        from grader.training.corpus import prepare

        kind = getattr(self.args, "tokenizer", None)
        if ckpt is not None:
            stored = ckpt["tokenizer"].get("kind")
            if kind is not None and kind != stored:
                raise TrainError(f"The checkpoint in {self.out} uses the {stored} tokenizer, not {kind}: "
                                 f"resume without --tokenizer, or train into another --out.")
            if stored == "bpe":
                self.notes.append(f"tokenizer: the byte-level BPE this run trained "
                                  f"({'yours' if ckpt['tokenizer'].get('trained_by') == 'exercises' else 'the reference'})")
            return prepare(self.source, stored, ckpt["tokenizer"])
        if kind != "bpe":
            return prepare(self.source, kind or "char")
        bpe, whose = second_half(self.impl, "11")
        vocab_size = self.args.vocab_size
        print(f"Training a byte-level BPE tokenizer to {vocab_size} tokens on the training split with {whose} "
              f"train_bpe ...", flush=True)
        started = time.perf_counter()
        corpus = prepare(self.source, "bpe", vocab_size=vocab_size, bpe_module=bpe,
                         trained_by=bpe.__name__.split(".")[0])
        self.notes.append(f"tokenizer: byte-level BPE, {corpus.tokenizer.vocab_size} tokens, trained by {whose} "
                          f"train_bpe in {time.perf_counter() - started:.1f} s (tokenizer.json)")
        return corpus

    def resolve_config(self, ckpt):
        import importlib

        GPTConfig = importlib.import_module(f"{self.impl}.config").GPTConfig
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


def checked_preset(name: str) -> dict:
    try:
        return preset(name)
    except ValueError as error:
        raise TrainError(str(error)) from None


def resolve_settings(chosen: dict, ckpt, flags) -> Settings:
    """The preset's training settings, then the checkpoint's (resume), then the flags; checked. A new run given
    --max-steps but no --eval-interval evaluates about 10 times (never less often than the preset says)."""
    values = dict(chosen["train"])
    if ckpt is not None:
        values["optimizer"] = "adamw"  # a checkpoint of the earlier layout names no optimizer: it trained with AdamW
        values.update(ckpt["settings"])
    elif "max_steps" in flags and "eval_interval" not in flags:  # a shorter run still gets a curve: ~10 evaluations
        values["eval_interval"] = max(1, min(values.get("eval_interval", Settings.eval_interval), flags["max_steps"] // 10))
    values.update(flags)
    try:
        settings = Settings(**values)
        settings.check()
    except (TypeError, ValueError) as error:
        raise TrainError(str(error)) from None
    return settings
