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
    Mutant(
        "01-rms-mean-abs", "norms",
        "rms_norm takes the mean of |x| where the mean of x² belongs (then the square root).",
        (("y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
          "y = x * torch.rsqrt(x.abs().mean(dim=-1, keepdim=True) + eps)"),),
        ("mean of |x|",),
    ),
    Mutant(
        "01-rms-mean-abs-no-sqrt", "norms",
        "rms_norm divides x by its mean absolute value, with no square root.",
        (("y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
          "y = x / (x.abs().mean(dim=-1, keepdim=True) + eps)"),),
        ("divided by mean(|x|)",),
    ),
    Mutant(
        "01-rms-over-first-dim", "norms",
        "rms_norm takes the mean of x² over dim 0 instead of the last dim.",
        (("y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
          "y = x * torch.rsqrt(x.pow(2).mean(dim=0, keepdim=True) + eps)"),),
        ("first dim",),
    ),
    Mutant(
        "01-layer-norm-no-keepdim", "norms",
        "layer_norm takes the mean and variance without keepdim=True, so they do not broadcast against x.",
        (("mean = x.mean(dim=-1, keepdim=True)\n    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)",
          "mean = x.mean(dim=-1)\n    var = (x - mean).pow(2).mean(dim=-1)"),),
        ("keepdim=True",),
    ),
    Mutant(
        "01-rms-no-keepdim", "norms",
        "rms_norm takes the mean of x² without keepdim=True.",
        (("y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
          "y = x * torch.rsqrt(x.pow(2).mean(dim=-1) + eps)"),),
        ("keepdim=True",),
    ),
    Mutant(
        "01-layer-norm-default-eps", "norms",
        "layer_norm's default eps is 1e-6 (rms_norm's) instead of 1e-5.",
        (("def layer_norm(x, weight=None, bias=None, eps=1e-5):", "def layer_norm(x, weight=None, bias=None, eps=1e-6):"),),
        ("default eps", "1e-5"),
    ),
    Mutant(
        "01-rms-norm-default-eps", "norms",
        "rms_norm's default eps is 1e-5 (layer_norm's) instead of 1e-6.",
        (("def rms_norm(x, weight=None, eps=1e-6):", "def rms_norm(x, weight=None, eps=1e-5):"),),
        ("default eps", "1e-6"),
    ),
    Mutant(
        "01-layernorm-module-default-eps", "norms",
        "LayerNorm's default eps is 1e-6 instead of 1e-5.",
        (("def __init__(self, ndim, bias=True, eps=1e-5):", "def __init__(self, ndim, bias=True, eps=1e-6):"),),
        ("default eps", "1e-5"),
    ),
    Mutant(
        "01-rmsnorm-forgets-eps", "norms",
        "RMSNorm.forward calls rms_norm without the module's eps.",
        (("return rms_norm(x, self.weight, self.eps)", "return rms_norm(x, self.weight)"),),
        ("does not pass the module's eps",),
    ),
    Mutant(
        "01-layernorm-bias-kept", "norms",
        "LayerNorm(bias=False) still makes a bias parameter (of zeros).",
        (("self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None", "self.bias = nn.Parameter(torch.zeros(ndim))"),),
        ("bias=false",),
    ),
    Mutant(
        "01-float64-in-float32", "norms",
        "layer_norm always computes in float32 (x.float()), so a float64 x loses precision; the weight stays float64.",
        (("    dtype = x.dtype\n    x = x.to(torch.promote_types(dtype, torch.float32))\n    mean = x.mean(",
          "    dtype = x.dtype\n    x = x.float()\n    mean = x.mean("),),
        ("float64 was computed in float32",),
    ),
]
