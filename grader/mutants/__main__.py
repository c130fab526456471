"""Run the mutant corpus and the alternative implementations against the kata tests.

    python -m grader.mutants                 every mutant and every alternative
    python -m grader.mutants --exercise 03   only mutants whose tests are 03's
    python -m grader.mutants --mutant 03-no-sqrt-d-scale
    python -m grader.mutants --alternatives  only the alternative (correct) implementations
    python -m grader.mutants --jobs 4        parallel runs (default: the number of CPUs)
    python -m grader.mutants --repeat 10     run each mutant 10 times: its verdicts must not vary

Every test of a mutant's exercise runs (not only up to the first failure), and
each failing test's cause is checked: a cause that does not name the mutant is a
wrong claim. Exit 0 when every mutant is killed with a message containing its
words, no failing test makes a wrong claim, every mutant's verdicts are the same
in every repeat, and every alternative passes every test; 1 otherwise; 2 for bad usage.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..plugin.isolated import FORK, IsolatedRun, warm_up
from ..project import Project
from ..registry import BY_ID, EXERCISES, ROOT, for_module
from ..sandbox import make_project
from . import Mutant, alternatives, corpus



MUTANT_TIMEOUT = 120.0  # seconds per test (the end-to-end test: 10x): generous, for a loaded machine


def run_tests(project: Path, test_ids) -> dict:
    """Run the given exercises' test files in project; returns the kata report (outcome per test).

    Where the system can fork, each run is a fork of this process, which has loaded torch, pytest and
    the tests' libraries once (grader/plugin/isolated.py): seconds saved per mutant. Elsewhere, a
    pytest subprocess.
    """
    if FORK:
        run = IsolatedRun(Project(project), [BY_ID[i] for i in test_ids], chdir=True, impl="exercises",
                          timeout=MUTANT_TIMEOUT, fresh=False)  # this process never imports a project's modules
        report, crash = run.result()
        return report if report is not None else {"tests": [], "crash": crash}
    report = project / "kata-report.json"
    report.unlink(missing_ok=True)
    files = [BY_ID[i].test_file for i in test_ids]
    env = {k: v for k, v in os.environ.items() if k not in ("KATA_IMPL", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", *files, "--impl=exercises", "-q", "--no-header",
           f"--kata-report={report}", f"--kata-timeout={MUTANT_TIMEOUT:g}"]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    if not report.exists():
        return {"tests": [], "crash": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(report.read_text(encoding="utf-8"))


def verdicts(report: dict) -> list[tuple]:
    """What a run decided, to compare repeats: (test, outcome, cause) for every test."""
    return sorted((t["nodeid"], t["outcome"], t.get("cause") or "") for t in report["tests"])


def judge_mutant(mutant: Mutant, base: Path, repeat: int = 1) -> dict:
    text = mutant.apply((ROOT / "solutions" / f"{mutant.module}.py").read_text(encoding="utf-8"))
    project = make_project(base, {f"{mutant.module}.py": text})
    tests = mutant.tests or (for_module(mutant.module).id,)
    started = time.perf_counter()
    words = [w.lower() for w in mutant.expect]
    runs = []
    for _ in range(max(1, repeat)):
        report = run_tests(project, tests)
        if not report["tests"] and report.get("crash"):  # the run itself died (killed, out of memory): once more
            report = run_tests(project, tests)
        runs.append(report)
    shutil.rmtree(project, ignore_errors=True)
    report = runs[0]
    failures = [t for t in report["tests"] if t["outcome"] in ("failed", "error", "timeout")]
    named = [t for t in failures if all(w in t["message"].lower() for w in words)]
    wrong = [t for t in failures if t.get("cause") and not mutant.describes(t["cause"])]
    unstable = len({tuple(verdicts(r)) for r in runs}) > 1
    return dict(
        mutant=mutant, exercise=tests[0], killed=bool(failures), named=bool(named), wrong=wrong,
        unstable=unstable, failures=len(failures), crash=None if report["tests"] else report.get("crash"),
        first_message=(named or failures or [{"message": report.get("crash", "")}])[0]["message"],
        seconds=time.perf_counter() - started,
    )


def judge_alternative(folder: Path, base: Path) -> dict:
    files = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.py")}
    project = make_project(base, files)
    started = time.perf_counter()
    report = run_tests(project, list(BY_ID))
    shutil.rmtree(project, ignore_errors=True)
    bad = [t for t in report["tests"] if t["outcome"] not in ("passed", "skipped")]
    return dict(folder=folder, tests=len(report["tests"]), bad=bad, crash=report.get("crash"),
                seconds=time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exercise", action="append", help="only mutants tested by this exercise id (repeatable)")
    parser.add_argument("--mutant", action="append", help="only this mutant id (repeatable)")
    parser.add_argument("--alternatives", action="store_true", help="only the alternative implementations")
    parser.add_argument("--no-alternatives", action="store_true", help="skip the alternative implementations")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each mutant N times and report those whose verdicts vary (default 1)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every mutant's message")
    args = parser.parse_args(argv)
    try:
        mutants = corpus()
    except (ValueError, ImportError) as error:
        print(error)
        return 2
    if args.exercise:
        wanted = {e.zfill(2) for e in args.exercise}
        mutants = [m for m in mutants if (m.tests or (for_module(m.module).id,))[0] in wanted]
    if args.mutant:
        known = {m.id for m in mutants}
        unknown = [m for m in args.mutant if m not in known]
        if unknown:
            print(f"No mutant {', '.join(unknown)} in the corpus.")
            return 2
        mutants = [m for m in mutants if m.id in args.mutant]
    if args.alternatives:
        mutants = []
    folders = [] if args.no_alternatives or args.exercise or args.mutant else alternatives()
    ok = True
    started = time.perf_counter()
    if FORK:
        warm_up([ROOT / ex.test_file for ex in EXERCISES])
    with tempfile.TemporaryDirectory(prefix="kata-mutants-") as tmp, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        base = Path(tmp)
        try:
            results = list(pool.map(lambda m: judge_mutant(m, base, args.repeat), mutants))
        except ValueError as error:  # a mutant whose edit does not apply
            print(error)
            return 2
        alt_results = list(pool.map(lambda f: judge_alternative(f, base), folders))
    if results:
        print(f"{'exercise':<16}{'killed':>10}{'named':>10}{'wrong claims':>14}")
        for ex_id in sorted({r['exercise'] for r in results}):
            rows = [r for r in results if r["exercise"] == ex_id]
            killed, named = sum(r["killed"] for r in rows), sum(r["named"] for r in rows)
            wrong = sum(len(r["wrong"]) for r in rows)
            print(f"{BY_ID[ex_id].label:<16}{killed:>6}/{len(rows):<3}{named:>6}/{len(rows):<3}{wrong:>10}")
        total_killed = sum(r["killed"] for r in results)
        total_named = sum(r["named"] for r in results)
        total_wrong = sum(len(r["wrong"]) for r in results)
        failing = sum(r["failures"] for r in results)
        print(f"{'all':<16}{total_killed:>6}/{len(results):<3}{total_named:>6}/{len(results):<3}{total_wrong:>10}")
        print(f"(wrong claims: causes that do not name the mutant, over all {failing} failing tests)")
        for r in results:
            m = r["mutant"]
            if not r["killed"] and r["crash"]:
                ok = False
                print(f"CRASHED  {m.id}: its test run ended without a report, twice: {str(r['crash'])[-300:]}")
            elif not r["killed"]:
                ok = False
                print(f"SURVIVED {m.id}: {m.description}")
            elif not r["named"]:
                ok = False
                print(f"UNNAMED  {m.id}: expected {list(m.expect)} in a failure message; got: {r['first_message']}")
            elif args.verbose:
                print(f"killed   {m.id} ({r['seconds']:.1f} s): {r['first_message']}")
            for t in r["wrong"]:
                ok = False
                print(f"WRONG    {m.id}: {t['nodeid']} claims: {t['cause']}")
            if r["unstable"]:
                ok = False
                print(f"UNSTABLE {m.id}: its tests' verdicts differ between the {args.repeat} runs")
    for r in alt_results:
        name = r["folder"].name
        if r["crash"] or r["bad"]:
            ok = False
            print(f"FALSE FAILURES in alternative {name}:")
            if r["crash"]:
                print(r["crash"])
            for t in r["bad"][:20]:
                print(f"  {t['outcome']}: {t['nodeid']}: {t['message']}")
        else:
            print(f"alternative {name}: all {r['tests']} tests pass ({r['seconds']:.0f} s)")
    print(f"{len(results)} mutants, {len(alt_results)} alternatives in {time.perf_counter() - started:.0f} s: "
          f"{'all caught and named' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
