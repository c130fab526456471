"""Mistakes learners make in 04 mlp."""

from . import Mutant

GELU = "return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))"

MUTANTS = [
    Mutant(
        "04-erf-gelu", "mlp",
        "gelu_tanh is the exact GELU with erf (PyTorch's default), not GPT-2's tanh approximation.",
        ((GELU, "return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"),),
        ("exact (erf) gelu", "tanh approximation"),
    ),
    Mutant(
        "04-gelu-builtin", "mlp",
        "gelu_tanh calls the off-limits built-in F.gelu(x, approximate='tanh').",
        ((GELU, 'return F.gelu(x, approximate="tanh")'),),
        ("off limits",),
    ),
    Mutant(
        "04-gelu-no-half", "mlp",
        "gelu_tanh forgets the factor 0.5.",
        ((GELU, "return x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))"),),
        ("0.5",),
    ),
    Mutant(
        "04-gelu-square-not-cube", "mlp",
        "gelu_tanh uses x² in the cubic term.",
        (("torch.pow(x, 3.0)", "torch.pow(x, 2.0)"),),
        ("x³",),
    ),
    Mutant(
        "04-gelu-sqrt-2pi", "mlp",
        "gelu_tanh uses sqrt(2 * pi) for sqrt(2 / pi).",
        (("math.sqrt(2.0 / math.pi)", "math.sqrt(2.0 * math.pi)"),),
        ("sqrt(2 * pi)",),
    ),
    Mutant(
        "04-relu2-no-relu", "mlp",
        "relu_squared squares x without the relu.",
        (("return F.relu(x).square()", "return x.square()"),),
        ("without the relu",),
    ),
    Mutant(
        "04-relu2-not-squared", "mlp",
        "relu_squared is a plain relu.",
        (("return F.relu(x).square()", "return F.relu(x)"),),
        ("plain relu",),
    ),
    Mutant(
        "04-relu2-in-place", "mlp",
        "relu_squared uses an in-place relu, which overwrites the caller's tensor.",
        (("return F.relu(x).square()", "return F.relu(x, inplace=True).square()"),),
        ("in place",),
    ),
    Mutant(
        "04-swiglu-swapped-halves", "mlp",
        "swiglu takes (up, gate) from chunk: silu lands on the second half.",
        (("gate, up = h.chunk(2, dim=-1)", "up, gate = h.chunk(2, dim=-1)"),),
        ("swapped",),
    ),
    Mutant(
        "04-swiglu-no-silu", "mlp",
        "swiglu multiplies the halves without silu.",
        (("h = F.silu(gate) * up", "h = gate * up"),),
        ("silu is missing",),
    ),
    Mutant(
        "04-swiglu-interleaved", "mlp",
        "swiglu splits c_fc's output into even and odd channels instead of halves.",
        (("gate, up = h.chunk(2, dim=-1)", "gate, up = h[..., 0::2], h[..., 1::2]"),),
        ("even and odd",),
    ),
    Mutant(
        "04-swiglu-fc-not-doubled", "mlp",
        "c_fc has mlp_hidden outputs for swiglu too, so the halves are half as wide.",
        (('fc_out = 2 * config.mlp_hidden if config.mlp == "swiglu" else config.mlp_hidden',
          "fc_out = config.mlp_hidden"),),
        ("2 * mlp_hidden",),
    ),
    Mutant(
        "04-hidden-ignores-config", "mlp",
        "the hidden size is hard-coded as 4 * n_embd, ignoring config.mlp_hidden.",
        (('fc_out = 2 * config.mlp_hidden if config.mlp == "swiglu" else config.mlp_hidden\n'
          "        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)\n"
          "        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)",
          'fc_out = 8 * config.n_embd if config.mlp == "swiglu" else 4 * config.n_embd\n'
          "        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)\n"
          "        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)"),),
        ("config.mlp_hidden",),
    ),
    Mutant(
        "04-proj-always-bias", "mlp",
        "c_proj keeps nn.Linear's default bias=True whatever config.bias says.",
        (("self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)",
          "self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd)"),),
        ("bias=false",),
    ),
    Mutant(
        "04-relu2-config-uses-gelu", "mlp",
        "forward ignores config.mlp == 'relu2' and applies gelu_tanh.",
        (('elif self.kind == "relu2":', 'elif self.kind == "relu²":'),),
        ("gelu mlp", "config.mlp"),
    ),
]
