"""09 generate: sample_next_token and generate (exercises/generate.py).

Sampling is tested by its distribution, never token for token: correct implementations
may draw their random numbers differently. Each distribution test makes ONE call on a
big batch (each of two logits rows repeated N = 10000 times) and compares every token's
count with N * p, p = softmax(logits / T) renormalised over the kept set (computed here,
in float64, by sorting). A count is accepted within 7 standard deviations (+2) of N * p:
by the exact binomial tails a correct implementation lands outside with probability
below 2e-8 per token (any p >= 0.0005), so below 1e-5 for this whole file. The kept set
is checked exactly: a token outside it must never appear, and a kept token with
N * p > 30 must appear. A failed distribution names every known mistake whose
distribution the counts fit (the settings are chosen so that few coincide).

generate runs on the REFERENCE GPT (built directly or with GPT.from_hf), so this
exercise does not depend on the learner's 06; with temperature 0 it must equal
Hugging Face's GPT2LMHeadModel.generate(do_sample=False) token for token.
"""

import math

import pytest
import torch
import torch.nn as nn

from harness import fail, learner, perturb_parameters, randint, randn, reference, small_config

MODULE = "generate"

# Two logits rows over V = 8 tokens, deliberately not sorted, with no ties and no cumulative
# probability near the top_p values used below (the nearest is 0.06 away). Each test's settings are
# chosen so that the known mistakes below keep different token sets where the rows allow it; where two
# mistakes still give the same distribution, the message names both.
ROWS = torch.tensor([
    [0.3, 2.0, -0.4, 1.2, 0.9, -1.0, 1.6, 0.0],
    [1.1, -0.6, 0.4, 2.1, -0.2, 0.8, 1.5, 0.1],
])
V = ROWS.size(1)
N = 10000  # draws per row
SIGMAS = 7


def mine():
    return learner(MODULE)


def call(fn, *args, cause=None, **kwargs):
    """Call the learner's function; an exception (other than an untouched TODO) becomes a kata failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the message says which call raised what
        settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "generator")
        fail(MODULE, f"{fn.__name__}({settings}) raised {type(error).__name__}: {error}.", cause=cause)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


# --- the expected distribution, and the distributions of known mistakes ------------------------

SENTENCES = {
    "temperature-ignored": "the temperature has no effect: divide the logits by it before the softmax "
                           "(dividing the probabilities after the softmax changes nothing once they are renormalised)",
    "temperature-multiplied": "the logits are multiplied by the temperature; divide them: logits / temperature",
    "top-k-minus-1": "top-k keeps k - 1 tokens (off by one): keep the k largest, the k-th included "
                     "(mask logits < the k-th largest, not <=)",
    "top-k-plus-1": "top-k keeps k + 1 tokens (off by one): keep exactly the k largest",
    "top-k-ignored": "top_k is ignored",
    "top-k-only-largest": "top-k keeps only the largest logit: the threshold is the k-th largest, "
                          "torch.topk(logits, k).values[:, -1:], not values[:, :1]",
    "top-p-ignored": "top_p is ignored",
    "nucleus-drops-crossing": "the nucleus drops the token that crosses p: a token stays when the mass before it "
                              "is below p, so the token that takes the sum to p or past it stays",
    "nucleus-unsorted": "top-p is applied on unsorted probabilities (vocabulary order); sort them in descending "
                        "order, cumsum, then map the decision back to the vocabulary",
    "nucleus-no-scatter": "the top-p mask is computed in sorted order but applied to the logits in vocabulary "
                          "order; map it back with scatter (or index with the sort order)",
    "top-p-before-top-k": "top-p uses the probabilities from before top-k; apply top-k first, then take the "
                          "softmax of what is left for top-p",
    "top-p-before-temperature": "top-p uses the probabilities from before the temperature; divide by the "
                                "temperature first",
    "nucleus-ascending": "top-p sorts the probabilities in ascending order; sort them descending (most likely first)",
    "nucleus-keeps-one-more": "the nucleus keeps one token more than the one that crosses p (the mask is shifted "
                              "twice): drop a token when the mass before it already reaches p",
}


def expected_probs(row, temperature=1.0, top_k=None, top_p=None, mistake=None):
    """p(token) for one logits row, in float64, built by sorting; None if the mistake keeps nothing."""
    z = row.double()
    if mistake == "temperature-ignored":
        tempered = z
    elif mistake == "temperature-multiplied":
        tempered = z * temperature
    else:
        tempered = z / temperature
    order = sorted(range(len(z)), key=lambda i: -float(z[i]))  # most likely first
    keep = set(order)
    if top_k is not None and 0 < top_k < len(z) and mistake != "top-k-ignored":
        k = top_k + {"top-k-minus-1": -1, "top-k-plus-1": 1}.get(mistake, 0)
        k = 1 if mistake == "top-k-only-largest" else k
        keep = set(order[:k])
    if top_p is not None and top_p < 1 and mistake != "top-p-ignored":
        pool = set(order) if mistake == "top-p-before-top-k" else keep
        basis = z if mistake == "top-p-before-temperature" else tempered
        probs = softmax_over(basis, pool)
        ranked = [i for i in order if i in pool]
        if mistake == "nucleus-unsorted":
            ranked = sorted(ranked)
        elif mistake == "nucleus-ascending":
            ranked = ranked[::-1]
        nucleus, mass, crossed = [], 0.0, False
        for i in ranked:
            if mistake == "nucleus-drops-crossing":
                if nucleus and mass + probs[i] > top_p:
                    break
            elif mistake == "nucleus-keeps-one-more":
                if crossed:
                    break
                crossed = mass >= top_p
            elif mass >= top_p:
                break
            nucleus.append(i)
            mass += float(probs[i])
        if mistake == "nucleus-no-scatter":
            nucleus = list(range(len(nucleus)))  # the sorted decision applied to vocabulary positions
        keep &= set(nucleus)
    if not keep:
        return None
    return softmax_over(tempered, keep)


def softmax_over(z, keep):
    mask = torch.tensor([i in keep for i in range(len(z))])
    return torch.softmax(z.masked_fill(~mask, -math.inf), dim=-1)


def check_tokens(out, batch, vocab, what):
    if not isinstance(out, torch.Tensor):
        fail(MODULE, f"{what} returned {type(out).__name__}.", cause="your sample_next_token does not return a tensor")
    if tuple(out.shape) != (batch, 1):
        hint = " Keep the last dim: argmax(dim=-1, keepdim=True), torch.multinomial(probs, 1)." if out.numel() == batch else ""
        fail(MODULE, f"{what} returned shape {tuple(out.shape)}.{hint}",
             cause=f"your sample_next_token's output is not (B, 1) = ({batch}, 1)")
    if out.dtype != torch.int64:
        fail(MODULE, f"{what} returned dtype {str(out.dtype)[6:]}.",
             cause="your sample_next_token's token ids are not int64 (torch.long)")
    if out.numel() and (out.min() < 0 or out.max() >= vocab):
        fail(MODULE, f"{what} returned ids from {int(out.min())} to {int(out.max())}.",
             cause=f"your sample_next_token returned token ids outside 0..{vocab - 1}")


def draw(rows=ROWS, n=N, seed=0, cause=None, **settings):
    """One call of the learner's sample_next_token on each row repeated n times; counts (R, V)."""
    logits = rows.repeat_interleave(n, dim=0)
    out = call(mine().sample_next_token, logits, generator=seeded(seed), **settings, cause=cause)
    check_tokens(out, logits.size(0), rows.size(1), f"sample_next_token({settings_text(settings)})")
    row = torch.arange(logits.size(0)) // n
    counts = torch.bincount(row * rows.size(1) + out[:, 0], minlength=rows.numel())
    return counts.view(rows.shape).double()


def settings_text(settings):
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())


def rows_text(rows):
    return str([[round(v, 2) for v in row] for row in rows.tolist()])


def problems(counts, n, want):
    """A sentence about the worst disagreement between counts and n * want, or None if they agree."""
    expected = n * want
    outside = (want == 0) & (counts > 0)
    if outside.any():
        r, j = (int(i) for i in outside.nonzero()[0])
        kept = want[r].nonzero().flatten().tolist()
        return (f"on row {r}, token {j} was drawn {int(counts[r, j])} times in {n} draws, but it is not in the "
                f"kept set {kept}: its probability must be 0")
    missing = (expected > 30) & (counts == 0)
    if missing.any():
        r, j = (int(i) for i in missing.nonzero()[0])
        kept = want[r].nonzero().flatten().tolist()
        return (f"on row {r}, token {j} (probability {want[r, j]:.3f}) was never drawn in {n} draws; "
                f"the kept set is {kept}")
    bound = SIGMAS * torch.sqrt(expected * (1 - want)) + 2
    excess = ((counts - expected).abs() - bound) / bound
    if (excess > 0).any():
        r, j = (int(i) for i in torch.nonzero(excess == excess.max())[0])
        return (f"on row {r}, token {j} was drawn with frequency {counts[r, j] / n:.4f}, expected probability "
                f"{want[r, j]:.4f} (allowed: ±{bound[r, j] / n:.4f}, {SIGMAS} standard deviations); "
                f"expected probabilities {[round(p, 3) for p in want[r].tolist()]}, observed "
                f"{[round(c / n, 3) for c in counts[r].tolist()]}")
    return None


MISTAKES_FOR = {
    "temperature": ["temperature-ignored", "temperature-multiplied"],
    "top_k": ["top-k-minus-1", "top-k-plus-1", "top-k-only-largest", "top-k-ignored"],
    "top_p": ["nucleus-drops-crossing", "nucleus-keeps-one-more", "nucleus-unsorted", "nucleus-no-scatter",
              "top-p-before-top-k", "top-p-before-temperature", "top-p-ignored", "nucleus-ascending"],
}


def matching_mistakes(counts, settings, rows=ROWS, n=N):
    """Every known mistake (for the options in settings) whose distribution the counts fit, as one cause;
    several when they give the same distribution on these rows."""
    found = []
    for name in (m for key in ("temperature", "top_k", "top_p") if key in settings for m in MISTAKES_FOR[key]):
        candidate = [expected_probs(row, mistake=name, **settings) for row in rows]
        if all(c is not None for c in candidate) and problems(counts, n, torch.stack(candidate)) is None:
            found.append(SENTENCES[name])
    if len(found) > 1:
        return "one of these mistakes, which keep the same tokens here: " + "; or ".join(found)
    return found[0] if found else None


def expect_distribution(counts, settings, rows=ROWS, n=N, what="sample_next_token"):
    want = torch.stack([expected_probs(row, **settings) for row in rows])
    problem = problems(counts, n, want)
    if problem is None:
        return
    fail(MODULE, f"{what}({settings_text(settings)}) on logits {rows_text(rows)}: {problem}.",
         cause=matching_mistakes(counts, settings, rows, n), looks_like=True)


# --- sample_next_token ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [dict(), dict(top_k=3), dict(top_p=0.5)], ids=["plain", "top_k", "top_p"])
def test_temperature_zero_is_argmax(settings):
    logits = randn(500, 50, seed=1, scale=2.0)
    out = call(mine().sample_next_token, logits, temperature=0.0, **settings,
               cause="temperature 0 does not return the argmax before anything divides by the temperature")
    check_tokens(out, 500, 50, f"sample_next_token(temperature=0, {settings_text(settings)})")
    want = logits.argmax(dim=-1, keepdim=True)
    if not torch.equal(out, want):
        wrong = int((out != want).sum())
        again = call(mine().sample_next_token, logits, temperature=0.0, **settings, generator=seeded(2))
        sampled = not torch.equal(out, again)
        fail(MODULE, f"sample_next_token({settings_text(dict(temperature=0, **settings))}): {wrong} of 500 rows are "
                     f"not the argmax of their logits" + (", and a second call gave other tokens." if sampled else "."),
             cause=("greedy via sampling: with temperature 0 return logits.argmax(dim=-1, keepdim=True), with no "
                    "softmax and no draw") if sampled else "temperature 0 does not return the argmax of the logits")


def test_returns_b_by_1_int64():
    # every option left at its default (temperature 1.0, top_k None, top_p None, generator None)
    logits = randn(5, 11, seed=2)
    out = call(mine().sample_next_token, logits)
    check_tokens(out, 5, 11, "sample_next_token(logits (5, 11))")


@pytest.mark.parametrize("settings", [
    dict(), dict(temperature=0.7), dict(temperature=1.0, top_k=3), dict(top_p=0.7), dict(temperature=0.5, top_k=5, top_p=0.8),
    dict(temperature=0.0),
], ids=settings_text)
def test_does_not_modify_logits(settings):
    logits = randn(6, 8, seed=4, scale=2.0)
    before = logits.clone()
    call(mine().sample_next_token, logits, generator=seeded(5), **settings)
    if not torch.equal(logits, before):
        fail(MODULE, f"sample_next_token({settings_text(settings)}, logits (6, 8)): work on a new tensor: "
                     f"logits / temperature and masked_fill (not masked_fill_, /=, or logits[...] = -inf) make one. "
                     f"Note that .float() of a float32 tensor is the same tensor.",
             cause="your sample_next_token modified the logits it was given in place")


def test_same_generator_seed_gives_same_draws():
    logits = ROWS.repeat(500, 1)
    settings = dict(temperature=0.8, top_k=6, top_p=0.9)
    first = call(mine().sample_next_token, logits.clone(), generator=seeded(7), **settings)
    second = call(mine().sample_next_token, logits.clone(), generator=seeded(7), **settings)
    check_tokens(first, 1000, V, "sample_next_token")
    if not torch.equal(first, second):
        fail(MODULE, f"sample_next_token({settings_text(settings)}) on logits (1000, {V}), twice with generators "
                     f"seeded 7, gave different tokens. Pass generator=generator to the draw "
                     f"(torch.multinomial(probs, 1, generator=generator)).",
             cause="your sample_next_token does not draw from the generator it is given")


def test_samples_from_the_softmax():
    expect_distribution(draw(seed=10), dict())


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_divides_the_logits(temperature):
    settings = dict(temperature=temperature)
    expect_distribution(draw(seed=11, **settings), settings)


@pytest.mark.parametrize("top_k", [1, 3, 6])
def test_top_k_keeps_exactly_the_k_largest(top_k):
    settings = dict(top_k=top_k)
    expect_distribution(draw(seed=12, **settings), settings)


def test_top_k_with_temperature():
    settings = dict(temperature=2.0, top_k=4)
    expect_distribution(draw(seed=13, **settings), settings)


@pytest.mark.parametrize("top_k", [None, 0, V, V + 3])
def test_top_k_none_zero_or_at_least_vocab_keeps_everything(top_k):
    settings = dict(top_k=top_k)
    cause = f"top_k None, 0 or >= V (here V = {V}) must keep every token: apply top-k only when 0 < top_k < V"
    expect_distribution(draw(seed=14, cause=cause, **settings), settings)


def test_top_p_keeps_the_token_that_crosses_p():
    # Sorted, each row's probabilities add up to about 0.36 after one token and 0.58 after two: with
    # p = 0.47 the second token crosses p and stays (one token if it were dropped, three if one more were kept).
    settings = dict(top_p=0.47)
    expect_distribution(draw(seed=15, **settings), settings)


def test_top_p_below_the_largest_probability_keeps_only_the_most_likely():
    settings = dict(top_p=0.2)
    expect_distribution(draw(seed=16, **settings), settings)


@pytest.mark.parametrize("top_p", [None, 1.0])
def test_top_p_none_or_one_keeps_everything(top_p):
    settings = dict(top_p=top_p)
    expect_distribution(draw(seed=17, **settings), settings)


def test_top_p_uses_the_tempered_probabilities():
    # With T = 0.5 the most likely token alone has 0.55 and 0.63 >= p = 0.37; at T = 1 row 0's has 0.34 < p, so
    # top-p from the untempered probabilities would keep two tokens there.
    settings = dict(temperature=0.5, top_p=0.37)
    expect_distribution(draw(seed=18, **settings), settings)


def test_top_k_then_top_p_on_the_renormalised_probabilities():
    # After top-k (k = 3) the kept probabilities are renormalised: the most likely token alone has 0.47 and 0.52
    # >= p = 0.36; with row 0's probabilities from before top-k (0.34) it would take two.
    settings = dict(top_k=3, top_p=0.36)
    expect_distribution(draw(seed=19, **settings), settings)


def test_all_options_together():
    settings = dict(temperature=1.5, top_k=6, top_p=0.62)
    expect_distribution(draw(seed=20, **settings), settings)


# --- generate ------------------------------------------------------------------------------------


def tiny_gpt(seed=0, **overrides):
    """The REFERENCE GPT (so 09 does not depend on 06), small, with seeded perturbed weights, in eval mode."""
    config = small_config(vocab_size=61, block_size=16, n_layer=2, n_head=4, n_embd=32, **overrides)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = reference("gpt").GPT(config)
    return perturb_parameters(model, seed=seed, scale=0.3).eval()


def greedy(model, idx, max_new_tokens, *, crop="last", position=-1):
    """Greedy decoding written out: the expected output, and (with other arguments) known mistakes."""
    block_size = model.config.block_size
    with torch.no_grad():
        for _ in range(max_new_tokens):
            context = idx[:, -block_size:] if crop == "last" else idx[:, :block_size]
            logits, _ = model(context)
            idx = torch.cat((idx, logits[:, position].argmax(dim=-1, keepdim=True)), dim=1)
    return idx


def generate(model, idx, max_new_tokens, **kwargs):
    """The learner's generate; a ValueError from the model (sequence longer than block_size) is named."""
    try:
        return mine().generate(model, idx, max_new_tokens, **kwargs)
    except ValueError as error:
        if "block_size" in str(error):
            fail(MODULE, f"generate(model, idx {tuple(idx.shape)}, {max_new_tokens}): the model said: {error}",
                 cause=f"your generate fed the model more than block_size = {model.config.block_size} tokens (no "
                       f"context crop): crop the context to the last block_size tokens, idx[:, -block_size:], before each "
                       f"forward")
        raise


def check_generated(out, idx, max_new_tokens, what):
    B, T = idx.shape
    if not isinstance(out, torch.Tensor):
        fail(MODULE, f"{what} returned {type(out).__name__}.", cause="your generate does not return a tensor")
    if tuple(out.shape) != (B, T + max_new_tokens):
        fail(MODULE, f"{what} returned shape {tuple(out.shape)}: the prompt followed by the new tokens.",
             cause=f"your generate's output is not (B, T + max_new_tokens) = ({B}, {T + max_new_tokens})")
    if out.dtype != torch.int64:
        fail(MODULE, f"{what} returned dtype {str(out.dtype)[6:]}.", cause="your generate's token ids are not int64")
    if not torch.equal(out[:, :T], idx):
        fail(MODULE, f"{what}: return torch.cat((idx, new tokens), dim=1).",
             cause="your generate's output does not start with the prompt")


def expect_greedy(out, want, what, likely=(), hint=None, otherwise=None):
    """likely: (sentence, predicate(out) -> bool) pairs naming known mistakes; every one that holds is named.
    otherwise: a cause the test established by other means, named when no known mistake matches.
    hint: what the test isolates, said when no known mistake matches (never a guess)."""
    if torch.equal(out, want):
        return
    first = int((out != want).any(dim=0).nonzero()[0])
    text = (f"{what} differs from greedy decoding from token {first} on: yours {out[:, first:].tolist()}, "
            f"expected {want[:, first:].tolist()}.")
    found = [sentence for sentence, matches in likely if matches(out)] or ([otherwise] if otherwise else [])
    if not found and hint:
        text += f" {hint}"
    fail(MODULE, text, cause="; and ".join(found) or None, looks_like=True)


def greedy_mistakes(model, idx, n, rerun):
    """Known mistakes of greedy generation; rerun() generates again with another generator."""
    return [
        ("the token is chosen from the logits of the first position; the next token comes from the last, "
         "logits[:, -1, :]", lambda out: torch.equal(out, greedy(model, idx, n, position=0))),
        ("the context is cropped to the first block_size tokens; keep the last ones, idx[:, -block_size:]",
         lambda out: torch.equal(out, greedy(model, idx, n, crop="first"))),
        ("greedy via sampling: with temperature 0 the output changes with the generator; pass temperature "
         "on to sample_next_token, which returns the argmax for 0", lambda out: not torch.equal(out, rerun())),
    ]


def test_generate_returns_the_prompt_followed_by_new_tokens():
    model = tiny_gpt()
    idx = randint(61, 3, 4, seed=30)
    for n in (0, 1, 5):
        out = generate(model, idx, n, temperature=1.0, generator=seeded(31))
        check_generated(out, idx, n, f"generate(model, idx (3, 4), max_new_tokens={n})")


def test_generate_does_not_modify_the_prompt():
    model = tiny_gpt()
    idx = randint(61, 2, 4, seed=32)
    before = idx.clone()
    generate(model, idx, 3, generator=seeded(33))
    if not torch.equal(idx, before):
        fail(MODULE, "generate(model, idx (2, 4), 3): build the output with torch.cat, a new tensor.",
             cause="your generate modified the prompt idx in place")


def test_generate_greedy_matches_a_written_out_loop():
    model = tiny_gpt(seed=1)
    idx = randint(61, 3, 5, seed=34)
    out = generate(model, idx, 6, temperature=0.0, generator=seeded(35))
    check_generated(out, idx, 6, "generate(temperature=0)")
    rerun = lambda: generate(model, idx, 6, temperature=0.0, generator=seeded(36))  # noqa: E731
    expect_greedy(out, greedy(model, idx, 6), "generate(model, idx (3, 5), 6, temperature=0)",
                  likely=greedy_mistakes(model, idx, 6, rerun))


@pytest.mark.parametrize("prompt_length,max_new_tokens", [(12, 10), (20, 4)], ids=["grows-past", "starts-past"])
def test_generate_crops_the_context_to_block_size(prompt_length, max_new_tokens):
    model = tiny_gpt(seed=2)  # block_size 16, learned positions: a longer context cannot even be embedded
    idx = randint(61, 2, prompt_length, seed=37)
    out = generate(model, idx, max_new_tokens, temperature=0.0)
    check_generated(out, idx, max_new_tokens, f"generate(idx (2, {prompt_length}), {max_new_tokens}, temperature=0)")
    rerun = lambda: generate(model, idx, max_new_tokens, temperature=0.0, generator=seeded(38))  # noqa: E731
    expect_greedy(out, greedy(model, idx, max_new_tokens),
                  f"generate with a {prompt_length}-token prompt, {max_new_tokens} new tokens and block_size 16",
                  likely=greedy_mistakes(model, idx, max_new_tokens, rerun))


@pytest.mark.parametrize("settings", [dict(top_k=1), dict(top_p=0.01)], ids=settings_text)
def test_generate_passes_top_k_and_top_p_on(settings):
    # top_k = 1, or a top_p below every largest probability, leaves one token: the argmax.
    model = tiny_gpt(seed=3)
    idx = randint(61, 3, 4, seed=39)
    out = generate(model, idx, 5, temperature=1.0, generator=seeded(40), **settings)
    check_generated(out, idx, 5, f"generate({settings_text(settings)})")
    name = next(iter(settings))
    want = greedy(model, idx, 5)
    otherwise = None
    if not torch.equal(out, want):
        # If your generate(temperature=0) is greedy and your sample_next_token with this setting alone keeps only
        # the argmax, then generate is not passing the setting on.
        logits = randn(200, 61, seed=41, scale=2.0)
        alone = call(mine().sample_next_token, logits, temperature=1.0, generator=seeded(41), **settings)
        sampler_greedy = isinstance(alone, torch.Tensor) and torch.equal(alone, logits.argmax(dim=-1, keepdim=True))
        if sampler_greedy and torch.equal(generate(model, idx, 5, temperature=0.0), want):
            otherwise = (f"{name} is not passed on to sample_next_token: generate(temperature=0) is greedy and your "
                         f"sample_next_token({settings_text(settings)}) alone keeps only the argmax, but "
                         f"generate(temperature=1, {settings_text(settings)}) draws other tokens")
    expect_greedy(out, want, f"generate(temperature=1, {settings_text(settings)})",
                  likely=[greedy_mistakes(model, idx, 5, None)[0]], otherwise=otherwise,
                  hint=f"With {settings_text(settings)} only the most likely token can be drawn.")


class FixedLogits(nn.Module):
    """A stand-in model over V = 8 tokens whose last position always gives the logits ROWS[0] and every
    other position ROWS[1]; generate only needs model(idx) -> (logits, loss) and model.config."""

    def __init__(self):
        super().__init__()
        self.config = small_config(vocab_size=V, block_size=16)
        self.unused = nn.Parameter(torch.zeros(1))  # for code that asks the model for its device

    def forward(self, idx, targets=None, kv_cache=None):
        B, T = idx.shape
        logits = ROWS[1].expand(B, T, V).clone()
        logits[:, -1] = ROWS[0]
        return logits, None


def test_generate_samples_the_next_token_with_temperature_and_top_k():
    n = 2 * N
    idx = torch.zeros(n, 3, dtype=torch.long)
    settings = dict(temperature=0.5, top_k=5)
    out = generate(FixedLogits(), idx, 1, generator=seeded(42), **settings)
    check_generated(out, idx, 1, f"generate(idx ({n}, 3), 1, {settings_text(settings)})")
    counts = torch.bincount(out[:, -1], minlength=V).double()[None]
    problem = problems(counts, n, expected_probs(ROWS[0], **settings)[None])
    if problem is None:
        return
    text = (f"generate(..., max_new_tokens=1, {settings_text(settings)}) with the last position's logits "
            f"{rows_text(ROWS[:1])[1:-1]}: the new token's distribution is off: {problem}.")
    candidates = [
        ("the temperature is not passed on to sample_next_token", expected_probs(ROWS[0], top_k=5)),
        ("top_k is not passed on to sample_next_token", expected_probs(ROWS[0], temperature=0.5)),
        ("the temperature is applied twice (in generate and again in sample_next_token)",
         expected_probs(ROWS[0], temperature=0.25, top_k=5)),
        ("the token is drawn from the logits of the first position; it comes from the last, logits[:, -1, :]",
         expected_probs(ROWS[1], **settings)),
    ]
    sampler = sampler_problem(settings, n)
    if sampler:
        fail(MODULE, text, cause=sampler)
    found = [sentence for sentence, probs in candidates if problems(counts, n, probs[None]) is None]
    fail(MODULE, text, cause="; or ".join(found) or None, looks_like=True)


def sampler_problem(settings, n):
    """If your sample_next_token alone, with these settings on ROWS[0], is off: the sentence saying so (with its
    known mistake when one matches); None when it is right, so that what remains is generate's own part."""
    logits = ROWS[:1].repeat_interleave(n, dim=0)
    out = call(mine().sample_next_token, logits, generator=seeded(46), **settings)
    counts = torch.bincount(out[:, 0], minlength=V).double()[None]
    if problems(counts, n, expected_probs(ROWS[0], **settings)[None]) is None:
        return None
    mistake = matching_mistakes(counts, settings, rows=ROWS[:1], n=n)
    return (f"your sample_next_token({settings_text(settings)}) alone is off on these logits"
            + (f": {mistake}" if mistake else " (its own tests say how)"))


def test_generate_defaults_sample_at_temperature_1():
    # generate(model, idx, 1, generator=...) with temperature, top_k and top_p left at their defaults
    # (1.0, None, None): the new token follows softmax(ROWS[0]).
    n = 2 * N
    idx = torch.zeros(n, 3, dtype=torch.long)
    out = generate(FixedLogits(), idx, 1, generator=seeded(45))
    check_generated(out, idx, 1, f"generate(idx ({n}, 3), 1)")
    counts = torch.bincount(out[:, -1], minlength=V).double()[None]
    problem = problems(counts, n, expected_probs(ROWS[0])[None])
    if problem is None:
        return
    greedy_only = counts[0, int(ROWS[0].argmax())] == n
    fail(MODULE, f"generate(..., max_new_tokens=1) with its defaults and the last position's logits "
                 f"{rows_text(ROWS[:1])[1:-1]}: the new token's distribution is off: {problem}.",
         cause=sampler_problem({}, n) or (
             "your generate's default temperature is not 1.0: it decodes greedily" if greedy_only else None))


def test_generate_same_generator_seed_gives_same_tokens():
    model = tiny_gpt(seed=5)
    idx = randint(61, 4, 3, seed=43)
    first = generate(model, idx, 6, temperature=1.0, generator=seeded(44))
    second = generate(model, idx, 6, temperature=1.0, generator=seeded(44))
    check_generated(first, idx, 6, "generate")
    if not torch.equal(first, second):
        fail(MODULE, "generate(model, idx (4, 3), 6, temperature=1.0) twice, with generators seeded 44: the tokens "
                     "differ.", cause="your generate does not pass its generator on to sample_next_token")


class Spy(nn.Module):
    """Wraps a GPT and records, at every forward, whether it ran in train mode and with gradients."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config
        self.calls = []

    def forward(self, idx, targets=None, kv_cache=None):
        self.calls.append(dict(training=self.training, grad=torch.is_grad_enabled(), length=idx.size(1)))
        return self.model(idx, targets)


def test_generate_runs_without_gradients():
    spy = Spy(tiny_gpt(seed=6))
    idx = randint(61, 2, 3, seed=45)
    out = generate(spy, idx, 3, temperature=0.0)
    check_generated(out, idx, 3, "generate")
    if not spy.calls:
        fail(MODULE, "generate(model, idx (2, 3), 3, temperature=0): logits, _ = model(context).",
             cause="your generate never called the model")
    if any(c["grad"] for c in spy.calls):
        fail(MODULE, "generate(model, idx (2, 3), 3, temperature=0): generation needs no backward pass, and the "
                     "graph costs memory.",
             cause="your generate ran the model with gradients enabled: wrap the loop in torch.no_grad()")


def test_generate_runs_in_eval_mode():
    """A model in train mode with dropout 0.5 still decodes greedily as in eval mode."""
    model = tiny_gpt(seed=7, dropout=0.5)
    idx = randint(61, 3, 4, seed=46)
    want = greedy(model.eval(), idx, 6)
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)  # dropout draws from the global generator: keep the test repeatable
        out = generate(model, idx, 6, temperature=0.0)
    check_generated(out, idx, 6, "generate")
    if torch.equal(out, want):
        return
    if not torch.equal(generate(model.eval(), idx, 6, temperature=0.0), want):
        fail(MODULE, "generate(temperature=0) is not greedy even on a model in eval mode "
                     "(test_generate_greedy_matches_a_written_out_loop says how), so this test cannot tell whether "
                     "it switches a model in train mode to eval mode.")
    # your generate is greedy on a model in eval mode, but not on one in train mode: dropout was on
    fail(MODULE, f"generate(model in train mode with dropout 0.5, idx (3, 4), 6, temperature=0) gave "
                 f"{out[:, 4:].tolist()}, greedy decoding in eval mode {want[:, 4:].tolist()}: call model.eval() "
                 f"before generating, and restore the model's mode afterwards.",
         cause="your generate ran the model with dropout on: call model.eval() before generating")


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_generate_restores_the_models_mode(mode):
    model = tiny_gpt(seed=8)
    model.train(mode == "train")
    idx = randint(61, 2, 3, seed=47)
    generate(model, idx, 2, temperature=0.0)
    wrong = [name or "the model" for name, m in model.named_modules() if m.training != (mode == "train")]
    if wrong:
        if mode == "train":
            fail(MODULE, "generate(model in train mode, idx (2, 3), 2, temperature=0): save was_training = "
                         "model.training first and call model.train(was_training) at the end.",
                 cause="your generate left a model that was in train mode in eval mode (not restoring train mode)")
        fail(MODULE, "generate(model in eval mode, idx (2, 3), 2, temperature=0): restore the saved mode, "
                     "model.train(was_training), rather than calling model.train().",
             cause="your generate put a model that was in eval mode into train mode")


@pytest.mark.hf
def test_generate_greedy_matches_hugging_face():
    tiny = tiny_gpt()
    generate(tiny, randint(61, 1, 2, seed=48), 1, temperature=0.0)  # an unwritten generate stops here, before the slow import
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=61, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(9)
        hf = GPT2LMHeadModel(config)
    hf = perturb_parameters(hf, seed=9, scale=0.3).eval()
    model = reference("gpt").GPT.from_hf(hf)
    idx = randint(61, 2, 5, seed=49)
    with torch.no_grad():
        want = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=10, do_sample=False)
    out = generate(model, idx, 10, temperature=0.0)
    check_generated(out, idx, 10, "generate")
    expect_greedy(out, want, "generate(temperature=0) vs Hugging Face generate(do_sample=False)",
                  likely=greedy_mistakes(model, idx, 10, lambda: generate(model, idx, 10, temperature=0.0,
                                                                           generator=seeded(50))))
