"""Mistakes learners make in 09 generate.

generate.py also holds exercise 10's cached loop, whose lines repeat some of 09's at a deeper
indentation: the finds below start with a newline and 09's indentation, so they hit 09's loop only.
"""

from . import Mutant

TEMPERATURE = "logits = logits.float() / temperature"
TOP_K = "logits = logits.masked_fill(logits < kth_largest, float(\"-inf\"))"
NUCLEUS = "drop_sorted = mass_before >= top_p  # p is already reached without this token"
SCATTER = "drop = drop_sorted.scatter(-1, order, drop_sorted)"
DRAW = "return torch.multinomial(probs, num_samples=1, generator=generator)"
STEP = "\n                next_token = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)"

MUTANTS = [
    Mutant(
        "09-temperature-after-softmax", "generate",
        "the temperature divides the probabilities after the softmax, which changes nothing once normalised.",
        ((TEMPERATURE, "logits = logits.float()"),
         ("probs = F.softmax(logits, dim=-1)\n    return", "probs = F.softmax(logits, dim=-1) / temperature\n    return")),
        ("temperature has no effect",),
    ),
    Mutant(
        "09-temperature-multiplied", "generate",
        "the logits are multiplied by the temperature.",
        ((TEMPERATURE, "logits = logits.float() * temperature"),),
        ("multiplied by the temperature",),
    ),
    Mutant(
        "09-top-k-minus-one", "generate",
        "top-k masks logits <= the k-th largest, keeping k - 1 tokens.",
        ((TOP_K, "logits = logits.masked_fill(logits <= kth_largest, float(\"-inf\"))"),),
        ("k - 1", "off by one"),
    ),
    Mutant(
        "09-top-k-plus-one", "generate",
        "top-k takes the (k+1)-th largest as its threshold, keeping k + 1 tokens.",
        (("kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]",
          "kth_largest = torch.topk(logits, min(top_k + 1, vocab_size), dim=-1).values[:, -1:]"),),
        ("k + 1", "off by one"),
    ),
    Mutant(
        "09-top-k-zero-not-all", "generate",
        "top_k = 0 is passed to torch.topk instead of meaning 'keep everything'.",
        (("if top_k is not None and 0 < top_k < vocab_size:", "if top_k is not None and top_k < vocab_size:"),),
        ("top_k none, 0 or >= v",),
    ),
    Mutant(
        "09-top-k-at-least-v-crashes", "generate",
        "top_k >= V is passed to torch.topk, which refuses k > V.",
        (("if top_k is not None and 0 < top_k < vocab_size:", "if top_k:"),),
        ("top_k none, 0 or >= v",),
    ),
    Mutant(
        "09-nucleus-drops-crossing", "generate",
        "the nucleus keeps only tokens whose cumulative probability stays within p, dropping the one that crosses it.",
        ((NUCLEUS, "drop_sorted = sorted_probs.cumsum(dim=-1) > top_p"),),
        ("drops the token that crosses p",),
    ),
    Mutant(
        "09-nucleus-unsorted", "generate",
        "top-p takes the cumulative sum of the probabilities in vocabulary order.",
        (("sorted_probs, order = F.softmax(logits, dim=-1).sort(dim=-1, descending=True)",
          "sorted_probs = F.softmax(logits, dim=-1)\n"
          "        order = torch.arange(vocab_size).expand_as(sorted_probs)"),),
        ("unsorted",),
    ),
    Mutant(
        "09-nucleus-no-scatter", "generate",
        "the top-p mask, computed in sorted order, is applied to the logits without mapping it back.",
        ((SCATTER, "drop = drop_sorted"),),
        ("scatter",),
    ),
    Mutant(
        "09-top-p-before-temperature", "generate",
        "the nucleus is chosen from the untempered probabilities.",
        (("sorted_probs, order = F.softmax(logits, dim=-1).sort(dim=-1, descending=True)",
          "sorted_probs, order = F.softmax(logits * temperature, dim=-1).sort(dim=-1, descending=True)"),),
        ("before the temperature",),
    ),
    Mutant(
        "09-greedy-via-sampling", "generate",
        "temperature 0 is treated as temperature 1: greedy decoding samples.",
        (("if temperature == 0:\n        return logits.argmax(dim=-1, keepdim=True)",
          "if temperature == 0:\n        temperature = 1.0"),),
        ("greedy via sampling",),
    ),
    Mutant(
        "09-logits-in-place", "generate",
        "the logits are divided by the temperature in place (.float() of a float32 tensor is that tensor).",
        ((TEMPERATURE, "logits = logits.float()\n    logits /= temperature"),),
        ("in place",),
    ),
    Mutant(
        "09-generator-ignored", "generate",
        "the draw uses torch's global random generator, ignoring the one passed in.",
        ((DRAW, "return torch.multinomial(probs, num_samples=1)"),),
        ("generator",),
    ),
    Mutant(
        "09-no-crop", "generate",
        "generate feeds the whole sequence to the model, however long.",
        (("context = idx[:, -model.config.block_size :]", "context = idx"),),
        ("no context crop",),
    ),
    Mutant(
        "09-crop-first-tokens", "generate",
        "generate keeps the first block_size tokens instead of the last.",
        (("context = idx[:, -model.config.block_size :]", "context = idx[:, : model.config.block_size]"),),
        ("first block_size",),
    ),
    Mutant(
        "09-first-position", "generate",
        "generate samples from the logits of the first position instead of the last.",
        ((STEP, "\n                next_token = sample_next_token(logits[:, 0, :], temperature, top_k, top_p, generator)"),),
        ("first position",),
    ),
    Mutant(
        "09-temperature-not-passed", "generate",
        "generate calls sample_next_token without the temperature, so greedy generation samples.",
        ((STEP, "\n                next_token = sample_next_token(logits[:, -1, :], top_k=top_k, top_p=top_p, "
                "generator=generator)"),),
        ("temperature",),
    ),
    Mutant(
        "09-not-restoring-train-mode", "generate",
        "generate switches to eval mode and never switches back.",
        (("\n        model.train(was_training)\n", "\n        pass\n"),),
        ("not restoring train mode",),
    ),
    Mutant(
        "09-always-train-after", "generate",
        "generate calls model.train() at the end, whatever the mode was before.",
        (("\n        model.train(was_training)\n", "\n        model.train()\n"),),
        ("eval mode into train mode",),
    ),
    Mutant(
        "09-no-eval", "generate",
        "generate runs the model in whatever mode it is in (dropout stays on in train mode).",
        (("\n    model.eval()\n", "\n"),),
        ("model.eval()",),
    ),
    Mutant(
        "09-with-gradients", "generate",
        "generate builds an autograd graph: no torch.no_grad().",
        (("\n        with torch.no_grad():", "\n        if True:"),),
        ("no_grad",),
    ),
    Mutant(
        "09-nucleus-keeps-one-more", "generate",
        "the top-p mask is shifted once more than needed, keeping the token after the one that crosses p.",
        ((NUCLEUS, "drop_sorted = (mass_before >= top_p).roll(1, dims=-1)"),),
        ("one token more",),
    ),
    Mutant(
        "09-nucleus-ascending", "generate",
        "top-p sorts the probabilities in ascending order (sort's default).",
        (("F.softmax(logits, dim=-1).sort(dim=-1, descending=True)", "F.softmax(logits, dim=-1).sort(dim=-1)"),),
        ("ascending",),
    ),
    Mutant(
        "09-top-p-ignored", "generate",
        "sample_next_token never applies top-p.",
        (("if top_p is not None and top_p < 1.0:", "if False:"),),
        ("top_p is ignored",),
    ),
    Mutant(
        "09-top-p-before-top-k", "generate",
        "the nucleus is chosen from the probabilities before top-k (not renormalised over the k kept tokens).",
        ((TEMPERATURE, TEMPERATURE + "\n    before_top_k = logits"),
         ("sorted_probs, order = F.softmax(logits, dim=-1).sort(", "sorted_probs, order = F.softmax(before_top_k, dim=-1).sort(")),
        ("before top-k",),
    ),
    Mutant(
        "09-top-k-not-passed", "generate",
        "generate calls sample_next_token without top_k.",
        ((STEP, "\n                next_token = sample_next_token(logits[:, -1, :], temperature, top_p=top_p, generator=generator)"),),
        ("top_k is not passed",),
    ),
    Mutant(
        "09-generate-temperature-twice", "generate",
        "generate divides the logits by the temperature and then passes the temperature on as well.",
        ((STEP, "\n                next_token = sample_next_token(logits[:, -1, :] / max(temperature, 1e-8), temperature, top_k, top_p, generator)"),),
        ("applied twice",),
    ),
    Mutant(
        "09-generate-default-greedy", "generate",
        "generate's temperature defaults to 0, so it decodes greedily unless asked to sample.",
        (("def generate(model, idx, max_new_tokens, temperature=1.0,", "def generate(model, idx, max_new_tokens, temperature=0.0,"),),
        ("default temperature",),
    ),
]
