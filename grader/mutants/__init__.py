"""A corpus of realistic learner mistakes, to prove the tests catch them and name them.

Each mutant is a small edit of one reference module (solutions/<module>.py)
with a sentence saying what mistake it is and the words the failure message
must contain. `python -m grader.mutants` runs every mutant in a temporary copy
of the project (exercises/ = the reference with that one edit; the real
exercises/ is never touched) and reports, per exercise, how many were killed,
how many had a failure message that named the mistake, and how many wrong
claims their failing tests made: a cause (tests/harness.py, Mismatch.cause)
that does not describe the mutant, in any failing test, not only the first.

The corpus lives in corpus_NN_<name>.py files beside this one, each defining
MUTANTS = [Mutant(...), ...]. Correct implementations that differ from the
reference in style live in alternatives/<name>/ and must pass every test.
"""

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Mutant:
    id: str  # unique, e.g. "03-no-sqrt-d-scale"
    module: str  # the solutions module edited, e.g. "attention"
    description: str  # one sentence: the mistake, as a learner would make it
    edits: tuple[tuple[str, str], ...]  # (find, replace) pairs; each find occurs exactly once in the module
    expect: tuple[str, ...]  # words that the failure message must contain (case-insensitive)
    tests: tuple[str, ...] = field(default=())  # exercise ids whose tests must kill it; () = the module's own
    # Other word sets that also describe this mistake truly, for tests that name it from another angle
    # (a cause must hold every word of `expect` or of one of these, else it is a wrong claim).
    also: tuple[tuple[str, ...], ...] = field(default=())

    def describes(self, cause: str) -> bool:
        """Whether a failure's cause names this mistake (every word of expect, or of one `also` set)."""
        text = cause.lower()
        return any(all(w.lower() in text for w in words) for words in (self.expect, *self.also))

    def apply(self, text: str) -> str:
        for find, replace in self.edits:
            count = text.count(find)
            if count != 1:
                raise ValueError(f"mutant {self.id}: {find!r} occurs {count} times in solutions/{self.module}.py, "
                                 f"not exactly once.")
            text = text.replace(find, replace)
        try:  # a mutant is a mistake the tests must name, never a syntax error (that is the crash block's job)
            compile(text, f"solutions/{self.module}.py", "exec")
        except SyntaxError as error:
            raise ValueError(f"mutant {self.id}: the edited solutions/{self.module}.py does not compile "
                             f"(line {error.lineno}: {error.msg}).") from None
        return text


def corpus() -> list[Mutant]:
    """Every mutant of every corpus_*.py file, in file order."""
    mutants = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("corpus_"):
            mutants.extend(importlib.import_module(f"{__name__}.{info.name}").MUTANTS)
    ids = [m.id for m in mutants]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"mutant ids must be unique; repeated: {', '.join(sorted(duplicates))}.")
    return mutants


def alternatives() -> list[Path]:
    """The folders of correct alternative implementations."""
    root = HERE / "alternatives"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))) if root.exists() else []
