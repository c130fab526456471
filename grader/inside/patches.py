"""The wrappers a Tracer puts in place while it runs, and putting the originals back.

    patches = Patches(tracer)
    patches.install()   # every exercise function, softmax and SDPA now report to tracer
    patches.undo()      # everything as it was (also after an error: tracer.stop() calls it)

Every function defined in an exercise module (layer_norm, apply_rotary, causal_attention, ...) is
replaced in the globals of every exercise module that refers to it, so a call through a name such as
`causal_attention(q, k, v)` inside attention.py reaches the wrapper; the wrapper pushes a Call onto
the tracer, runs the original and pops it. softmax (torch.softmax, F.softmax, Tensor.softmax) and
F.scaled_dot_product_attention are wrapped too, so attention's scores and weights are seen as the
learner's code computes them. While the tracer is not recording, every wrapper just calls the original.
"""

import functools
import sys
import types

from grader.inside.calls import bind, signature_of
from grader.registry import MODULE_EXERCISES

ATTENTION_FUNCTIONS = ("causal_attention", "flash_attention", "scaled_dot_product_attention")


class Patches:
    """The wrappers installed for one Tracer, each with the step that undoes it."""

    def __init__(self, tracer):
        self.tracer = tracer
        self._undo = []
        self._in_softmax = False

    def install(self) -> None:
        self._wrap_functions()
        self._wrap_softmax()

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap_functions(self):
        packages = ("solutions",) if self.tracer.impl == "solutions" else ("exercises", "solutions")
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
        tracer, sig = self.tracer, signature_of(fn)
        owner, label = tracer.owner_of(fn.__module__), tracer.exercise_of(fn.__module__)
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
        tracer = self.tracer
        torch = tracer.torch
        F = torch.nn.functional
        patches = self

        def capture(original):
            @functools.wraps(original)
            def softmax(*args, **kwargs):
                if patches._in_softmax or not tracer.recording:
                    return original(*args, **kwargs)
                patches._in_softmax = True
                try:
                    out = original(*args, **kwargs)
                finally:
                    patches._in_softmax = False
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
        self._patch(torch.Tensor, "softmax", capture(torch.Tensor.softmax))
        self._patch(F, "scaled_dot_product_attention", sdpa_capture(F.scaled_dot_product_attention))

    def _patch(self, owner, name, replacement):
        had = name in vars(owner)
        original = vars(owner).get(name)
        setattr(owner, name, replacement)
        self._undo.append(lambda: setattr(owner, name, original) if had else delattr(owner, name))
