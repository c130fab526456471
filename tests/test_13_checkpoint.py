"""13 checkpoint: save_checkpoint and load_checkpoint (exercises/checkpoint.py).

The model is always the reference GPT (never the learner's, so 13 does not need 06),
with dropout 0.1 wherever training runs, so that the random numbers matter. The
resume test trains with the learner's own parts, because resuming has to work with
what the learner trains with: configure_optimizers and lr_at (07), get_batch and
train_step (08), and configure_muon (12). The
other tests use torch's optimizers, so they isolate the checkpoint module.

What a checkpoint file holds is read here with torch.load(..., weights_only=True);
files for testing load_checkpoint alone are written by the reference's
save_checkpoint. A wrong resume is named by checking, in order, what the file holds
and what load_checkpoint restored (model, optimizer, step, RNG, extra): the first
that differs is the mistake. A crash while writing is made two ways: torch.save
writes half the file and raises, and (on Unix) a child process is killed by the
kernel half way through the write (RLIMIT_FSIZE and SIGXFSZ).
"""

import copy
import dataclasses
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from harness import fail, impl, learner, randint, reference, replaced, small_config

MODULE = "checkpoint"
ROOT = Path(__file__).resolve().parent.parent
TODO = re.compile(r"^\d\d \w+: ")
KEYS = ("model", "optimizer", "step", "config", "rng", "extra")

CONFIG = dict(dropout=0.1)  # small_config (2 layers, 4 heads, 32 channels, vocabulary 61) with dropout
STEPS, SAVE_AT = 6, 3  # the straight run trains STEPS steps; the interrupted one saves after SAVE_AT
BATCH, MICRO_BATCHES = 4, 2
MAX_LR, MIN_LR, WARMUP = 3e-3, 3e-4, 2

# --- the mistakes the tests establish (each a cause: the property the check isolates failed) ---------------
OPTIMIZER_NOT_SAVED = ("the optimizer's state was not saved: the checkpoint's 'optimizer' must be "
                       "optimizer.state_dict() (AdamW's moments and step counts), or a resumed run starts them again "
                       "from zero")
OPTIMIZER_NOT_LOADED = ("load_checkpoint did not load the optimizer's state: when an optimizer is given, call "
                        "optimizer.load_state_dict(checkpoint['optimizer'])")
MODEL_NOT_LOADED = "load_checkpoint did not load the model's weights: when a model is given, call model.load_state_dict"
STEP_OFF_BY_ONE = ("the step is off by one: save_checkpoint was given step={given} (the number of steps done) and the "
                   "{where} {got}; store and return the step as given, and the resumed run's next step is that number")
RNG_NOT_SAVED = ("torch's RNG state was not saved: rng['torch'] must be torch.get_rng_state() taken at the save, or "
                 "dropout draws other masks after a resume")
RNG_SEED = ("the RNG was saved as a seed, not as its state: torch.initial_seed() only says where the random numbers "
            "started, and seeding again starts them over; save torch.get_rng_state() and restore it with "
            "torch.set_rng_state")
RNG_NOT_RESTORED = ("load_checkpoint did not restore torch's RNG state: call "
                    "torch.set_rng_state(checkpoint['rng']['torch'].cpu())")
EXTRA_NOT_SAVED = ("the batch generator's state was lost: the checkpoint's 'extra' is not the extra given to "
                   "save_checkpoint (store it as given)")
EXTRA_NOT_RETURNED = ("the batch generator's state was lost: the dict load_checkpoint returns does not hold the extra "
                      "that was saved (return the loaded checkpoint itself)")
IN_PLACE = ("the checkpoint was written in place, not atomically: the failed write changed the previous checkpoint. "
            "torch.save into a temporary file in the same folder, then os.replace(tmp, path)")
NOT_RENAMED = ("the checkpoint is not written atomically: no temporary file was renamed onto it; torch.save into a "
               "temporary file in the same folder, then os.replace(tmp, path)")
TEMP_LEFT = ("a temporary file was left behind after the failed write: on any exception, delete the temporary file, "
             "then raise again")
TEMP_ELSEWHERE = ("the temporary file is not in the checkpoint's folder: os.replace is atomic (and works at all) only "
                  "within one file system, so write it beside the checkpoint")
ORIG_MOD_KEPT = ("the '_orig_mod.' prefix of a compiled model's keys was not stripped: torch.compile's wrapper saves "
                 "'_orig_mod.transformer...'; drop the prefix so the weights load into a plain model")
MODULE_KEPT = ("the 'module.' prefix of a DDP-wrapped model's keys was not stripped: DistributedDataParallel saves "
               "'module.transformer...'; drop the prefix so the weights load into a plain model")
ONE_PREFIX = ("only one prefix was stripped from keys that carry two ('module._orig_mod.': a compiled model wrapped in "
              "DDP): keep stripping while a key starts with either prefix")
ANOTHER_CONFIG = "load_checkpoint accepted a checkpoint of another config ({field} differs)"
NOT_VALUE_ERROR = ("a checkpoint of another config must be refused with ValueError naming the first differing field; "
                   "load_checkpoint raised {kind}")
NOT_FIRST = "the ValueError does not name the first differing field ({field}, in GPTConfig's order)"
DROPOUT_REFUSED = ("load_checkpoint refused a checkpoint whose config differs from the model's only in dropout; dropout "
                   "holds no weights, so a run may resume with another")
CONFIG_OBJECT = ("the config was saved as a GPTConfig object, not as a dict: weights_only loading refuses objects; store "
                 "dataclasses.asdict(config)")
NOT_WEIGHTS_ONLY = ("load_checkpoint unpickled an arbitrary object: load with torch.load(path, map_location=..., "
                    "weights_only=True), which rebuilds only tensors and plain values")


def mine():
    return learner(MODULE)


@pytest.fixture(autouse=True)
def keep_global_rng():
    """These tests seed and restore torch's global RNG on purpose; leave it as it was for the other tests."""
    state = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices; and one thread is the same arithmetic in every run
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def call(what, fn, *args, **kwargs):
    """Run the learner's fn; an untouched TODO stays "not started", any other exception fails with what."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        if TODO.match(str(error)):
            raise
        fail(MODULE, f"{what} raised NotImplementedError: {error}")
    except Exception as error:  # noqa: BLE001  the learner's crash, explained the same way
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(MODULE, f"{what} raised {type(error).__name__}: {first}")


# --- building blocks ------------------------------------------------------------------------------------------


def config(**overrides):
    return small_config(**{**CONFIG, **overrides})


def gpt(cfg, seed):
    torch.manual_seed(seed)
    return reference("gpt").GPT(cfg)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    """Nested dicts/lists/tuples of tensors and plain values, equal exactly (tensors: dtype, shape, values)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    return a == b


def trained(cfg, seed=0):
    """A reference GPT and a torch AdamW after one step (so the optimizer has moments to save)."""
    model = gpt(cfg, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = randint(cfg.vocab_size, 2, 8, seed=seed + 1)
    model(x, x)[1].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer


def reference_save(path, model, optimizer, step, cfg, extra=None):
    reference(MODULE).save_checkpoint(path, model, optimizer, step, cfg, extra=extra)


def read_file(path, what="the file save_checkpoint wrote"):
    """The checkpoint at path as torch.load(weights_only=True) reads it; a file it refuses fails, named."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  UnpicklingError and friends: say why
        text = str(error)
        if "GPTConfig" in text:
            fail(MODULE, f"torch.load(path, weights_only=True) refuses {what}: it holds a GPTConfig.", cause=CONFIG_OBJECT)
        first = text.strip().splitlines()[0] if text.strip() else ""
        fail(MODULE, f"torch.load(path, weights_only=True) cannot read {what} ({type(error).__name__}: {first}). "
                     f"A checkpoint holds only tensors and plain values (numbers, strings, lists, dicts).")


def learner_save(path, model, optimizer, step, cfg, extra=None):
    """The learner's save_checkpoint, then a check that torch.load(weights_only=True) reads its file."""
    call(f"save_checkpoint(path, model, optimizer, step={step}, config, extra)",
         mine().save_checkpoint, path, model, optimizer, step, cfg, extra=extra)
    if not Path(path).is_file():
        fail(MODULE, f"save_checkpoint(path, ...) returned but there is no file at path ({Path(path).name}).")
    return read_file(path)


def check_file(saved, *, model_state, optimizer_state, step, cfg, extra, rng_state, cuda_states):
    """What save_checkpoint wrote, key by key; the first wrong key fails with its mistake."""
    if not isinstance(saved, dict):
        fail(MODULE, f"The checkpoint file holds a {type(saved).__name__}; save a dict with keys {', '.join(KEYS)}.")
    missing = [k for k in KEYS if k not in saved]
    if missing:
        cause = {"optimizer": OPTIMIZER_NOT_SAVED, "rng": RNG_NOT_SAVED, "extra": EXTRA_NOT_SAVED}.get(missing[0])
        fail(MODULE, f"The checkpoint has no {', '.join(repr(k) for k in missing)} (its keys: "
                     f"{', '.join(map(repr, saved))}); the contract's keys are {', '.join(KEYS)}.", cause=cause)
    stored = saved["model"]
    if not isinstance(stored, dict) or stored.keys() != model_state.keys() or not same(dict(stored), model_state):
        fail(MODULE, "The checkpoint's 'model' is not model.state_dict() at the save (the same keys and values).")
    if not same(saved["optimizer"], optimizer_state):
        fail(MODULE, "The checkpoint's 'optimizer' differs from optimizer.state_dict() at the save.",
             cause=OPTIMIZER_NOT_SAVED)
    if not isinstance(saved["step"], (int, float, torch.Tensor)) or saved["step"] != step:
        got = saved["step"]
        cause = None
        if isinstance(got, (int, float)) and abs(got - step) == 1:
            cause = STEP_OFF_BY_ONE.format(given=step, where="checkpoint holds", got=got)
        fail(MODULE, f"The checkpoint's 'step' is {got!r}; save_checkpoint was given step={step}.", cause=cause)
    want = dataclasses.asdict(cfg)
    if not isinstance(saved["config"], dict) or saved["config"] != want:
        fail(MODULE, f"The checkpoint's 'config' is {saved['config']!r}; it must be dataclasses.asdict(config), "
                     f"{want!r}.")
    rng = saved["rng"]
    if not isinstance(rng, dict) or "torch" not in rng or "cuda" not in rng:
        fail(MODULE, f"The checkpoint's 'rng' is {rng!r}; it must be a dict with keys 'torch' and 'cuda'.")
    if isinstance(rng["torch"], int):
        fail(MODULE, f"The checkpoint's rng['torch'] is the integer {rng['torch']}.", cause=RNG_SEED)
    if not same(rng["torch"], rng_state):
        fail(MODULE, "The checkpoint's rng['torch'] is not torch.get_rng_state() at the time of the save.",
             cause=RNG_NOT_SAVED)
    if cuda_states is None:
        if rng["cuda"] not in (None, []):
            fail(MODULE, f"Without CUDA, the checkpoint's rng['cuda'] must be None, not {rng['cuda']!r}.")
    elif not same(list(rng["cuda"] or []), cuda_states):
        fail(MODULE, "The checkpoint's rng['cuda'] is not torch.cuda.get_rng_state_all() at the time of the save.")
    if not same(saved["extra"], extra):
        fail(MODULE, f"save_checkpoint was given extra with keys {sorted(extra)} and the checkpoint holds "
                     f"{saved['extra']!r:.200}.", cause=EXTRA_NOT_SAVED)


def check_loaded(returned, model, optimizer, *, model_state, optimizer_state, step, extra, rng_state):
    """What load_checkpoint restored and returned; call it right after the load (before any random draw)."""
    rng_now = torch.get_rng_state()
    if not isinstance(returned, dict):
        fail(MODULE, f"load_checkpoint returned {type(returned).__name__}; return the checkpoint (the loaded dict).")
    if model is not None and not same(snapshot(model), model_state):
        fail(MODULE, "After load_checkpoint(path, model, ...) the model's weights are not the saved ones.",
             cause=MODEL_NOT_LOADED)
    if optimizer is not None and not same(optimizer.state_dict(), optimizer_state):
        fail(MODULE, "After load_checkpoint(path, model, optimizer) optimizer.state_dict() differs from the saved one.",
             cause=OPTIMIZER_NOT_LOADED)
    if not same(rng_now, rng_state):
        fail(MODULE, "After load_checkpoint, torch.get_rng_state() is not the state saved in the checkpoint.",
             cause=RNG_NOT_RESTORED)
    got = returned.get("step")
    if got != step:
        cause = (STEP_OFF_BY_ONE.format(given=step, where="dict load_checkpoint returns holds", got=got)
                 if isinstance(got, (int, float)) and abs(got - step) == 1 else None)
        fail(MODULE, f"load_checkpoint returned step {got!r}; the checkpoint holds {step}.", cause=cause)
    if not same(returned.get("extra"), extra):
        fail(MODULE, f"load_checkpoint returned extra {returned.get('extra')!r:.200}, not the extra that was saved.",
             cause=EXTRA_NOT_RETURNED)


# --- what save_checkpoint writes, what load_checkpoint restores -----------------------------------------------


def test_save_writes_model_optimizer_step_config_rng_and_extra(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    extra = {"batches": torch.Generator().manual_seed(5).get_state(), "settings": {"lr": 3e-3, "name": "cpu"},
             "losses": [4.1, 3.9]}
    torch.manual_seed(11)
    torch.rand(3)
    rng_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    saved = learner_save(tmp_path / "ckpt.pt", model, optimizer, 7, cfg, extra=extra)
    check_file(saved, model_state=snapshot(model), optimizer_state=optimizer.state_dict(), step=7, cfg=cfg,
               extra=extra, rng_state=rng_state, cuda_states=cuda_states)


def test_load_restores_model_optimizer_and_rng_and_returns_the_checkpoint(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    extra = {"batches": torch.Generator().manual_seed(5).get_state(), "losses": [4.1, 3.9]}
    torch.manual_seed(12)
    rng_state = torch.get_rng_state()
    reference_save(tmp_path / "ckpt.pt", model, optimizer, 7, cfg, extra=extra)
    fresh, fresh_optimizer = trained(cfg, seed=40)  # other weights, other moments, another RNG state
    returned = call("load_checkpoint(path, model, optimizer)", mine().load_checkpoint, tmp_path / "ckpt.pt",
                    fresh, fresh_optimizer)
    check_loaded(returned, fresh, fresh_optimizer, model_state=snapshot(model), optimizer_state=optimizer.state_dict(),
                 step=7, extra=extra, rng_state=rng_state)


# --- resume is bit-exact --------------------------------------------------------------------------------------


class Training:
    """The run the resume test repeats: the learner's optimizer, lr_at, get_batch and train_step."""

    def __init__(self, make_optimizer, scale_lr_by_group=False):
        self.make_optimizer = make_optimizer
        self.scale_lr_by_group = scale_lr_by_group  # Muon: each group's initial_lr * lr_at(...) / max_lr
        self.cfg = config()
        self.data = randint(self.cfg.vocab_size, 3000, seed=3)

    def start(self, seed, batch_seed):
        """A new model, optimizer and batch generator (built after torch.manual_seed(seed))."""
        model = gpt(self.cfg, seed)
        optimizer = call("building the optimizer", self.make_optimizer, model)
        return model, optimizer, torch.Generator().manual_seed(batch_seed)

    def steps(self, model, optimizer, generator, start, stop):
        optim, train = learner("optim"), learner("train")
        for step in range(start, stop):
            lr = call("07 lr_at", optim.lr_at, step, WARMUP, STEPS, MAX_LR, MIN_LR)
            batches = [call("08 get_batch", train.get_batch, self.data, BATCH, self.cfg.block_size, generator=generator)
                       for _ in range(MICRO_BATCHES)]
            if self.scale_lr_by_group:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * lr / MAX_LR
                call("08 train_step", train.train_step, model, optimizer, batches, grad_clip=1.0, lr=None)
            else:
                call("08 train_step", train.train_step, model, optimizer, batches, grad_clip=1.0, lr=lr)


def check_resume(tmp_path, training, what):
    # the run that never stops
    model, optimizer, generator = training.start(seed=0, batch_seed=1)
    training.steps(model, optimizer, generator, 0, STEPS)
    straight = snapshot(model)

    # the same run, saved after SAVE_AT steps
    model, optimizer, generator = training.start(seed=0, batch_seed=1)
    training.steps(model, optimizer, generator, 0, SAVE_AT)
    extra = {"batches": generator.get_state(), "settings": {"max_lr": MAX_LR, "steps": STEPS}}
    model_state, optimizer_state = snapshot(model), copy.deepcopy(optimizer.state_dict())
    rng_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    path = tmp_path / "ckpt.pt"
    saved = learner_save(path, model, optimizer, SAVE_AT, training.cfg, extra=extra)
    check_file(saved, model_state=model_state, optimizer_state=optimizer_state, step=SAVE_AT, cfg=training.cfg,
               extra=extra, rng_state=rng_state, cuda_states=cuda_states)

    # resumed in fresh objects: other initial weights, another RNG state, another batch generator
    model, optimizer, generator = training.start(seed=1234, batch_seed=999)
    returned = call("load_checkpoint(path, model, optimizer)", mine().load_checkpoint, path, model, optimizer)
    check_loaded(returned, model, optimizer, model_state=model_state, optimizer_state=optimizer_state, step=SAVE_AT,
                 extra=extra, rng_state=rng_state)
    generator.set_state(returned["extra"]["batches"])
    training.steps(model, optimizer, generator, returned["step"], STEPS)
    resumed = snapshot(model)
    differ = [name for name in straight if not torch.equal(straight[name], resumed[name])]
    if differ:
        worst = max((straight[n] - resumed[n]).abs().max().item() for n in differ)
        fail(MODULE, f"{what}: {STEPS} steps straight and {SAVE_AT} steps, save, load into a fresh model and optimizer, "
                     f"{STEPS - SAVE_AT} more steps give different weights ({len(differ)} of {len(straight)} tensors, "
                     f"first {differ[0]}, largest difference {worst:.3g}), although the model, the optimizer's "
                     f"state_dict, the step, torch's RNG and extra were all restored. So the training depends on "
                     f"something outside them: state the optimizer (07/12) or train_step (08) keeps outside "
                     f"optimizer.state_dict(), or a random draw between the load and the first step.")


def test_resume_is_bit_exact_with_your_adamw_and_train_step(tmp_path):
    def make(model):
        return learner("optim").configure_optimizers(model, MAX_LR, weight_decay=0.1)

    check_resume(tmp_path, Training(make), "With configure_optimizers (AdamW) and dropout 0.1")


def test_resume_is_bit_exact_with_your_muon(tmp_path):

    def make(model):
        return learner("muon").configure_muon(model, muon_lr=0.02, adam_lr=MAX_LR)

    check_resume(tmp_path, Training(make, scale_lr_by_group=True), "With configure_muon (MuonWithAdamW) and dropout 0.1")


def test_rng_restored_so_the_next_batches_and_samples_are_the_same(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    prompt = randint(cfg.vocab_size, 2, 3, seed=8)
    generate = reference("generate").generate
    torch.manual_seed(21)
    generator = torch.Generator().manual_seed(22)
    torch.rand(5)
    torch.randint(100, (5,), generator=generator)  # both somewhere past their seeds
    rng_state = torch.get_rng_state()
    extra = {"batches": generator.get_state()}
    path = tmp_path / "ckpt.pt"
    call("save_checkpoint(path, model, optimizer, step=7, config, extra={'batches': generator.get_state()})",
         mine().save_checkpoint, path, model, optimizer, 7, cfg, extra=extra)
    want_batches = torch.randint(3000, (BATCH,), generator=generator)
    want_samples = generate(model, prompt, 12)  # temperature 1, drawn from torch's global RNG
    want_cuda = torch.rand(8, device="cuda") if torch.cuda.is_available() else None

    torch.manual_seed(31)  # elsewhere: another RNG state, another generator
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(31)
    generator = torch.Generator().manual_seed(32)
    returned = call("load_checkpoint(path)", mine().load_checkpoint, path)
    restored = (returned.get("extra") or {}).get("batches") if isinstance(returned, dict) else None
    if restored is not None:
        generator.set_state(restored)
    got_samples = generate(model, prompt, 12)
    got_cuda = torch.rand(8, device="cuda") if torch.cuda.is_available() else None
    got_batches = torch.randint(3000, (BATCH,), generator=generator) if restored is not None else None

    if not torch.equal(got_samples, want_samples):
        saved = read_file(path)
        rng = saved.get("rng") if isinstance(saved, dict) else None
        text = ("After load_checkpoint(path), generate (temperature 1, torch's global RNG) samples other tokens than "
                f"right after the save: {got_samples[0, 3:].tolist()} instead of {want_samples[0, 3:].tolist()}.")
        if not isinstance(rng, dict) or rng.get("torch") is None:
            fail(MODULE, f"{text} The checkpoint holds no rng['torch'].", cause=RNG_NOT_SAVED)
        if isinstance(rng["torch"], int):
            fail(MODULE, f"{text} The checkpoint's rng['torch'] is the integer {rng['torch']}.", cause=RNG_SEED)
        if not same(rng["torch"], rng_state):
            fail(MODULE, f"{text} The checkpoint's rng['torch'] is not the state at the save.", cause=RNG_NOT_SAVED)
        fail(MODULE, f"{text} The checkpoint holds the right state.", cause=RNG_NOT_RESTORED)
    if got_batches is None or not torch.equal(got_batches, want_batches):
        saved = read_file(path)
        text = ("After load_checkpoint(path), a batch generator set to extra['batches'] draws other batch starts than "
                "right after the save.")
        if not isinstance(saved, dict) or not same(saved.get("extra"), extra):
            fail(MODULE, f"{text} The checkpoint's 'extra' is {saved.get('extra')!r:.120}.", cause=EXTRA_NOT_SAVED)
        fail(MODULE, f"{text} The checkpoint holds it.", cause=EXTRA_NOT_RETURNED)
    if want_cuda is not None and not torch.equal(got_cuda, want_cuda):
        fail(MODULE, "After load_checkpoint(path), torch.rand on CUDA draws other numbers than right after the save: "
                     "save torch.cuda.get_rng_state_all() in rng['cuda'] and restore it with "
                     "torch.cuda.set_rng_state_all.")


# --- atomic writing -------------------------------------------------------------------------------------------


REAL_SAVE = torch.save


def listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_a_failing_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    path = tmp_path / "ckpt.pt"
    learner_save(path, model, optimizer, 1, cfg)
    before, files = path.read_bytes(), listing(tmp_path)
    first = snapshot(model)
    newer, newer_optimizer = trained(cfg, seed=50)
    calls = []

    def half_then_fail(obj, f, *args, **kwargs):
        """torch.save that writes the first half of the file, then fails as a full disk would."""
        buffer = io.BytesIO()
        REAL_SAVE(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        calls.append(f)
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
        raise OSError(errno.ENOSPC, "No space left on device (this test made torch.save fail half way)")

    raised = None
    with replaced([(torch, "save"), (torch.serialization, "save")], half_then_fail, mine()):
        try:
            mine().save_checkpoint(path, newer, newer_optimizer, 2, cfg)
        except NotImplementedError as error:
            if TODO.match(str(error)):
                raise
            raised = error
        except Exception as error:  # noqa: BLE001  the failure this test causes, or another
            raised = error
    if not calls:
        fail(MODULE, "save_checkpoint never called torch.save, so this test cannot make its write fail; write the "
                     "checkpoint with torch.save (into a temporary file, then os.replace).")
    if path.read_bytes() != before:
        fail(MODULE, "torch.save failed half way through a second save_checkpoint, and the first checkpoint's file "
                     "changed.", cause=IN_PLACE)
    if listing(tmp_path) != files:
        new = sorted(set(listing(tmp_path)) - set(files))
        fail(MODULE, f"torch.save failed half way through save_checkpoint, and the folder now also holds "
                     f"{', '.join(new)}.", cause=TEMP_LEFT)
    if raised is None:
        fail(MODULE, "torch.save failed half way through save_checkpoint, and save_checkpoint returned as if it had "
                     "saved: let the exception propagate (after removing the temporary file), so the run knows.")
    fresh = gpt(cfg, seed=60)
    call("load_checkpoint(path, model) after a failed save", mine().load_checkpoint, path, fresh)
    if not same(snapshot(fresh), first):
        fail(MODULE, "After a failed save, load_checkpoint(path, model) does not give the first checkpoint's weights.")


# The child process of the killed-write test. Where CUDA is already initialised a forked child cannot use it, so
# the child is a fresh interpreter running this script (an import of torch: seconds); elsewhere os.fork (instant).
KILLED_WRITE = r"""
import importlib, json, os, resource, signal, sys
import torch
from solutions.config import GPTConfig
from solutions.gpt import GPT

path, limit, fields = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
checkpoint = importlib.import_module(os.environ["KATA_IMPL"] + ".checkpoint")
torch.manual_seed(1)
config = GPTConfig(**fields)
model = GPT(config)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores SIGXFSZ; by default it kills the process
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
checkpoint.save_checkpoint(path, model, optimizer, 2, config)
print("the save finished")
"""


def save_in_a_child_limited_to(limit, path, cfg):
    """Run the learner's save_checkpoint in a child process that no file may grow past limit bytes in (the kernel
    kills it with SIGXFSZ at that point of the write). Returns (killed by SIGXFSZ, what happened otherwise)."""
    import resource
    import signal

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        env = dict(os.environ, KATA_IMPL=impl(), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(path), str(limit),
                               json.dumps(dataclasses.asdict(cfg))], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        return proc.returncode == -signal.SIGXFSZ, f"it exited with {proc.returncode}: {tail}"
    model = gpt(cfg, seed=1)  # built here: the child only writes
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save = mine().save_checkpoint
    read, write = os.pipe()  # a pipe, not a file: the size limit does not apply to it
    pid = os.fork()
    if pid == 0:  # the child: write, and never return into pytest
        os.close(read)
        code = 0
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores SIGXFSZ; by default it kills the process
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            save(path, model, optimizer, 2, cfg)
            os.write(write, b"the save finished")
        except BaseException as error:  # noqa: BLE001  reported to the parent
            os.write(write, f"{type(error).__name__}: {error}".encode()[:2000])
            code = 3
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGXFSZ, f"it was killed by signal {os.WTERMSIG(status)}"
    return False, f"it exited with {os.WEXITSTATUS(status)}: {said}"


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE and SIGXFSZ (Unix)")
def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    cfg = config()
    model = gpt(cfg, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "ckpt.pt"
    learner_save(path, model, optimizer, 1, cfg)
    before = path.read_bytes()
    first = snapshot(model)
    limit = len(before) // 2  # half the checkpoint's size
    killed, otherwise = save_in_a_child_limited_to(limit, path, cfg)
    if not killed:
        fail(MODULE, f"A process calling save_checkpoint with files limited to {limit} bytes (half the checkpoint) "
                     f"should have been killed by SIGXFSZ while writing; {otherwise}")
    if path.read_bytes() != before:
        fail(MODULE, "A process killed half way through save_checkpoint changed the previous checkpoint's file.",
             cause=IN_PLACE)
    fresh = gpt(cfg, seed=60)
    call("load_checkpoint(path, model) after a killed save", mine().load_checkpoint, path, fresh)
    if not same(snapshot(fresh), first):
        fail(MODULE, "After a killed save, load_checkpoint(path, model) does not give the previous checkpoint's "
                     "weights.")


def test_save_renames_a_temporary_file_from_the_same_folder(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / "ckpt.pt"
    renames = []
    real_replace, real_rename = os.replace, os.rename

    def spy(real):
        def rename(src, dst, *args, **kwargs):
            renames.append((Path(os.fsdecode(src)), Path(os.fsdecode(dst))))
            return real(src, dst, *args, **kwargs)
        return rename

    with replaced([(os, "replace")], spy(real_replace), mine()), replaced([(os, "rename")], spy(real_rename), mine()):
        learner_save(path, model, optimizer, 1, cfg)
    onto = [(src, dst) for src, dst in renames if dst.resolve() == path.resolve()]
    if not onto:
        fail(MODULE, "save_checkpoint wrote the checkpoint without renaming a file onto it "
                     f"(os.replace / os.rename calls: {[(str(s), str(d)) for s, d in renames]}).", cause=NOT_RENAMED)
    src = onto[-1][0]
    if src.resolve().parent != folder.resolve():
        fail(MODULE, f"save_checkpoint renamed {src} onto {path}.", cause=TEMP_ELSEWHERE)
    if listing(folder) != ["ckpt.pt"]:
        fail(MODULE, f"After a successful save the checkpoint's folder holds {listing(folder)}; only ckpt.pt should "
                     f"be left (the temporary file becomes the checkpoint).")


# --- wrapped models: torch.compile's _orig_mod., DDP's module. -------------------------------------------------


class Wrapper(nn.Module):
    """Holds a model under one attribute name, as torch.compile (_orig_mod) and DDP (module) do."""

    def __init__(self, name, inner):
        super().__init__()
        self.add_module(name, inner)


WRAPPERS = {
    "compiled": (("_orig_mod",), ORIG_MOD_KEPT),
    "ddp": (("module",), MODULE_KEPT),
    "ddp-of-compiled": (("module", "_orig_mod"), ONE_PREFIX),
}


def wrap(model, names):
    for name in reversed(names):
        model = Wrapper(name, model)
    return model


def loads_into_plain(path, cfg, want):
    """Whether the learner's load_checkpoint(path, fresh plain model) gives the weights want (exceptions: False)."""
    fresh = gpt(cfg, seed=70)
    try:
        mine().load_checkpoint(path, fresh)
    except NotImplementedError as error:
        if TODO.match(str(error)):
            raise
        return False, f"NotImplementedError: {error}"
    except Exception as error:  # noqa: BLE001
        return False, f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return same(snapshot(fresh), want), "the weights differ from the saved ones"


@pytest.mark.parametrize("saver", ["reference save", "your save"])
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_a_wrapped_models_checkpoint_loads_into_a_plain_model(tmp_path, wrapper, saver):
    cfg = config()
    model, optimizer = trained(cfg)
    want = snapshot(model)
    names, cause = WRAPPERS[wrapper]
    plain = tmp_path / "plain.pt"
    reference_save(plain, model, optimizer, 1, cfg)
    ok, why = loads_into_plain(plain, cfg, want)
    if not ok:
        fail(MODULE, f"load_checkpoint(path, model) does not load a plain model's checkpoint ({why}).",
             cause=MODEL_NOT_LOADED if why.startswith("the weights") else None)
    path = tmp_path / "wrapped.pt"
    prefix = "".join(f"{n}." for n in names)
    wrapped = wrap(model, names)
    if saver == "reference save":
        reference_save(path, wrapped, optimizer, 1, cfg)
    else:
        learner_save(path, wrapped, optimizer, 1, cfg)
    ok, why = loads_into_plain(path, cfg, want)
    if ok:
        return
    text = (f"A checkpoint of a model wrapped as {wrapper} (keys '{prefix}transformer...', saved with the {saver}) "
            f"does not load into a plain model ({why}), while a plain model's checkpoint does.")
    if len(names) > 1:  # name the prefix that is not handled on its own, else the stacking
        for name in names:
            single = tmp_path / f"{name}.pt"
            reference_save(single, wrap(model, (name,)), optimizer, 1, cfg)
            if not loads_into_plain(single, cfg, want)[0]:
                cause = WRAPPERS["compiled" if name == "_orig_mod" else "ddp"][1]
                fail(MODULE, f"{text} A checkpoint with only '{name}.' does not load either.", cause=cause)
    fail(MODULE, text, cause=cause)


# --- the config check -----------------------------------------------------------------------------------------

OTHER_CONFIGS = {  # the checkpoint's config: which field comes first in GPTConfig's order
    "norm_eps": dict(norm_eps=1e-3),  # the same shapes: load_state_dict would not notice
    "tie_embeddings": dict(tie_embeddings=False),  # the same keys and shapes too
    "block_size": dict(block_size=32, n_embd=48),  # block_size, then n_embd and mlp_hidden differ
}


@pytest.mark.parametrize("first", list(OTHER_CONFIGS))
def test_a_checkpoint_of_another_config_is_refused_naming_the_first_differing_field(tmp_path, first):
    theirs = config(**OTHER_CONFIGS[first])
    model, optimizer = trained(theirs)
    path = tmp_path / "ckpt.pt"
    reference_save(path, model, optimizer, 1, theirs)
    ours = gpt(config(), seed=80)
    differing = [f.name for f in dataclasses.fields(theirs)
                 if f.name != "dropout" and getattr(theirs, f.name) != getattr(ours.config, f.name)]
    what = f"load_checkpoint(path, model) with a checkpoint whose config differs in {', '.join(differing)}"
    try:
        mine().load_checkpoint(path, ours)
    except NotImplementedError as error:
        if TODO.match(str(error)):
            raise
        error_ = error
    except Exception as error:  # noqa: BLE001
        error_ = error
    else:
        fail(MODULE, f"{what} returned without an error.", cause=ANOTHER_CONFIG.format(field=first))
    message = str(error_)
    if not isinstance(error_, ValueError):
        kind = f"{type(error_).__name__}"
        fail(MODULE, f"{what} raised {kind}: {message.strip().splitlines()[0] if message.strip() else ''}",
             cause=NOT_VALUE_ERROR.format(kind=kind))
    if first not in message.replace(str(path), ""):
        fail(MODULE, f"{what}: the ValueError should name {first}; its message: {message!r}.",
             cause=NOT_FIRST.format(field=first))


def test_a_checkpoint_that_differs_only_in_dropout_loads(tmp_path):
    saved_cfg = config(dropout=0.1)
    model, optimizer = trained(saved_cfg)
    path = tmp_path / "ckpt.pt"
    reference_save(path, model, optimizer, 1, saved_cfg)
    ours = gpt(config(dropout=0.0), seed=81)
    try:
        mine().load_checkpoint(path, ours)
    except NotImplementedError as error:
        if TODO.match(str(error)):
            raise
        fail(MODULE, f"load_checkpoint(path, model) raised NotImplementedError: {error}")
    except ValueError as error:  # a refusal that names dropout: the check compared it
        fail(MODULE, f"load_checkpoint(path, model) with a checkpoint of dropout 0.1 into a model of dropout 0.0 "
                     f"raised ValueError: {error}", cause=DROPOUT_REFUSED if "dropout" in str(error) else None)
    except Exception as error:  # noqa: BLE001
        fail(MODULE, f"load_checkpoint(path, model) with a checkpoint of dropout 0.1 into a model of dropout 0.0 "
                     f"raised {type(error).__name__}: {error}")
    if not same(snapshot(ours), snapshot(model)):
        fail(MODULE, "load_checkpoint(path, model) (dropout 0.1 saved, 0.0 in the model) did not give the saved "
                     "weights.", cause=MODEL_NOT_LOADED)


# --- weights_only ---------------------------------------------------------------------------------------------


class Arbitrary:
    """Unpickles by calling os.getpid: harmless, but code that a weights_only load must refuse to run."""

    def __reduce__(self):
        return (os.getpid, ())


def test_loading_refuses_a_checkpoint_holding_an_arbitrary_object(tmp_path):
    cfg = config()
    model, optimizer = trained(cfg)
    plain = tmp_path / "plain.pt"
    reference_save(plain, model, optimizer, 1, cfg)
    call("load_checkpoint(path) of a plain checkpoint", mine().load_checkpoint, plain)
    path = tmp_path / "ckpt.pt"
    reference_save(path, model, optimizer, 1, cfg, extra={"object": Arbitrary()})
    try:
        returned = mine().load_checkpoint(path)
    except NotImplementedError as error:
        if TODO.match(str(error)):
            raise
        return
    except Exception:  # noqa: BLE001  refused: what weights_only loading does
        return
    got = (returned.get("extra") or {}).get("object") if isinstance(returned, dict) else None
    fail(MODULE, f"load_checkpoint(path) loaded a checkpoint whose extra holds a pickled object (it unpickled by "
                 f"calling os.getpid and returned {got!r}).", cause=NOT_WEIGHTS_ONLY)


# --- devices --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a checkpoint saved on the GPU loads on the CPU")
def test_a_checkpoint_saved_on_the_gpu_loads_where_map_location_says(tmp_path):
    cfg = config()
    model = gpt(cfg, seed=0).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    path = tmp_path / "ckpt.pt"
    learner_save(path, model, optimizer, 1, cfg)
    returned = call("load_checkpoint(path)", mine().load_checkpoint, path)
    devices = {t.device.type for t in returned["model"].values()}
    if devices != {"cpu"}:
        fail(MODULE, f"load_checkpoint(path) (map_location='cpu' by default) returned weights on {sorted(devices)}.")
    returned = call("load_checkpoint(path, map_location='cuda')", mine().load_checkpoint, path, map_location="cuda")
    devices = {t.device.type for t in returned["model"].values()}
    if devices != {"cuda"}:
        fail(MODULE, f"load_checkpoint(path, map_location='cuda') returned weights on {sorted(devices)}.")
    fresh = gpt(cfg, seed=1)
    call("load_checkpoint(path, cpu model)", mine().load_checkpoint, path, fresh)
    if not same(snapshot(fresh), {k: v.cpu() for k, v in snapshot(model).items()}):
        fail(MODULE, "load_checkpoint(path, model) of a GPU checkpoint into a CPU model did not give the saved weights.")
