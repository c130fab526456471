"""Watch the learner's model run, without editing a line of it.

    outcome = run(config, idx, targets, impl="exercises", backward=True)
    outcome.root.children      # the calls, in execution order, as a tree of Call
    outcome.error, outcome.todo  # where it stopped: the first TODO (exercise, file, line, text) or error

How: forward pre- and post-hooks on every nn.Module of the model (its qualified name, the
arguments that went in, what came out), and wrappers put in place of every function defined in
an exercise module (layer_norm, apply_rotary, causal_attention, ...) in the globals of every
exercise module that refers to it, so a call through a name such as `causal_attention(q, k, v)`
inside attention.py reaches the wrapper. softmax (torch.softmax, F.softmax, Tensor.softmax) and
F.scaled_dot_product_attention are wrapped too, so attention's scores and weights are seen as the
learner's code computes them. Everything is put back when the run ends, also after an error.
"""

import contextlib
import functools
import importlib
import inspect
import math
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from grader.registry import BY_ID, BY_NAME, MODULE_EXERCISES, ROOT

LAYER = re.compile(r"(?:^|\.)h\.(\d+)$")
TODO = re.compile(r"^(?P<id>\d\d) (?P<name>\w+): ")
ATTENTION_FUNCTIONS = ("causal_attention", "flash_attention", "scaled_dot_product_attention")


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


# --- the tracer -----------------------------------------------------------------------------------------


class Tracer:
    """Hooks and wrappers that record a Call tree while `recording` is on; stop() undoes everything."""

    def __init__(self, impl: str, keep_weights: bool = False):
        import torch

        self.torch = torch
        self.impl = impl
        self.keep_weights = keep_weights
        self.root = Call("root", "", "", "")
        self.stack = [self.root]
        self.recording = False
        self._undo = []
        self._open = {}  # id(module) -> its open calls (a module may call itself)
        self._in_softmax = False
        self.names = {}

    # -- what is whose --

    def owner_of(self, module_name: str) -> str:
        if module_name.startswith("exercises."):
            return "yours"
        if module_name.startswith("solutions."):
            return "swapped" if self.impl == "exercises" else "reference"
        return "torch"

    @staticmethod
    def exercise_of(module_name: str) -> str:
        ex = BY_NAME.get(module_name.rsplit(".", 1)[-1])
        return ex.label if ex is not None and module_name.split(".")[0] in ("exercises", "solutions") else ""

    # -- recording --

    def push(self, kind, name, what, owner, arguments) -> Call:
        parent = self.stack[-1]
        call = Call(kind, name, what, owner, parent)
        for arg_name, value in arguments:
            call.inputs.extend(describe(arg_name, value, self.torch))
        parent.children.append(call)
        self.stack.append(call)
        return call

    def pop(self, call: Call, output) -> None:
        if call not in self.stack:
            return
        while self.stack[-1] is not call:  # calls left open by an exception the learner's code caught
            self.stack.pop()
        self.stack.pop()
        call.done = True
        call.outputs = describe("", output, self.torch)
        self.finish_attention(call)

    def finish_attention(self, call: Call) -> None:
        torch = self.torch
        try:
            if call.softmax:
                scores, weights = call.softmax[0]
                call.attention = attention_stats(scores, weights, torch, "your softmax" if call.owner == "yours"
                                                 else "the softmax")
                if len(call.softmax) > 1:
                    call.attention["softmax_calls"] = len(call.softmax)
            elif call.qk is not None:
                q, k, scale = call.qk
                scores, weights = weights_from_qk(q, k, scale, torch)
                call.attention = attention_stats(scores, weights, torch, "recomputed from q and k")
            else:
                return
            if self.keep_weights:
                w = weights.detach().float().cpu()
                while w.dim() < 4:
                    w = w.unsqueeze(0)
                call.weights = w
        except Exception:  # odd shapes: no statistics rather than a crash of the trace
            call.attention = None
        finally:
            call.softmax, call.qk = [], None

    # -- installing --

    def start(self) -> "Tracer":
        self._wrap_functions()
        self._wrap_softmax()
        return self

    def stop(self) -> None:
        self.recording = False
        while self._undo:
            self._undo.pop()()

    def _wrap_functions(self):
        packages = ("solutions",) if self.impl == "solutions" else ("exercises", "solutions")
        modules = []
        for package in packages:
            for ex in MODULE_EXERCISES:
                mod = sys.modules.get(f"{package}.{ex.name}")
                if mod is not None and mod not in modules:
                    modules.append(mod)
        ours = {mod.__name__ for mod in modules}
        wrappers = {}
        for mod in modules:
            for attr, obj in list(vars(mod).items()):
                if not isinstance(obj, types.FunctionType) or obj.__module__ not in ours:
                    continue
                if obj not in wrappers:
                    wrappers[obj] = self._wrapper(obj)
                setattr(mod, attr, wrappers[obj])
                self._undo.append(functools.partial(setattr, mod, attr, obj))

    def _wrapper(self, fn):
        tracer, sig = self, signature_of(fn)
        owner, label = self.owner_of(fn.__module__), self.exercise_of(fn.__module__)
        attention = fn.__name__ in ATTENTION_FUNCTIONS

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            if not tracer.recording:
                return fn(*args, **kwargs)
            arguments = bind(sig, args, kwargs)
            call = tracer.push("function", fn.__name__, label, owner, arguments)
            if attention:
                tensors = [v for _, v in arguments if isinstance(v, tracer.torch.Tensor)]
                if len(tensors) >= 2 and tensors[0].dim() >= 3:
                    call.qk = (tensors[0], tensors[1], None)
            out = fn(*args, **kwargs)
            tracer.pop(call, out)
            return out

        return traced

    def _wrap_softmax(self):
        torch = self.torch
        F = torch.nn.functional
        tracer = self

        def capture(original, method=False):
            @functools.wraps(original)
            def softmax(*args, **kwargs):
                if tracer._in_softmax or not tracer.recording:
                    return original(*args, **kwargs)
                tracer._in_softmax = True
                try:
                    out = original(*args, **kwargs)
                finally:
                    tracer._in_softmax = False
                scores = args[0] if args else kwargs.get("input")
                if isinstance(scores, torch.Tensor) and scores.dim() >= 2 and len(tracer.stack) > 1:
                    tracer.stack[-1].softmax.append((scores.detach(), out.detach()))
                return out

            return softmax

        def sdpa_capture(original):
            @functools.wraps(original)
            def sdpa(query, key, value, *args, **kwargs):
                out = original(query, key, value, *args, **kwargs)
                if tracer.recording and len(tracer.stack) > 1 and not tracer.stack[-1].softmax:
                    tracer.stack[-1].qk = (query.detach(), key.detach(), kwargs.get("scale"))
                return out

            return sdpa

        self._patch(F, "softmax", capture(F.softmax))
        self._patch(torch, "softmax", capture(torch.softmax))
        self._patch(torch.Tensor, "softmax", capture(torch.Tensor.softmax, method=True))
        self._patch(F, "scaled_dot_product_attention", sdpa_capture(F.scaled_dot_product_attention))

    def _patch(self, owner, name, replacement):
        had = name in vars(owner)
        original = vars(owner).get(name)
        setattr(owner, name, replacement)
        self._undo.append(lambda: setattr(owner, name, original) if had else delattr(owner, name))

    def watch(self, model) -> None:
        """Hooks on every module of the model: a Call per forward, named by the module's place in the model."""
        self.names = {id(m): name for name, m in model.named_modules()}
        for module in model.modules():
            sig = signature_of(module.forward)
            pre = module.register_forward_pre_hook(functools.partial(self._pre, sig), with_kwargs=True)
            post = module.register_forward_hook(self._post, with_kwargs=True)
            self._undo.append(pre.remove)
            self._undo.append(post.remove)

    def _pre(self, sig, module, args, kwargs):
        if not self.recording:
            return None
        kind = type(module)
        name = self.names.get(id(module)) or kind.__name__
        label = self.exercise_of(kind.__module__)
        call = self.push("module", name, kind.__name__ + (f" ({label})" if label else ""), self.owner_of(kind.__module__),
                         bind(sig, args, kwargs))
        call.module = module
        self._open.setdefault(id(module), []).append(call)
        return None

    def _post(self, module, args, kwargs, output):
        calls = self._open.get(id(module))
        if self.recording and calls:
            self.pop(calls.pop(), output)
        return None


# --- one traced run ---------------------------------------------------------------------------------------


@dataclass
class Frame:
    file: str  # relative to the project: "exercises/attention.py"
    line: int
    function: str  # "CausalSelfAttention.forward"


@dataclass
class Outcome:
    root: Call
    phase: str  # where it stopped: "import", "build", "forward", "backward", or "done"
    error: BaseException | None = None
    frames: list = field(default_factory=list)  # the error's frames in the project's files, outermost first
    todo: dict | None = None  # exercise, label, file, line, text (the TODO comment's lines)
    model: object = None
    loss: object = None
    logits: object = None
    grads: list = field(default_factory=list)  # (name, shape, norm or None, also-named) after --backward
    failed: Call | None = None  # the call the error came out of

    @property
    def stopped(self) -> bool:
        return self.error is not None


def project_frames(error: BaseException) -> list[Frame]:
    """The traceback's frames that are in exercises/ or solutions/, outermost first."""
    frames, tb = [], error.__traceback__
    folders = (ROOT / "exercises", ROOT / "solutions")
    while tb is not None:
        code = tb.tb_frame.f_code
        path = Path(code.co_filename)
        if any(folder in path.parents for folder in folders):
            frames.append(Frame(str(path.relative_to(ROOT)), tb.tb_lineno, getattr(code, "co_qualname", code.co_name)))
        tb = tb.tb_next
    if isinstance(error, SyntaxError) and error.filename:
        path = Path(error.filename)
        if any(folder in path.parents for folder in folders):
            frames.append(Frame(str(path.relative_to(ROOT)), error.lineno or 0, "(the file does not compile)"))
    return frames


def todo_of(error: BaseException, frames: list[Frame]) -> dict | None:
    """The TODO an exercise's NotImplementedError came from: its exercise, file, line and comment lines."""
    if not isinstance(error, NotImplementedError):
        return None
    match = TODO.match(str(error))
    if not match or match["id"] not in BY_ID:
        return None
    ex = BY_ID[match["id"]]
    where = frames[-1] if frames else None
    text = []
    if where is not None:
        try:
            lines = (ROOT / where.file).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        i = where.line - 2  # the line above the raise
        block = []
        while 0 <= i < len(lines) and lines[i].strip().startswith("#"):
            block.insert(0, lines[i].strip())
            i -= 1
        start = next((j for j, line in enumerate(block) if line.startswith("# TODO")), None)
        text = block[start:] if start is not None else []
    if not text:
        text = ["# TODO: " + str(error)[match.end():]]
    return dict(id=ex.id, label=ex.label, file=where.file if where else ex.exercise_file,
                line=where.line if where else None, text=text, message=str(error))


def fresh_package(impl: str) -> None:
    """Forget the learner's modules, so this run imports them as they are on disk now (swaps re-applied)."""
    if impl == "exercises":
        for name in [n for n in sys.modules if n == "exercises" or n.startswith("exercises.")]:
            del sys.modules[name]


def run(config, idx, targets=None, impl="exercises", backward=False, keep_weights=False, seed=0, setup=None) -> Outcome:
    """Build the learner's GPT(config) and trace one forward pass (and a backward pass) on idx.

    setup(model), when given, runs after the model is built and before the forward pass (inspect loads a
    checkpoint's weights there); what it raises is not the learner's error and goes up to the caller.
    """
    import torch

    fresh_package(impl)
    root = Call("root", "", "", "")
    try:
        gpt = importlib.import_module(f"{impl}.gpt")
        importlib.import_module(f"{impl}.config")
    except Exception as error:  # a learner's file that does not compile or import
        frames = project_frames(error)
        return Outcome(root, "import", error, frames, todo_of(error, frames))
    tracer = Tracer(impl, keep_weights=keep_weights)
    tracer.root = root
    tracer.stack = [root]
    outcome = Outcome(root, "build")
    state = torch.get_rng_state()
    try:
        tracer.start()
        torch.manual_seed(seed)
        try:
            model = gpt.GPT(config)
            model.eval()
        except Exception as error:
            return _failed(outcome, error, tracer)
        if setup is not None:
            setup(model)
        outcome.model, outcome.phase = model, "forward"
        tracer.watch(model)
        tracer.recording = True
        try:
            out = model(idx, targets)
        except Exception as error:
            return _failed(outcome, error, tracer)
        finally:
            tracer.recording = False
        logits, loss = (out if isinstance(out, tuple) and len(out) == 2 else (out, None))
        outcome.logits, outcome.loss = logits, loss
        if backward:
            outcome.phase = "backward"
            if loss is None:
                return _failed(outcome, ValueError("the model returned no loss (targets were given), so there is "
                                                   "nothing to differentiate"), tracer)
            try:
                loss.backward()
            except Exception as error:
                return _failed(outcome, error, tracer)
            outcome.grads = gradients(model, torch)
        outcome.phase = "done"
        return outcome
    finally:
        tracer.stop()
        torch.set_rng_state(state)


def _failed(outcome: Outcome, error: BaseException, tracer: Tracer) -> Outcome:
    outcome.error = error
    outcome.frames = project_frames(error)
    outcome.todo = todo_of(error, outcome.frames)
    if len(tracer.stack) > 1:
        outcome.failed = tracer.stack[-1]
        outcome.failed.error = error
    return outcome


def gradients(model, torch) -> list[tuple]:
    """(name, shape, gradient norm or None, other names of the same Parameter) for every parameter."""
    names = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    out = []
    for name, p in model.named_parameters():
        norm = None if p.grad is None else float(p.grad.detach().float().norm())
        out.append((name, tuple(p.shape), norm, [n for n in names[id(p)] if n != name]))
    return out


@contextlib.contextmanager
def one_thread(torch):
    """A tiny model runs fastest on one thread (and a busy machine's other cores stay free)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
