"""What the learner sees while training: a header, a progress bar, evaluations with a sample,
the sentence that stops a run whose loss became NaN; and the samples file. Only the first
process prints."""

import math
import sys


def printable(text: str) -> str:
    """text with control characters (an untrained byte-level model writes bytes like 0x00 and 0x1b) shown as
    \\xNN, so they neither garble the terminal nor make samples.txt a binary file; newlines and tabs stay."""
    return "".join(c if c in "\n\t" or c.isprintable() else f"\\x{ord(c):02x}" for c in text)


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

    def header(self, run, raw, device, autocast_dtype, tokens_per_step, start_step, threads=None):
        c, s, corpus = run.config, run.settings.resolved(), run.corpus
        total = sum(p.numel() for p in raw.parameters())  # a tied weight once
        nano = raw.num_params() if hasattr(raw, "num_params") else total
        n = f"{total:,} parameters" + (f" ({nano:,} without the position embedding, nanoGPT's count)"
                                       if nano != total else "")
        parts = f"{c.norm}, {c.pos_emb}, {c.mlp}" + (", qk-norm" if c.qk_norm else "") + \
                ("" if c.tie_embeddings else ", untied") + (f", softcap {c.logit_softcap:g}" if c.logit_softcap else "")
        dtype = str(autocast_dtype).replace("torch.", "") + " autocast" if autocast_dtype is not None else "float32"
        lines = [
            f"Training {'your GPT (exercises/, swaps applied)' if run.impl == 'exercises' else 'the reference GPT (solutions/)'}"
            f" with --preset {run.preset_name} on {corpus.description}",
            f"  data: {corpus.tokens:,} tokens ({corpus.tokenizer.kind}, vocabulary {corpus.tokenizer.vocab_size}), "
            f"{len(corpus.train):,} train / {len(corpus.val):,} validation",
            f"  model: {n}, {c.n_layer} layers x {c.n_embd}, {c.n_head} heads, context {c.block_size} ({parts})",
            f"  training: {s.max_steps} steps x {tokens_per_step:,} tokens (batch {s.batch_size} x accum {s.grad_accum}"
            f" x {run.dist.world_size} process{'es' if run.dist.world_size > 1 else ''}), lr {s.lr:g} -> {s.min_lr:g}, "
            f"warmup {s.warmup_steps}, on {device} ({dtype}{', compiled' if run.args.compile else ''}"
            f"{f', {threads} thread' + ('s' if threads != 1 else '') if threads and device == 'cpu' else ''})",
            f"  writing to {run.out}/" + (f", resuming at step {start_step}" if start_step else ""),
        ]
        lines += [f"  {note}" for note in getattr(run, "notes", [])]
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


def nan_message(step, loss, lr, kept_step, ckpt_path) -> str:
    """The sentence that stops a run whose loss (or parameters, when lr is None) became NaN or inf."""
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
    if kept_step is not None:
        kept = f"the last good checkpoint (step {kept_step}) is kept in {ckpt_path}"
    else:
        kept = "no checkpoint had been written yet"
    return f"{where}: {cause}; {kept}."
