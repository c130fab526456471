"""99 end to end: train your whole GPT on the synthetic corpus, on the CPU.

Everything is yours: GPT (06, and 01-05 inside it), configure_optimizers and
lr_at (07), get_batch and train_step (08), generate (09). The corpus
(data/synthetic.py) is an order-2 Markov source over 30 characters whose best
possible loss, its entropy rate H, is known exactly (about 0.62 nats/token).

    (a) before training the loss is about ln(30) = 3.40: the model knows nothing yet;
    (b) after STEPS steps the held-out loss is within MARGIN_ABOVE of what the source itself
        scores on the same tokens (its own -ln p, which averages to H);
    (c) it is not far below that: no model that predicts from the past can beat the source,
        so a loss well under H means the model sees the token it predicts;
    (d) greedy samples follow the corpus's rules (which character may follow which).

The model is trained once per run of this file (a module fixture); each test
reads the result.
"""

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data import synthetic
from harness import fail, learner, reference

MODULE = "end_to_end"
V = synthetic.VOCAB_SIZE
H = synthetic.ENTROPY_RATE  # nats/token, exact
H_BIGRAM = synthetic.BIGRAM_ENTROPY  # the best loss from the last character alone

BLOCK_SIZE = 32
MODEL = dict(vocab_size=V, block_size=BLOCK_SIZE, n_layer=2, n_head=4, n_embd=64)  # GPT-2 style, ~0.1M params
STEPS, WARMUP, MAX_LR, MIN_LR = 200, 20, 1e-2, 1e-3
MICRO_BATCHES, BATCH = 2, 16  # each step: 2 micro-batches of 16 windows of 32 tokens
SEED = 0
TRAIN_TOKENS, EVAL_WINDOWS = 50_000, 128

# Margins (nats/token). At init the logits are small (std ~0.2) and the loss is ln(V) plus a little: the tied
# embedding raises the logit of the current character, which never follows itself here (+0.03..0.08 measured).
# A std-1 init gives logits of std ~8 and a loss several nats above ln(V).
MARGIN_INIT = 0.25
# The reference ends 0.02-0.04 above the source's own loss (many seeds). A model that uses only the last
# character cannot get closer than H_BIGRAM - H = 0.14, so the margin sits between the two.
MARGIN_ABOVE = 0.08
# Below the source's own loss on the same tokens no causal model can go (by more than the noise of ~4000
# tokens, < 0.01); a model that sees the future ends 0.3 nats or more below.
MARGIN_BELOW = 0.05
# THREADS: training runs on one thread. The matrices are tiny (64 x 256), so a second thread gains little, and on
# a busy machine two OpenMP threads that wait for each other were measured 9x slower (59 s vs 6.5 s for 20 steps).


def config():
    return reference("config").GPTConfig(**MODEL)


def tokens(ids):
    return torch.from_numpy(ids.astype(np.int64))


def show(ids):
    return repr(synthetic.decode(ids))


def held_out_windows():
    """EVAL_WINDOWS non-overlapping windows of BLOCK_SIZE + 1 tokens from a sample the model never trains on."""
    ids = synthetic.sample(EVAL_WINDOWS * (BLOCK_SIZE + 1), seed=2)
    return tokens(ids).view(EVAL_WINDOWS, BLOCK_SIZE + 1)


def held_out_loss(model, windows):
    """Mean cross-entropy of the model's logits on the held-out windows, at the positions 1 .. T-1 (each with
    two or more characters of context, as the order-2 source needs). Computed here from the logits."""
    x, y = windows[:, :-1], windows[:, 1:]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
    model.train(was_training)
    return F.cross_entropy(logits[:, 1:].reshape(-1, V).double(), y[:, 1:].reshape(-1)).item()


def source_loss(windows):
    """The source's own loss -ln p(next | two previous) on the same tokens (its mean tends to H)."""
    return float(np.mean([synthetic.nll(w.numpy()).mean() for w in windows]))


class Run:
    """What training produced: the model, losses before and after, the losses train_step returned."""

    def __init__(self, model, initial, final, train_losses, source, windows):
        self.model, self.initial, self.final = model, initial, final
        self.train_losses, self.source, self.windows = train_losses, source, windows

    def curve(self):
        shown = [0, 10, 25, 50, 100, 150, len(self.train_losses) - 1]
        return ", ".join(f"{s}: {self.train_losses[s]:.3f}" for s in shown if s < len(self.train_losses))

    def late_train_loss(self):
        return float(np.mean(self.train_losses[-20:]))


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread (see THREADS), restoring the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train(seed=SEED, steps=STEPS):
    """Build the learner's GPT, train it with the learner's optimizer and train_step; return a Run."""
    with one_thread():
        return _train(seed, steps)


def _train(seed, steps):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = learner("gpt").GPT(config())  # first, so that a learner who has not started sees it at once
        windows = held_out_windows()
        initial = held_out_loss(model, windows)
        optimizer = learner("optim").configure_optimizers(model, lr=MAX_LR)
        lr_at, get_batch, train_step = learner("optim").lr_at, learner("train").get_batch, learner("train").train_step
        data = tokens(synthetic.sample(TRAIN_TOKENS, seed=1))
        generator = torch.Generator().manual_seed(seed)
        train_losses = []
        for step in range(steps):
            batches = [get_batch(data, BATCH, BLOCK_SIZE, generator=generator) for _ in range(MICRO_BATCHES)]
            lr = lr_at(step, WARMUP, steps, MAX_LR, MIN_LR)
            train_losses.append(float(train_step(model, optimizer, batches, grad_clip=1.0, lr=lr)))
        final = held_out_loss(model, windows)
    return Run(model, initial, final, train_losses, source_loss(windows), windows)


@pytest.fixture(scope="module")
def run():
    return train()


def setting():
    return (f"(GPT {MODEL['n_layer']} layers x {MODEL['n_embd']}, {STEPS} steps of {MICRO_BATCHES} x {BATCH} "
            f"windows of {BLOCK_SIZE} tokens, AdamW from configure_optimizers, lr_at({WARMUP} warmup, "
            f"{MAX_LR:g} -> {MIN_LR:g}))")


def test_initial_loss_is_about_ln_vocab(run):
    if not abs(run.initial - math.log(V)) <= MARGIN_INIT:
        fail(MODULE, f"the initial loss of your fresh GPT on held-out text is {run.initial:.3f}; expected about "
                     f"ln(vocab_size) = ln({V}) = {math.log(V):.3f} (within {MARGIN_INIT}), the loss of a model "
                     f"that spreads its bets evenly. Far above means the initial logits are large: check "
                     f"init_weights (normal(0, 0.02) for every Linear and Embedding weight, zero biases, "
                     f"norm weights 1, called from GPT.__init__) and that lm_head is tied to wte. "
                     f"The loss is cross_entropy of the logits and the targets.")


def test_loss_falls_to_the_entropy(run):
    excess = run.final - run.source
    if math.isfinite(run.final) and excess <= MARGIN_ABOVE:
        return
    text = (f"after training {setting()} the held-out loss is {run.final:.3f} nats/token; the corpus's entropy "
            f"is H = {H:.3f} (on these tokens the source itself scores {run.source:.3f}) and the loss should "
            f"end within {MARGIN_ABOVE} of it. It started at {run.initial:.3f}; train_step returned, by step: "
            f"{run.curve()}.")
    late = run.late_train_loss()
    if math.isfinite(late) and late < run.final - 0.3:
        fail(MODULE, f"your GPT learned to predict something other than the next token: {text} The loss "
                     f"train_step reports fell to {late:.3f}, but the next token of held-out text is predicted "
                     f"badly. Likely causes: the loss compares the logits with the wrong targets (targets are "
                     f"already shifted: cross_entropy of logits (B*T, V) with targets (B*T,), no further shift), "
                     f"or get_batch's y is not x moved one token to the right.")
    if not math.isfinite(run.final) or run.final > run.initial - 1.0:
        fail(MODULE, f"your GPT did not learn: {text} Likely causes: train_step does not call backward or "
                     f"optimizer.step(), or does not zero the gradients; AdamW does not change the parameters, "
                     f"moves them the wrong way (p -= lr * update), or leaves lr out of the step; lr_at returns 0 "
                     f"or a huge lr. Tests 07 and 08 say which.")
    if excess <= (H_BIGRAM - H) + 0.1:
        fail(MODULE, f"your GPT learned, but not enough: {text} A model that predicts from the last character "
                     f"only gets stuck at {H_BIGRAM:.3f} (the rules fix which characters may follow, the two "
                     f"previous characters fix how likely each is). Likely causes: attention does not reach "
                     f"earlier positions (the mask hides too much: each position must see itself and every "
                     f"earlier one), positions are not added, or training is slowed by a wrong AdamW detail "
                     f"(bias correction, weight decay) or lr schedule.")
    fail(MODULE, f"your GPT learned something but did not reach the entropy: {text} Likely causes: the "
                 f"optimizer (bias correction, weight decay, betas) or the lr schedule is wrong, the gradients are "
                 f"not zeroed between steps, or clipping scales them wrongly (tests 07 and 08 say which).")


def test_loss_is_not_below_the_entropy(run):
    if run.final >= run.source - MARGIN_BELOW:
        return
    fail(MODULE, f"the held-out loss is {run.final:.3f} nats/token, far below the corpus's entropy H = {H:.3f} "
                 f"(the source itself scores {run.source:.3f} on these tokens), the best any model that predicts "
                 f"from the past can do. So the model sees the future: position t can look at the token it must "
                 f"predict. Check the causal mask in causal_attention: query i may see keys 0 .. i only "
                 f"(tril, not triu; masked_fill with -inf where the mask is False).")


def test_training_loss_is_not_below_the_entropy(run):
    late = run.late_train_loss()
    if math.isfinite(late) and late >= H - MARGIN_BELOW:
        return
    fail(MODULE, f"over the last 20 steps train_step returned a mean loss of {late:.3f} nats/token, below the "
                 f"corpus's entropy H = {H:.3f}, which no model can beat on text it predicts from the past (the "
                 f"held-out loss is {run.final:.3f}). The model sees the future or trains on targets it can see in "
                 f"its inputs: get_batch's y must be x moved one token to the right (y[t] = data[s + t + 1]), "
                 f"and the causal mask must hide every later position. Or train_step returns something other than "
                 f"the mean loss of its micro-batches.")


def greedy_samples(run, n_prompts=8, prompt_len=2, new=BLOCK_SIZE + 8):
    """Greedy continuations (temperature 0) of n_prompts held-out prompts, longer than block_size in total."""
    prompts = run.windows[:n_prompts, :prompt_len].clone()
    try:
        with one_thread():
            out = learner("generate").generate(run.model, prompts, new, temperature=0.0)
    except ValueError as error:
        fail(MODULE, f"generate(model, idx {tuple(prompts.shape)}, max_new_tokens={new}, temperature=0) raised "
                     f"ValueError: {error} -- the sequence outgrows block_size={BLOCK_SIZE}: crop the context "
                     f"to its last block_size tokens before each forward pass.")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n_prompts, prompt_len + new):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        fail(MODULE, f"generate(model, idx {tuple(prompts.shape)}, max_new_tokens={new}) returned {got}; expected "
                     f"{(n_prompts, prompt_len + new)}: the prompt followed by the new tokens.")
    if not torch.equal(out[:, :prompt_len].cpu(), prompts):
        fail(MODULE, "generate must return the prompt unchanged, followed by the new tokens.")
    return out.cpu()


def learned_note(run):
    if run.final - run.source > MARGIN_ABOVE:
        return f" (The model did not learn the corpus either, see test_loss_falls_to_the_entropy: fix that first.)"
    return ""


def test_greedy_samples_follow_the_rules(run):
    samples = greedy_samples(run)
    for row in samples.tolist():
        bad = synthetic.violations(row)
        if bad:
            t = bad[0]
            prev, nxt = synthetic.SYMBOLS[row[t - 1]], synthetic.SYMBOLS[row[t]]
            may = ", ".join(repr(synthetic.SYMBOLS[i]) for i in synthetic.SUCCESSORS[row[t - 1]])
            fail(MODULE, f"a greedy sample from your trained GPT breaks the corpus's rules: {show(row)} has "
                         f"{nxt!r} after {prev!r} at position {t}, but only {may} may follow {prev!r}. "
                         f"{len(bad)} of its {len(row) - 1} steps break them. Likely causes: generate takes the "
                         f"logits of the first position instead of the last (logits[:, -1, :]), crops the context "
                         f"to its first block_size tokens instead of its last, or appends the new token in the "
                         f"wrong place.{learned_note(run)}")


def test_greedy_samples_pick_the_most_likely_token(run):
    samples = greedy_samples(run)
    model, wrong = run.model.eval(), []
    with torch.no_grad(), one_thread():
        for t in range(2, samples.size(1)):
            logits = model(samples[:, max(0, t - BLOCK_SIZE) : t])[0][:, -1].double()
            chosen = logits.gather(1, samples[:, t : t + 1]).squeeze(1)
            wrong += [(row, t) for row in range(len(samples)) if chosen[row] < logits[row].max() - 1e-4]
    if wrong:
        row, t = wrong[0]
        fail(MODULE, f"with temperature 0, generate must pick the most likely next token (argmax of the logits "
                     f"at the last position, given the last block_size tokens), but {len(wrong)} of the "
                     f"{samples[:, 2:].numel()} generated tokens were not the argmax, the first at position {t} of "
                     f"{show(samples[row].tolist())}. Likely causes: temperature 0 does not mean argmax (it must not "
                     f"sample or divide by 0), the logits come from the wrong position, or the context is cropped "
                     f"to its first block_size tokens instead of its last.")
