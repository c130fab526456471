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
reads the result. A failure names a cause only when a measurement establishes
it: on the trained model (do its logits depend on earlier tokens, did its
parameters move), or on your functions alone (is get_batch's y shifted, is the
loss the cross-entropy of the logits, does train_step report the mean loss,
does generate equal greedy decoding written out here or a known mistake of
it). Otherwise it says what was measured and where to look.
"""

import contextlib
import copy
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

    def __init__(self, model, initial, final, train_losses, source, windows, initial_state, data):
        self.model, self.initial, self.final = model, initial, final
        self.train_losses, self.source, self.windows = train_losses, source, windows
        self.initial_state, self.data = initial_state, data  # the parameters before training; the training tokens

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
        initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
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
    return Run(model, initial, final, train_losses, source_loss(windows), windows, initial_state, data)


@pytest.fixture(scope="module")
def run():
    return train()


def setting():
    return (f"(GPT {MODEL['n_layer']} layers x {MODEL['n_embd']}, {STEPS} steps of {MICRO_BATCHES} x {BATCH} "
            f"windows of {BLOCK_SIZE} tokens, AdamW from configure_optimizers, lr_at({WARMUP} warmup, "
            f"{MAX_LR:g} -> {MIN_LR:g}))")


# --- measurements that tell causes apart (each a property of your code, checked on the trained model) ----------


def largest_initial_weight(run):
    """(name, std) of the fresh model's 2-D weight with the largest std."""
    stds = [(name, t.double().std().item()) for name, t in run.initial_state.items() if t.dim() == 2]
    return max(stds, key=lambda item: item[1])


def parameters_moved(run):
    """Whether training changed any parameter."""
    now = run.model.state_dict()
    return any(not torch.equal(now[k], v) for k, v in run.initial_state.items())


def have_gradients(run):
    """Whether any parameter holds a non-zero gradient after training (train_step leaves them in p.grad)."""
    return any(p.grad is not None and bool(torch.any(p.grad != 0)) for p in run.model.parameters())


def depends_only_on_the_last_token(run):
    """Whether the logits at the last position stay the same when every earlier token changes."""
    x = run.windows[:16, :-1]
    other = run.windows[16:32, :-1].clone()
    other[:, -1] = x[:, -1]
    model = run.model.eval()
    with torch.no_grad(), one_thread():
        a, b = model(x)[0][:, -1], model(other)[0][:, -1]
    return bool(torch.allclose(a, b, atol=1e-4, rtol=1e-4))


def wrong_targets(run):
    """A sentence naming what feeds the model targets other than the next token, or None: get_batch's y, or
    the loss GPT.forward computes from its logits (both checked directly)."""
    x, y = learner("train").get_batch(run.data, 4, BLOCK_SIZE, generator=torch.Generator().manual_seed(7))
    if not torch.equal(y[:, :-1].cpu(), x[:, 1:].cpu()):
        return ("your get_batch's y is not x moved one token to the right (y[:, t] must be data[s + t + 1], the token "
                "after x[:, t]), so the model was trained on other targets than the next token")
    model = run.model.eval()
    with torch.no_grad(), one_thread():
        logits, loss = model(x, y)
    flat = lambda lg, tg: (lg.reshape(-1, lg.size(-1)).double(), tg.reshape(-1))  # noqa: E731
    want = F.cross_entropy(*flat(logits, y)).item()
    if loss is not None and abs(float(loss) - want) > 1e-3 * max(1.0, want):
        shifted = F.cross_entropy(*flat(logits[:, :-1], y[:, 1:])).item()
        if abs(float(loss) - shifted) <= 1e-3 * max(1.0, shifted):
            return ("GPT.forward's loss shifts the targets again (it compares logits[:, t] with targets[:, t + 1]), "
                    "so the model learned the token after next; targets are already shifted")
        return (f"GPT.forward's loss ({float(loss):.4f}) is not the cross-entropy of its logits with the targets "
                f"({want:.4f}), so the model was trained on something other than the next token")
    return None


def train_step_misreports(run):
    """A sentence if train_step returns something other than the mean loss of its micro-batches (checked on a
    copy of the trained model with lr=0), else None."""
    model = copy.deepcopy(run.model)
    generator = torch.Generator().manual_seed(8)
    batches = [learner("train").get_batch(run.data, BATCH, BLOCK_SIZE, generator=generator) for _ in range(2)]
    with torch.no_grad(), one_thread():
        model.train()
        want = float(np.mean([model(x, y)[1].item() for x, y in batches]))
        optimizer = learner("optim").configure_optimizers(model, lr=0.0)
    with one_thread():
        got = float(learner("train").train_step(model, optimizer, batches, grad_clip=1.0, lr=0.0))
    if abs(got - want) > 1e-4 * max(1.0, want):
        return (f"your train_step does not return the mean loss of its micro-batches (it returned {got:.4f} for two "
                f"micro-batches whose mean loss is {want:.4f})")
    return None


def initial_loss_problem(run):
    """The established cause when the fresh model's loss is not about ln(V), else None."""
    if abs(run.initial - math.log(V)) <= MARGIN_INIT:
        return None
    measured = (f"the initial loss of your fresh GPT on held-out text is {run.initial:.3f}, not about ln(vocab_size) "
                f"= ln({V}) = {math.log(V):.3f} (within {MARGIN_INIT}), the loss of a model that spreads its bets "
                f"evenly")
    name, std = largest_initial_weight(run)
    if std > 0.05:
        cause = (f"{measured}: the fresh model's weights are not as init_weights leaves them ({name} has std "
                 f"{std:.3g}; init_weights draws normal(0, 0.02))")
    else:
        cause = measured
    return cause


def test_initial_loss_is_about_ln_vocab(run):
    cause = initial_loss_problem(run)
    if cause is None:
        return
    fail(MODULE, "Far above means the initial logits are large. Places to look: init_weights (normal(0, 0.02) for "
                 "every Linear and Embedding weight, zero biases, norm weights 1, called from GPT.__init__), the "
                 "tying of lm_head to wte, and the loss (cross_entropy of the logits and the targets); test 06 "
                 "checks each.", cause=cause)


def test_loss_falls_to_the_entropy(run):
    excess = run.final - run.source
    if math.isfinite(run.final) and excess <= MARGIN_ABOVE:
        return
    text = (f"After training {setting()} the held-out loss is {run.final:.3f} nats/token; the corpus's entropy "
            f"is H = {H:.3f} (on these tokens the source itself scores {run.source:.3f}) and the loss should "
            f"end within {MARGIN_ABOVE} of it. It started at {run.initial:.3f}; train_step returned, by step: "
            f"{run.curve()}.")
    late = run.late_train_loss()
    upstream = initial_loss_problem(run)
    if upstream:
        fail(MODULE, text + " Training starts from the fresh model: fix test_initial_loss_is_about_ln_vocab first.",
             cause=f"{upstream}; training from there did not reach the entropy")
    if math.isfinite(late) and late < run.final - 0.3 and late < run.initial - 0.5:
        cause = wrong_targets(run) or train_step_misreports(run) or (
            f"your GPT learned to predict something other than the next token: the loss train_step reports fell "
            f"to {late:.3f}, but the next token of held-out text is predicted with loss {run.final:.3f}")
        fail(MODULE, text + " Places to look: the targets (already shifted: cross_entropy of logits (B*T, V) "
                            "with targets (B*T,), no further shift) and get_batch's y.", cause=cause)
    if not math.isfinite(run.final) or run.final > run.initial - 1.0:
        if not parameters_moved(run):
            how = ("its parameters did not change at all in training"
                   + ("" if have_gradients(run) else ", and after training no parameter holds a gradient"))
        else:
            how = "its parameters changed, but the held-out loss did not fall by 1 nat"
        fail(MODULE, text + " Places to look: train_step (backward, optimizer.step(), zeroing the gradients), "
                            "AdamW's update (it must move p by -lr * m_hat / (sqrt(v_hat) + eps)) and lr_at; tests "
                            "07 and 08 check each.",
             cause=f"your GPT did not learn: {how}")
    if excess <= (H_BIGRAM - H) + 0.1:
        if depends_only_on_the_last_token(run):
            cause = (f"your GPT predicts from the last character only: its logits at a position do not change when "
                     f"every earlier token changes, so the loss stalls near H(next | last character) = "
                     f"{H_BIGRAM:.3f}; attention must reach every earlier position, not only the token itself")
        else:
            cause = (f"your GPT learned, but its loss stopped near {H_BIGRAM:.3f}, the best possible from the last "
                     f"character only (the two previous characters fix how likely each next one is)")
        fail(MODULE, text + " Places to look: the causal mask (each position sees itself and every earlier one), "
                            "the positions (wpe or rope), and AdamW or lr_at details that slow training.",
             cause=cause)
    fail(MODULE, text + " Places to look: AdamW (bias correction, weight decay, betas), lr_at, zeroing the "
                        "gradients between steps, and clipping (tests 07 and 08 check each).",
         cause=f"your GPT learned something but did not reach the entropy: it stopped {excess:.3f} nats above it")


def test_loss_is_not_below_the_entropy(run):
    if run.final >= run.source - MARGIN_BELOW:
        return
    fail(MODULE, f"The held-out loss is {run.final:.3f} nats/token, below the corpus's entropy H = {H:.3f} (the "
                 f"source itself scores {run.source:.3f} on these tokens), the best any model that predicts from "
                 f"the past can do. Check the causal mask in causal_attention: query i may see keys 0 .. i only "
                 f"(tril, not triu; masked_fill with -inf where the mask is False).",
         cause="your GPT sees the future: position t can look at the token it must predict")


def test_training_loss_is_not_below_the_entropy(run):
    late = run.late_train_loss()
    if math.isfinite(late) and late >= H - MARGIN_BELOW:
        return
    text = (f"Over the last 20 steps train_step returned a mean loss of {late:.3f} nats/token, below the corpus's "
            f"entropy H = {H:.3f}, which no model can beat on text it predicts from the past; the held-out loss is "
            f"{run.final:.3f} (the source scores {run.source:.3f}).")
    if run.final < run.source - MARGIN_BELOW:
        cause = "your GPT sees the future: its held-out loss is below the entropy too"
    elif run.final - run.source > MARGIN_ABOVE:
        cause = wrong_targets(run) or (
            "your GPT is trained on targets it can see in its inputs, other than the next token: its held-out "
            "next-token loss is far above the entropy")
    else:
        cause = train_step_misreports(run) or wrong_targets(run) or (
            f"the loss train_step reports ({late:.3f}) is below the corpus's entropy, though the held-out loss is not")
    fail(MODULE, text, cause=cause)


def greedy_samples(run, n_prompts=8, prompt_len=2, new=BLOCK_SIZE + 8, seed=0):
    """Greedy continuations (temperature 0) of n_prompts held-out prompts, longer than block_size in total."""
    prompts = run.windows[:n_prompts, :prompt_len].clone()
    try:
        with one_thread(), torch.random.fork_rng():
            torch.manual_seed(seed)  # a generate that samples draws from the global generator
            out = learner("generate").generate(run.model, prompts, new, temperature=0.0)
    except ValueError as error:
        fail(MODULE, f"generate(model, idx {tuple(prompts.shape)}, max_new_tokens={new}, temperature=0) raised "
                     f"ValueError: {error}",
             cause=f"your generate feeds the model more than block_size={BLOCK_SIZE} tokens: crop the context to its "
                   f"last block_size tokens before each forward pass")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n_prompts, prompt_len + new):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        fail(MODULE, f"generate(model, idx {tuple(prompts.shape)}, max_new_tokens={new}) returned {got}; expected "
                     f"{(n_prompts, prompt_len + new)}.",
             cause="your generate does not return the prompt followed by the new tokens")
    if not torch.equal(out[:, :prompt_len].cpu(), prompts):
        fail(MODULE, f"generate(model, idx {tuple(prompts.shape)}, max_new_tokens={new}): the first {prompt_len} "
                     f"tokens of each row are {out[:2, :prompt_len].tolist()} ..., the prompts "
                     f"{prompts[:2].tolist()} ....",
             cause="your generate does not return the prompt unchanged, followed by the new tokens")
    return out.cpu()


def written_out_greedy(model, prompts, new, position=-1, crop="last"):
    """Greedy decoding written out here, on the trained model; with other arguments, known mistakes."""
    idx = prompts.clone()
    model.eval()
    with torch.no_grad(), one_thread():
        for _ in range(new):
            context = idx[:, -BLOCK_SIZE:] if crop == "last" else idx[:, :BLOCK_SIZE]
            logits = model(context)[0]
            idx = torch.cat((idx, logits[:, position].argmax(dim=-1, keepdim=True)), dim=1)
    return idx


def generate_mistake(run, samples):
    """The known generate mistake whose output equals samples (every one that does), or None."""
    prompts, new = samples[:, :2], samples.size(1) - 2
    right = written_out_greedy(run.model, prompts, new)
    if torch.equal(samples, right):
        return None  # generate is right; the model's own argmax breaks the rules
    found = []
    if torch.equal(samples, written_out_greedy(run.model, prompts, new, position=0)):
        found.append("generate takes the logits of the first position; the next token comes from the last, "
                     "logits[:, -1, :]")
    if torch.equal(samples, written_out_greedy(run.model, prompts, new, crop="first")):
        found.append("generate crops the context to its first block_size tokens; keep the last ones, "
                     "idx[:, -block_size:]")
    if not found and not torch.equal(samples, greedy_samples(run, seed=1)):
        found.append("with temperature 0 generate samples instead of taking the argmax (two runs gave different "
                     "tokens): pass the temperature on to sample_next_token, which returns the argmax for 0")
    return "; or ".join(found) or None


def learned_note(run):
    if run.final - run.source > MARGIN_ABOVE:
        return " The model did not learn the corpus either (see test_loss_falls_to_the_entropy): fix that first."
    return ""


def test_greedy_samples_follow_the_rules(run):
    samples = greedy_samples(run)
    for row in samples.tolist():
        bad = synthetic.violations(row)
        if bad:
            t = bad[0]
            prev, nxt = synthetic.SYMBOLS[row[t - 1]], synthetic.SYMBOLS[row[t]]
            may = ", ".join(repr(synthetic.SYMBOLS[i]) for i in synthetic.SUCCESSORS[row[t - 1]])
            fail(MODULE, f"A greedy sample from your trained GPT breaks the corpus's rules: {show(row)} has "
                         f"{nxt!r} after {prev!r} at position {t}, but only {may} may follow {prev!r}; "
                         f"{len(bad)} of its {len(row) - 1} steps break them. Greedy decoding written out here "
                         f"(argmax of the last position's logits, context cropped to its last block_size tokens) "
                         f"is what generate(temperature=0) must return.{learned_note(run)}",
                 cause=generate_mistake(run, samples), looks_like=True)


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
        fail(MODULE, f"With temperature 0, generate must pick the most likely next token (argmax of the logits "
                     f"at the last position, given the last block_size tokens), but {len(wrong)} of the "
                     f"{samples[:, 2:].numel()} generated tokens were not the argmax, the first at position {t} of "
                     f"{show(samples[row].tolist())}.", cause=generate_mistake(run, samples), looks_like=True)
