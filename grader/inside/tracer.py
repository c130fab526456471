"""Watch the learner's model run, without editing a line of it.

    outcome = run(config, idx, targets, impl="exercises", backward=True)
    outcome.root.children      # the calls, in execution order, as a tree of Call
    outcome.error, outcome.todo  # where it stopped: the first TODO (exercise, file, line, text) or error

How: forward pre- and post-hooks on every nn.Module of the model (its qualified name, the arguments
that went in, what came out), and wrappers around every exercise function, softmax and SDPA
(patches.py). Tracer records what both report as a tree of Call (calls.py: the summaries of each
call's arguments and outputs, and the attention statistics). Everything is put back when the run
ends, also after an error.

    Tracer                  the recording: the Call stack, module hooks, attention statistics
    run                     one traced build, forward (and backward) pass: an Outcome
    project_frames, todo_of where it stopped, in the learner's files
"""

import contextlib
import functools
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader.inside.calls import Call, attention_stats, bind, describe, signature_of, weights_from_qk
from grader.inside.patches import Patches
from grader.registry import BY_ID, BY_NAME, ROOT
from grader.training.parts import TODO  # an exercise's NotImplementedError: "03 attention: ..."



# --- the tracer -----------------------------------------------------------------------------------------


class Tracer:
    """Hooks and wrappers (patches.py) that record a Call tree while `recording` is on; stop() undoes everything."""

    def __init__(self, impl: str, keep_weights: bool = False):
        import torch

        self.torch = torch
        self.impl = impl
        self.keep_weights = keep_weights
        self.root = Call("root", "", "", "")
        self.stack = [self.root]
        self.recording = False
        self.patches = Patches(self)
        self._hooks = []  # the module hooks' handles, removed by stop()
        self._open = {}  # id(module) -> its open calls (a module may call itself)
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
        self.patches.install()
        return self

    def stop(self) -> None:
        self.recording = False
        while self._hooks:
            self._hooks.pop().remove()
        self.patches.undo()

    def watch(self, model) -> None:
        """Hooks on every module of the model: a Call per forward, named by the module's place in the model."""
        self.names = {id(m): name for name, m in model.named_modules()}
        for module in model.modules():
            sig = signature_of(module.forward)
            pre = module.register_forward_pre_hook(functools.partial(self._pre, sig), with_kwargs=True)
            post = module.register_forward_hook(self._post, with_kwargs=True)
            self._hooks += [pre, post]

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
