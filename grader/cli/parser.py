"""The grader's command line: its commands and options (bad usage is one sentence: grader.project.Parser)."""

import argparse

from .. import threads
from ..project import Parser

IMPLS = ("exercises", "solutions")
FORMATS = ("text", "json", "gradescope", "junit")
DEFAULTS = dict(impl="exercises", format="text", output=None, timeout=None, root=None, verbose=False)
VALUE_OPTIONS = ("--impl", "--format", "--output", "-o", "--timeout", "--root")
PASSTHROUGH = ("train", "sample", "speed", "trace", "inspect", "experiment")
PASSTHROUGH_MODULES = {"trace": "grader.inside.trace", "inspect": "grader.inside.inspect_run",
                       "experiment": "grader.inside.experiment"}  # the others: grader.training.<name>


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the time limit must be above 0 seconds")
    return value



def build_parser(prog: str, doc: str) -> Parser:
    common = Parser(add_help=False, prog=prog)
    common.add_argument("--impl", choices=IMPLS, default=argparse.SUPPRESS,
                        help="which implementation to grade: your exercises/ (default) or the reference solutions/")
    common.add_argument("--format", choices=FORMATS, default=argparse.SUPPRESS,
                        help="text (default), json, gradescope (writes results.json) or junit (XML)")
    common.add_argument("--output", "-o", metavar="PATH", default=argparse.SUPPRESS,
                        help="write the report there instead of stdout (any format); gradescope's results.json path "
                             "(default /autograder/results/results.json when that folder exists, else ./results.json)")
    common.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=argparse.SUPPRESS,
                        help="time limit per test (default 30; the end-to-end test gets max(10x, 300))")
    common.add_argument("--root", metavar="DIR", default=argparse.SUPPRESS,
                        help="the project folder (default: the checkout this grader belongs to)")
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help="check: list every passing test too")
    parser = Parser(prog=prog, parents=[common], description=doc.split("\n\n")[0],
                    epilog=doc.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)

    def command(name, help_text):
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    command("check", "run one exercise's tests and show every message in full").add_argument("exercise")
    command("list", "every exercise with its state, one line each")
    hint = command("hint", "show one more hint for an exercise (remembered in .kata/state.json)")
    hint.add_argument("exercise")
    hint.add_argument("--all", action="store_true", help="show every hint")
    command("swap", "let the reference stand in for exercises (ids, or `all`); your files stay as they are") \
        .add_argument("exercises", nargs="+", metavar="exercise")
    command("unswap", "use your own files again for exercises (ids, or `all`)") \
        .add_argument("exercises", nargs="+", metavar="exercise")
    command("swaps", "list the swapped exercises")
    watch = command("watch", "re-run the current exercise whenever a file in exercises/ is saved")
    watch.add_argument("exercise", nargs="?", help="start here instead of at the first one left to do")
    watch.add_argument("--poll", action="store_true", help="check files every second instead of using watchdog")
    watch.add_argument("--threads", type=threads.flag, default=1, metavar="N",
                       help="torch's threads per operation while the tests run (default 1; 0: torch's default)")
    command("reset", "a fresh exercise file; yours is saved to .kata/backups/ first").add_argument("exercise")
    solution = command("solution", "show the reference once your version passes")
    solution.add_argument("exercise")
    solution.add_argument("--give-up", action="store_true",
                          help="show it now; the report records it and the exercise scores nothing")
    for name in PASSTHROUGH:
        where = PASSTHROUGH_MODULES.get(name, f"grader.training.{name}").replace(".", "/") + ".py"
        sub.add_parser(name, help=f"{name} ({where}; its own options follow, see `{prog} {name} --help`)",
                       add_help=False)
    return parser
