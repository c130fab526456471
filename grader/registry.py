"""The one registry of exercises: id, title, module, test file, dependencies, points, hints.

Tests, the grader, the exercise generator and the docs all read this list;
nothing else repeats it. Importing it is cheap (no torch).
"""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Exercise:
    id: str  # "03": the course order and the test file's number
    name: str  # "attention": the module in exercises/ and solutions/ (None-like "end_to_end" for 99)
    title: str
    depends: tuple[str, ...]  # ids whose learner code this one's tests run (directly): imported or driven
    points: int
    hints: tuple[str, ...]  # from a nudge to a near-answer; never the code
    has_module: bool = True

    @property
    def label(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def module(self) -> str | None:
        return self.name if self.has_module else None

    @property
    def test_file(self) -> str:
        return f"tests/test_{self.id}_{self.name}.py"

    @property
    def exercise_file(self) -> str | None:
        return f"exercises/{self.name}.py" if self.has_module else None


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "01", "norms", "LayerNorm and RMSNorm", (), 5,
        (
            "Both norms work on the last dimension only: every (..., C) vector is normalised on its own. "
            "Reduce with dim=-1 and keepdim=True so the result broadcasts back against x.",
            "LayerNorm's variance is the biased one: mean((x - mean)²), dividing by C. torch.var divides by "
            "C - 1 unless you ask otherwise. eps goes inside the square root.",
            "Precision: convert x to float32 first (leave float64 alone), do all the arithmetic there, and "
            "convert the result back to x's dtype at the very end. A float16 value of 300 squared is 90000, "
            "above float16's maximum of 65504.",
            "The modules only hold parameters: weight = nn.Parameter(torch.ones(ndim)), bias likewise with "
            "zeros (or None), and forward calls your function with them.",
        ),
    ),
    Exercise(
        "02", "rotary", "Rotary position embeddings", (), 5,
        (
            "rotary_cos_sin builds a (T, head_dim/2) table of angles pos * theta_i, theta_i = base^(-2i/head_dim), "
            "and repeats it twice along the last dim so that channel j and channel j + head_dim/2 share an angle.",
            "torch.arange(0, head_dim, 2) / head_dim gives the exponents 2i/head_dim; torch.outer(positions, "
            "inv_freq) gives the angles. Work in float32.",
            "rotate_half pairs the first half of the channels with the second half (the Llama layout), not "
            "neighbouring channels (the original paper's interleaved layout): cat(-x2, x1).",
            "apply_rotary is one line; cos and sin of shape (T, head_dim) broadcast against (B, H, T, head_dim). "
            "Cast them to x's dtype so a bfloat16 x stays bfloat16.",
        ),
    ),
    Exercise(
        "03", "attention", "Causal self-attention", ("01", "02"), 15,
        (
            "Shapes first: q @ k.transpose(-2, -1) is (B, H, Tq, Tk). Softmax runs over the keys, the last dim. "
            "Divide the scores by sqrt(D) before the softmax, D = q.size(-1).",
            "The mask: query i is at position Tk - Tq + i. torch.ones(Tq, Tk).tril(diagonal=Tk - Tq) marks what "
            "it may see; masked_fill the rest with float('-inf'). With Tq == Tk that is the usual lower triangle.",
            "In the module, c_attn(x) has (n_head + 2 * n_kv_head) * head_dim channels: split them as q, k, v "
            "(q first), view each as (B, T, heads, head_dim) and transpose(1, 2) to (B, heads, T, head_dim).",
            "After attention, transpose(1, 2) back to (B, T, H, D) before the view to (B, T, C): viewing "
            "(B, H, T, D) directly as (B, T, C) scrambles positions and heads. repeat_kv is "
            "torch.repeat_interleave along dim 1, so kv head j serves query heads j*n_rep .. (j+1)*n_rep - 1.",
        ),
    ),
    Exercise(
        "04", "mlp", "The feed-forward network", (), 5,
        (
            "gelu_tanh is the formula in the docstring, written with torch.tanh and torch.pow; math.sqrt(2 / math.pi) "
            "is a plain float.",
            "relu_squared squares after the relu: negative inputs give 0, not x².",
            "For swiglu, c_fc produces 2 * hidden channels. Split them in two halves along the last dim: the first "
            "is the gate, the second is up; the result is silu(gate) * up, with hidden channels.",
            "c_fc maps n_embd -> hidden (config.mlp_hidden, or twice that for swiglu) and c_proj maps hidden -> "
            "n_embd, both with bias=config.bias.",
        ),
    ),
    Exercise(
        "05", "block", "The transformer block", ("01", "03", "04"), 5,
        (
            "A pre-norm block normalises the input of each sub-layer, not its output.",
            "Two residual connections: the attention output is added to x, then the MLP output is added to the "
            "new x. Without them a deep stack barely trains.",
            "x = x + self.attn(self.ln_1(x), rotary=rotary, kv_cache=kv_cache); then the same with ln_2 and mlp. "
            "make_norm(config) builds ln_1 and ln_2.",
        ),
    ),
    Exercise(
        "06", "gpt", "The GPT model and loading GPT-2", ("01", "02", "05"), 20,
        (
            "Follow Hugging Face's names exactly (transformer.wte, .wpe, .h, .ln_f, lm_head): then GPT-2's state "
            "dict lines up with yours key for key. Tie with self.lm_head.weight = self.transformer.wte.weight.",
            "forward: positions are torch.arange(T) on idx's device; with rope, compute rotary_cos_sin(T, head_dim, "
            "rope_base) once and hand it to every block. Cross-entropy wants (B*T, V) logits and (B*T,) targets.",
            "init_weights: loop over self.modules(); Linear and Embedding weights get normal(0, 0.02), then "
            "overwrite each block's attn.c_proj and mlp.c_proj weights with std 0.02 / sqrt(2 * n_layer).",
            "from_hf for GPT-2: c_attn, c_proj and c_fc are Conv1D layers there, stored (in, out); transpose those "
            "weights. For Llama, torch.cat the q, k, v weights (dim 0) into c_attn and gate, up into c_fc.",
        ),
    ),
    Exercise(
        "07", "optim", "AdamW and the learning-rate schedule", (), 10,
        (
            "Keep per-parameter state in self.state[p]: a step counter and two zero tensors, the running means "
            "of the gradient and of its square. Do everything under torch.no_grad() (step is decorated already).",
            "Weight decay in AdamW is decoupled: p.mul_(1 - lr * weight_decay) before the Adam update, not "
            "weight_decay * p added to the gradient (that is Adam with L2, and it behaves differently).",
            "Bias correction divides m by (1 - beta1^t) and v by (1 - beta2^t), t counting from 1. Without it the "
            "first steps are far too small.",
            "param_groups: model.parameters() yields a tied Parameter once; decay p.dim() >= 2, not the rest. "
            "lr_at: warmup max_lr * (step + 1) / warmup_steps, then the cosine, then min_lr.",
        ),
    ),
    Exercise(
        "08", "train", "The training step", (), 10,
        (
            "get_batch: torch.randint(len(data) - block_size, (batch_size,), generator=generator) gives every "
            "valid start. y is the same window moved one token to the right.",
            "clip_grad_norm: the global norm is the norm of the vector of per-parameter norms. Scale by "
            "max_norm / (total + 1e-6) only when that is below 1, and return the norm from before scaling.",
            "train_step: the loss of each micro-batch is a mean over its tokens, so backward on loss / "
            "len(micro_batches); clip once, after all the micro-batches, then set the lr and step.",
            "estimate_loss: save model.training, call model.eval(), run under torch.no_grad(), then "
            "model.train(saved) so a model that was in eval mode stays there.",
        ),
    ),
    Exercise(
        "09", "generate", "Sampling and generation", (), 10,
        (
            "Temperature divides the logits before the softmax; temperature 0 means argmax, with no division.",
            "top-k: torch.topk(logits, k).values[:, -1:] is the k-th largest per row; set everything below it "
            "to -inf. Work on a new tensor (logits / temperature already is one), never in place on the input.",
            "top-p: sort the probabilities in descending order and take the cumulative sum. A token stays if "
            "the mass *before* it is below p, so the token that crosses p stays; map back with scatter.",
            "generate: in eval mode and torch.no_grad(), loop max_new_tokens times: crop idx to the last "
            "block_size tokens, take the logits of the last position, sample, torch.cat onto idx.",
        ),
    ),
    Exercise(
        "10", "kv_cache", "The KV cache: fast generation", ("03", "06", "09"), 10,
        (
            "Generating one token at a time recomputes the keys and values of every earlier token, in every "
            "layer, at every step. Keep them instead: per layer, the cache holds the (rotated) keys and the values "
            "of every position seen so far, and each forward computes only the new tokens'.",
            "KVCache: allocate each layer's key and value buffers once, zeros of (batch, kv heads, max_len, "
            "head_dim). update writes the T new positions into the time slice that starts at pos (in place, cast "
            "to the buffer's dtype) and returns everything up to pos + T. Only advance(T) moves pos.",
            "Positions: with a cache, token i of idx sits at position cache.pos + i, for wpe (torch.arange(pos, "
            "pos + T)) and for rope (the last T rows of rotary_cos_sin(pos + T, ...)). In attention, update the "
            "cache after rope and qk-norm and before repeat_kv; causal_attention already puts Tq < Tk queries at "
            "the end.",
            "GPT.forward: pos = kv_cache.pos, ValueError if pos + T > block_size, the blocks, then "
            "kv_cache.advance(T) once. generate(use_cache=True): KVCache(n_layer, B, block_size, n_kv_head, "
            "head_dim) in the parameters' dtype and device; each step feed only what is not cached yet (the "
            "prompt first, then idx[:, -1:]); when pos reaches block_size, reset() and feed idx[:, -block_size:].",
        ),
    ),
    Exercise(
        "11", "bpe", "Byte-pair encoding: training and tokenizing", (), 15,
        (
            "Work on bytes, never on characters: text.encode(\"utf-8\"), and a token is a bytes object. Cut the "
            "special tokens out first, then split each other part with the given pattern (PRETOKEN.findall); "
            "nothing ever merges across the pieces.",
            "Training: count every adjacent pair inside each distinct pre-token (b\"aaa\" holds (a, a) twice), "
            "times how often that pre-token occurs. The winner is max(count), and among equal counts the "
            "greater (left bytes, right bytes) tuple. Replace it left to right: b\"aaa\" becomes [aa, a]. "
            "Merge k gets id 256 + k; the special tokens come after the merges.",
            "Encoding is not training: within a pre-token, merge the adjacent pair whose concatenation left + "
            "right has the lowest id in the vocab (the leftmost of equals), and repeat until no concatenation "
            "is a token. Look the whole pre-token up first: if its bytes are a token, that is its one id.",
            "Special tokens: one regex alternation of regex.escape(s) for s in the tokens sorted longest first, "
            "in a capturing group, so that regex.split keeps them. decode: b\"\".join(vocab[i] for i in ids)"
            ".decode(\"utf-8\", errors=\"replace\").",
            "encode_iterable: keep a buffer; after each chunk, hold back its last (longest special - 1) "
            "characters and the last two pre-tokens of the ordinary text before them (\"we'l\" + \"l\" is "
            "\"'ll\"), yield the ids of the pieces before them, and keep the rest. Speed: count pairs once and "
            "update only the pre-tokens that hold the merged pair; cache each pre-token's ids.",
        ),
    ),
    Exercise(
        "12", "muon", "The Muon optimizer", ("08",), 15,
        (
            "Muon steps along an orthogonalised momentum: every singular value of the update pushed towards 1. "
            "newton_schulz does that with matrix products only; Muon.step is SGD with momentum around it. Make "
            "newton_schulz pass first: the Muon tests build on it.",
            "newton_schulz: normalise before iterating (X = G / (G.norm() + eps), after X = G.to(dtype)), and "
            "transpose a tall G (rows > cols) so that A = X @ X.mT is the small Gram matrix; undo the transpose "
            "at the end and return .to(G.dtype). Don't expect singular values of exactly 1.",
            "The momentum is torch's lerp form: buf.lerp_(grad, 1 - momentum), updated before it is used; with "
            "Nesterov the update is grad.lerp(buf, momentum), a new tensor (leave p.grad alone), else buf itself. "
            "Decay first with the plain lr, p.mul_(1 - lr * weight_decay); only the update's lr is scaled.",
            "muon_update ends with p.add_(newton_schulz(update, steps=ns_steps, dtype=ns_dtype), alpha=-lr * "
            "math.sqrt(max(1, rows / cols))). configure_muon: Muon group = [p for name, p in "
            "model.named_parameters() if name.startswith('transformer.h.') and p.dim() == 2]; everything else "
            "(embeddings, lm_head, norms, biases) goes to AdamW; both groups get use_muon, lr and initial_lr.",
        ),
    ),
    Exercise(
        "13", "checkpoint", "Checkpoints and exact resume", ("07", "08", "12"), 10,
        (
            "A resumed run must go on as if it had never stopped. List what decides the next step: the weights, "
            "the optimizer's moments, the step (for the schedule), the random numbers dropout draws, the batches. "
            "Every one of them goes into the file; the batch generator's state travels in extra.",
            "Never write over the checkpoint you have: torch.save into a temporary file beside it (the same "
            "folder), then os.replace(tmp, path), which swaps the file in one atomic step. On any exception "
            "(except BaseException), delete the temporary file and raise again.",
            "torch.get_rng_state() is the generator's whole state, a uint8 tensor; torch.initial_seed() only says "
            "where it started. Restore with torch.set_rng_state(state.cpu()), and the CUDA states with "
            "torch.cuda.get_rng_state_all / set_rng_state_all when torch.cuda.is_available().",
            "Loading: torch.load(path, map_location=map_location, weights_only=True), so the config is stored as "
            "dataclasses.asdict(config). Walk dataclasses.fields(model.config) in order, skip dropout, and raise "
            "ValueError naming the first field that differs. While a key starts with '_orig_mod.' or 'module.', "
            "drop that prefix; then model.load_state_dict and optimizer.load_state_dict.",
        ),
    ),
    Exercise(
        "14", "speed", "Faster training: flash attention, bf16, compile, padded vocabulary", ("06",), 10,
        (
            "Every function here must give what it replaces: flash_attention what 03's causal_attention gives, "
            "the padded GPT the loss and samples of an unpadded one. Only the speed may change.",
            "flash_attention: F.scaled_dot_product_attention(q, k, v, is_causal=True) is right only when Tq == Tk. "
            "is_causal aligns its mask top-left, so with Tq < Tk (a cached decoding step) query i would see keys "
            "0 .. i. For Tq < Tk pass attn_mask: a boolean (Tq, Tk) mask, True where the query may look.",
            "padded_vocab rounds vocab_size up to the next multiple, in integers. The padded GPT builds your GPT "
            "from a copy of the config with the padded vocab_size, keeps the real config as its .config, and "
            "cuts the logits back to the real vocabulary before taking the loss on them.",
            "autocast: torch.device(device).type gives 'cuda' for 'cuda:1'; return torch.autocast(device_type=..., "
            "dtype=torch.bfloat16) for 'cuda' and 'cpu', contextlib.nullcontext() otherwise. compiled: try "
            "torch.compile(model) and one forward under torch.no_grad() on a (1, 1) batch of token ids; on any "
            "exception print one line to sys.stderr and return the model itself.",
        ),
    ),
    Exercise(
        "99", "end_to_end", "Train your GPT end to end", ("06", "07", "08", "09"), 15,
        (
            "This test uses everything: your GPT, your AdamW, your train_step and your generate. Make 01-09 pass "
            "first; their messages are much more precise than this one's.",
            "If the loss falls far below the corpus's entropy, a token can see the future: check the mask "
            "direction in causal_attention and that targets are not the inputs themselves.",
            "If the loss stays near ln(vocab), nothing learns: check that train_step calls backward and "
            "optimizer.step(), that AdamW changes the parameters, and the init scale.",
        ),
        has_module=False,
    ),
)

BY_ID = {ex.id: ex for ex in EXERCISES}
BY_NAME = {ex.name: ex for ex in EXERCISES}
MODULE_EXERCISES = tuple(ex for ex in EXERCISES if ex.has_module)


def find(key: str) -> Exercise:
    """An exercise by id ("3", "03") or name ("attention"); ValueError with a sentence otherwise."""
    key = str(key).strip().lower()
    if key.isdigit():
        key = key.zfill(2)
    ex = BY_ID.get(key) or BY_NAME.get(key)
    if ex is None:
        known = ", ".join(e.id for e in EXERCISES)
        raise ValueError(f"There is no exercise {key!r}; the exercises are {known}.")
    return ex


def for_module(module: str) -> Exercise:
    """The exercise whose module is solutions/<module>.py or exercises/<module>.py."""
    return BY_NAME[module]


def dependencies(ex: Exercise, swapped=()) -> list[Exercise]:
    """Every exercise whose learner code ex runs, directly or not, in course order.

    swapped: exercises whose reference stands in (grader/swaps.py). A swapped module brings the
    reference's own modules with it, so the search stops there: it is listed, its own
    dependencies are not (unless another path reaches them).
    """
    seen: set[str] = set()
    stack = list(ex.depends)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            if BY_ID[dep] not in swapped:
                stack.extend(BY_ID[dep].depends)
    return [e for e in EXERCISES if e.id in seen]
