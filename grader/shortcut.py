"""Anti-shortcut: does a learner's module merely re-export the reference?

An exercise whose module imports from `solutions` (statically: an import
statement or an import_module/__import__ call naming it), or whose functions and
classes are the reference's own objects (the same object, defined in a
solutions module, subclassing a reference class, or running code compiled from
a file in solutions/), "uses the reference" and scores nothing.

    uses_reference(path)                      -> sentence or None (reads the file, imports nothing)
    reference_objects(module, reference)      -> sentence or None (compares loaded modules)
"""

import ast
import inspect
from pathlib import Path

IMPORTERS = {"import_module", "__import__", "spec_from_file_location", "run_path", "SourceFileLoader"}


def _names_solutions(name) -> bool:
    return isinstance(name, str) and (name == "solutions" or name.startswith(("solutions.", "solutions/")))


def uses_reference(path: Path) -> str | None:
    """A sentence if the source at path imports the reference; None otherwise (or if it does not parse)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None  # a file that does not parse is reported as a crash, not as a shortcut
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _names_solutions(alias.name):
                    return f"line {node.lineno} imports {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _names_solutions(module) or (not module and any(a.name == "solutions" for a in node.names)):
                return f"line {node.lineno} imports from {'.' * node.level}{module or 'solutions'}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in IMPORTERS and any(
                isinstance(arg, ast.Constant) and _names_solutions(arg.value) for arg in node.args
            ):
                return f"line {node.lineno} loads {next(a.value for a in node.args if isinstance(a, ast.Constant))}"
        elif isinstance(node, ast.Subscript):  # sys.modules["solutions.norms"]
            key = node.slice
            if isinstance(key, ast.Constant) and _names_solutions(key.value):
                return f"line {node.lineno} reaches {key.value}"
    return None


def _code_files(obj):
    """The files that the code of a function, or of a class's methods, was compiled from."""
    if inspect.isclass(obj):
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)  # staticmethod / classmethod
            if isinstance(value, property):
                value = value.fget
            code = getattr(value, "__code__", None)
            if code is not None:
                yield code.co_filename
    else:
        code = getattr(obj, "__code__", None)
        if code is not None:
            yield code.co_filename


def reference_objects(module, reference) -> str | None:
    """A sentence if a function or class the reference module defines is, in module, the reference's own."""
    solutions_dir = Path(reference.__file__).resolve().parent
    for name, ref_obj in vars(reference).items():
        if not (inspect.isfunction(ref_obj) or inspect.isclass(ref_obj)):
            continue
        if getattr(ref_obj, "__module__", None) != reference.__name__:
            continue  # imported into the reference from elsewhere (torch, config, another exercise)
        mine = getattr(module, name, None)
        if mine is None:
            continue
        if mine is ref_obj or str(getattr(mine, "__module__", "") or "").startswith("solutions"):
            return f"its {name} is the reference's own"
        if inspect.isclass(mine) and any(
            str(getattr(base, "__module__", "")).startswith("solutions") for base in mine.__mro__[1:]
        ):
            return f"its {name} subclasses the reference's"
        for filename in _code_files(mine):
            try:
                if Path(filename).resolve().parent == solutions_dir:
                    return f"its {name} runs code from solutions/"
            except (OSError, ValueError):
                continue
    return None
