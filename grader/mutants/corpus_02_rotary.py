"""Mistakes learners make in 02 rotary."""

from . import Mutant

MUTANTS = [
    Mutant(
        "02-interleaved-pairs", "rotary",
        "rotate_half pairs neighbouring channels (x[..., ::2], x[..., 1::2]), the RoPE paper's layout, not the halves.",
        (("x1, x2 = x.chunk(2, dim=-1)", "x1, x2 = x[..., ::2], x[..., 1::2]"),),
        ("interleaved", "halves"),
    ),
    Mutant(
        "02-exponent-i-over-d", "rotary",
        "The exponents are i/head_dim for i < head_dim/2 instead of 2i/head_dim.",
        (("torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim",
          "torch.arange(0, head_dim // 2, device=device, dtype=torch.float32) / head_dim"),),
        ("i/head_dim", "2i/head_dim"),
    ),
    Mutant(
        "02-positive-exponent", "rotary",
        "The frequencies are base^(+2i/head_dim): the division by base**exponents is forgotten.",
        (("inv_freq = 1.0 / (base**exponents)", "inv_freq = base**exponents"),),
        ("exponent is negative",),
    ),
    Mutant(
        "02-rotate-half-sign", "rotary",
        "rotate_half puts the minus sign on the wrong half: cat(x2, -x1).",
        (("return torch.cat((-x2, x1), dim=-1)", "return torch.cat((x2, -x1), dim=-1)"),),
        ("sign",),
    ),
    Mutant(
        "02-cos-sin-swapped", "rotary",
        "rotary_cos_sin returns (sin, cos).",
        (("return angles.cos(), angles.sin()", "return angles.sin(), angles.cos()"),),
        ("swapped", "cos first"),
    ),
    Mutant(
        "02-repeat-interleave", "rotary",
        "The angle table is repeated interleaved (repeat_interleave) instead of concatenated with itself.",
        (("angles = torch.cat((angles, angles), dim=-1)", "angles = angles.repeat_interleave(2, dim=-1)"),),
        ("repeated interleaved",),
    ),
    Mutant(
        "02-positions-from-1", "rotary",
        "The positions run 1 .. seq_len instead of 0 .. seq_len - 1.",
        (("positions = torch.arange(seq_len, device=device", "positions = torch.arange(1, seq_len + 1, device=device"),),
        ("start at 1",),
    ),
    Mutant(
        "02-base-ignored", "rotary",
        "The base argument is ignored: 10000 is hard-coded.",
        (("inv_freq = 1.0 / (base**exponents)", "inv_freq = 1.0 / (10000.0**exponents)"),),
        ("base", "ignored"),
    ),
    Mutant(
        "02-apply-minus", "rotary",
        "apply_rotary subtracts the sin term, rotating the wrong way.",
        (("return x * cos + rotate_half(x) * sin", "return x * cos - rotate_half(x) * sin"),),
        ("wrong way",),
    ),
    Mutant(
        "02-apply-no-dtype-cast", "rotary",
        "apply_rotary multiplies by the float32 tables without casting them, so a bfloat16 x comes back float32.",
        (("    cos, sin = cos.to(x.dtype), sin.to(x.dtype)\n", ""),),
        ("cast cos and sin",),
    ),
    Mutant(
        "02-float64-tables", "rotary",
        "The tables are built in float64.",
        (("exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32)",
          "exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float64)"),
         ("positions = torch.arange(seq_len, device=device, dtype=torch.float32)",
          "positions = torch.arange(seq_len, device=device, dtype=torch.float64)")),
        ("float64", "float32"),
    ),
    Mutant(
        "02-device-ignored", "rotary",
        "The tables are always built on the CPU, whatever device is asked for.",
        (("exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32)",
          "exponents = torch.arange(0, head_dim, 2, dtype=torch.float32)"),
         ("positions = torch.arange(seq_len, device=device, dtype=torch.float32)",
          "positions = torch.arange(seq_len, dtype=torch.float32)")),
        ("device",),
    ),
    Mutant(
        "02-angles-not-repeated", "rotary",
        "The (T, head_dim/2) angle table is used as it is, so cos and sin are half as wide as x.",
        (("    angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim)\n", ""),),
        ("not repeated",),
    ),
    Mutant(
        "02-integer-exponents", "rotary",
        "The exponents are computed with integer division, so every frequency is 1.",
        (("exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim",
          "exponents = (torch.arange(0, head_dim, 2, device=device) // head_dim).float()"),),
        ("every frequency is 1",),
    ),
    Mutant(
        "02-apply-cos-sin-swapped", "rotary",
        "apply_rotary multiplies x by sin and rotate_half(x) by cos.",
        (("return x * cos + rotate_half(x) * sin", "return x * sin + rotate_half(x) * cos"),),
        ("swapped in apply_rotary",),
    ),
    Mutant(
        "02-rotate-half-no-minus", "rotary",
        "rotate_half swaps the halves but forgets the minus sign: cat(x2, x1).",
        (("return torch.cat((-x2, x1), dim=-1)", "return torch.cat((x2, x1), dim=-1)"),),
        ("minus sign is missing",),
    ),
    Mutant(
        "02-apply-without-rotate-half", "rotary",
        "apply_rotary multiplies x itself by sin, forgetting rotate_half.",
        (("return x * cos + rotate_half(x) * sin", "return x * cos + x * sin"),),
        ("rotate_half is missing",),
    ),
]
