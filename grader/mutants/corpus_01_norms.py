"""Mistakes learners make in 01 norms."""

from . import Mutant

MUTANTS = [
    Mutant(
        "01-unbiased-variance", "norms",
        "layer_norm uses the unbiased variance (divides by C - 1), as torch.var does by default.",
        (("var = (x - mean).pow(2).mean(dim=-1, keepdim=True)", "var = x.var(dim=-1, keepdim=True)"),),
        ("unbiased",),
    ),
    Mutant(
        "01-eps-outside-sqrt", "norms",
        "layer_norm adds eps to the standard deviation instead of the variance.",
        (("y = (x - mean) * torch.rsqrt(var + eps)", "y = (x - mean) / (var.sqrt() + eps)"),),
        ("eps", "inside the square root"),
    ),
    Mutant(
        "01-rms-no-upcast", "norms",
        "rms_norm squares x in its own dtype, so float16 overflows.",
        (("    x = x.to(torch.promote_types(dtype, torch.float32))\n    y = x * torch.rsqrt(x.pow(2)",
          "    y = x * torch.rsqrt(x.pow(2)"),),
        ("float16", "overflow"),
    ),
    Mutant(
        "01-rms-subtracts-mean", "norms",
        "rms_norm centres x like layer_norm.",
        (("y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
          "x = x - x.mean(dim=-1, keepdim=True)\n    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)"),),
        ("mean is subtracted",),
    ),
    Mutant(
        "01-layernorm-forgets-bias", "norms",
        "LayerNorm.forward passes the weight but not the bias.",
        (("return layer_norm(x, self.weight, self.bias, self.eps)", "return layer_norm(x, self.weight, None, self.eps)"),),
        ("bias is not added",),
    ),
    Mutant(
        "01-returns-float32", "norms",
        "layer_norm returns the float32 result instead of x's dtype.",
        (("        y = y + bias\n    return y.to(dtype)", "        y = y + bias\n    return y"),),
        ("dtype",),
    ),
    Mutant(
        "01-norm-over-first-dim", "norms",
        "layer_norm reduces over dim 0 instead of the last dim.",
        (("mean = x.mean(dim=-1, keepdim=True)\n    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)",
          "mean = x.mean(dim=0, keepdim=True)\n    var = (x - mean).pow(2).mean(dim=0, keepdim=True)"),),
        ("first dim",),
    ),
]
