"""What a traced call looked like: the Call tree's nodes and the summaries in them.

    Value, Call       one argument or output summarised (shape, dtype, mean, std); one call in the tree
    describe, bind    a call's arguments as Values, by the callee's own parameter names
    attention_stats   scores std and entropy per head of an attention's weights (weights_from_qk
                      recomputes the weights when the learner's code did not expose them)

The functions that need torch take it as an argument: importing this module does not import torch.
"""

import inspect
import math
from dataclasses import dataclass, field

from grader.training.stats import LAYER  # a block's module name, transformer.h.N



# --- what a call looked like ------------------------------------------------------------------------------


@dataclass
class Value:
    """One argument or output, summarised: its name, shape and dtype (or a short repr), mean and std."""

    name: str
    text: str
    mean: float | None = None
    std: float | None = None
    scalar: float | None = None  # a tensor with one element: its value


@dataclass
class Call:
    kind: str  # "module" or "function" (or "root")
    name: str  # the module's qualified name in the model ("transformer.h.0.attn"), or the function's
    what: str  # the class name, or the exercise's label ("03 attention")
    owner: str  # "yours", "reference" (solutions/), "swapped" (the reference standing in), "torch"
    parent: "Call | None" = None
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    children: list = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None
    softmax: list = field(default_factory=list)  # (scores, weights) of softmax calls made directly inside
    qk: tuple | None = None  # (q, k, scale) of an attention function, for weights its code did not expose
    attention: dict | None = None  # scores std, entropy per head, ... (see attention_stats)
    weights: object = None  # the attention weights (B, H, Tq, Tk), float32 on the CPU, when kept
    module: object = None  # the nn.Module of a module call

    @property
    def layer(self) -> int | None:
        """The block this call ran in (transformer.h.<i>), if any."""
        node = self
        while node is not None:
            if node.kind == "module":
                match = LAYER.search(node.name)
                if match:
                    return int(match.group(1))
            node = node.parent
        return None

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def short_dtype(dtype) -> str:
    return str(dtype).replace("torch.", "")


def describe(name, value, torch) -> list[Value]:
    """Summaries of one argument: tensors with shape, dtype and statistics; tuples element by element."""
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        text = f"{shape} {short_dtype(value.dtype)}"
        out = Value(name, text)
        if value.is_floating_point() or value.is_complex():
            with torch.no_grad():
                data = value.detach().float()
                if data.numel() == 1:
                    out.scalar = float(data.reshape(()))
                elif data.numel() > 1:
                    out.mean, out.std = float(data.mean()), float(data.std())
        elif value.numel() == 1:
            out.scalar = float(value.reshape(()))
        return [out]
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) or v is None for v in value):
        if len(value) == 2 and name in ("rotary",):
            return [Value(name, "(cos " + describe("", value[0], torch)[0].text + ", sin "
                          + describe("", value[1], torch)[0].text + ")")]
        parts = []
        for i, v in enumerate(value):
            parts.extend(describe(f"{name}[{i}]" if name else f"[{i}]", v, torch))
        return parts
    if isinstance(value, (bool, int, float)):
        return [Value(name, repr(value))]
    if isinstance(value, str):
        return [Value(name, repr(value[:20]))]
    if isinstance(value, (torch.device, torch.dtype)):
        return [Value(name, str(value).replace("torch.", ""))]
    return [Value(name, type(value).__name__)]


def bind(signature, args, kwargs) -> list[tuple[str, object]]:
    """(name, value) for each argument given, by the callee's own parameter names when they bind."""
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
            return [(k, v) for k, v in bound.arguments.items() if k != "self"]
        except TypeError:
            pass
    return [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())


def signature_of(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


# --- the attention statistics -----------------------------------------------------------------------------


def visible(Tq, Tk, torch, device=None):
    """The causal pattern: query i (position Tk - Tq + i) sees keys 0 .. Tk - Tq + i."""
    return torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril(diagonal=Tk - Tq)


def attention_stats(scores, weights, torch, source: str) -> dict:
    """Scores std over the visible (query, key) pairs, and the weights' entropy per head (nats)."""
    with torch.no_grad():
        w = weights.detach().float()
        while w.dim() < 4:
            w = w.unsqueeze(0)
        Tq, Tk = w.shape[-2], w.shape[-1]
        mask = visible(Tq, Tk, torch, w.device) if Tq <= Tk else torch.ones(Tq, Tk, dtype=torch.bool, device=w.device)
        out = dict(source=source, heads=int(w.shape[1]), queries=int(Tq), keys=int(Tk))
        if scores is not None:
            s = scores.detach().float()
            while s.dim() < 4:
                s = s.unsqueeze(0)
            picked = s.masked_select(mask.expand_as(s))
            picked = picked[picked.isfinite()]
            out["scores_std"] = float(picked.std()) if picked.numel() > 1 else None
            out["scores_absmax"] = float(picked.abs().max()) if picked.numel() else None
        entropy = -torch.special.xlogy(w, w).sum(-1)  # (B, H, Tq)
        out["entropy"] = [float(e) for e in entropy.mean(dim=(0, 2))]
        out["uniform_entropy"] = float(torch.log(mask.sum(-1).float()).mean())  # each query uniform over its keys
        out["finite"] = bool(w.isfinite().all())
        return out


def weights_from_qk(q, k, scale, torch):
    """softmax(q kᵀ * scale + causal mask) for an attention whose weights the learner's code did not expose."""
    with torch.no_grad():
        q, k = q.detach().float(), k.detach().float()
        if k.shape[1] != q.shape[1] and q.shape[1] % k.shape[1] == 0:  # grouped-query: repeat the kv heads
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        scores = q @ k.transpose(-2, -1) * scale
        Tq, Tk = scores.shape[-2:]
        scores = scores.masked_fill(~visible(Tq, Tk, torch, scores.device), float("-inf"))
        return scores, scores.softmax(-1)

