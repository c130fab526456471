"""`python -m grader experiment`: several short trainings that differ in one setting, compared at a glance.

    python -m grader experiment --vary lr=1e-3,3e-3,1e-2
    python -m grader experiment --vary n_layer=2,4,6 --max-steps 300
    python -m grader experiment --vary pos_emb=learned,rope --preset cpu --max-steps 400
    python -m grader experiment --vary mlp=gelu,relu2,swiglu --data synthetic

Any flag of `python -m grader train` can be varied (a model field, a training setting, --tokenizer,
...); every other flag given here goes to every run. Each run trains --preset (default tiny) for the
same number of steps (--max-steps, default the preset's) with the same seed, into its own folder
under --out (default runs/experiment-<preset>-<setting>/<setting>=<value>/), with one progress bar.
Then one figure with every run's validation curve (experiment.png), a table of final losses, wall
time and parameters, and experiment.json. Rerunning skips the finished runs (and resumes an
interrupted one); Ctrl-C stops after saving the current run, keeping what finished.
Exit status: 0 when every run ran (a run that diverged is reported in the table), 2 for bad usage,
130 when stopped.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import re
import sys
from pathlib import Path

from grader.project import Parser, UsageError

PROGRAM = "python -m grader experiment"
NOT_VARIED = ("out", "resume", "help")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def build_parser():
    parser = Parser(prog=PROGRAM, allow_abbrev=False, description="Short trainings that vary one setting, compared on "
                    "one plot.", epilog="Every other flag of `python -m grader train` goes to every run.")
    parser.add_argument("--vary", action="append", required=True, metavar="SETTING=V1,V2,...",
                        help="the setting to vary and its values, e.g. lr=1e-3,3e-3,1e-2 or n_layer=2,4,6 "
                             "or pos_emb=learned,rope (any train flag; true/false for on/off flags)")
    parser.add_argument("--preset", default="tiny", metavar="NAME", help="the preset every run starts from (default tiny)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="the step budget of every run (default: the preset's)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="the experiment's folder (default runs/experiment-<preset>-<setting>)")
    parser.add_argument("--impl", default=None, choices=("exercises", "solutions"),
                        help="exercises (default: yours, swaps applied) or solutions (the reference)")
    return parser


def train_parser():
    from grader.training import train

    parser = train.build_parser()

    def error(message):
        raise UsageError(f"{PROGRAM}: {message} (a flag for every run; see `python -m grader train --help`).")

    parser.error = error
    return parser


@dataclasses.dataclass
class Plan:
    label: str  # "lr=1e-3"
    value: str
    folder: Path
    argv: list  # for train.main
    run: object = None  # grader.training.run.Run, checked
    state: str = "new"  # new, finished, resume


def flag_argv(action, value: str) -> list[str]:
    """The train flags that set this action to value (text as given)."""
    option = next(o for o in action.option_strings if o.startswith("--"))
    if isinstance(action, argparse.BooleanOptionalAction) or isinstance(action, argparse._StoreTrueAction):
        word = value.strip().lower()
        if word not in TRUE + FALSE:
            raise UsageError(f"--vary {action.dest}: {value!r} is not true or false.")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [option] if word in TRUE else ["--no-" + option[2:]]
        return [option] if word in TRUE else []
    return [option, value]


def parse_vary(text: str, parser):
    """(setting name, the train action, [values]) of --vary NAME=V1,V2,...; one sentence for what does not work."""
    if "=" not in text:
        raise UsageError(f"--vary {text!r}: write SETTING=V1,V2,... e.g. --vary lr=1e-3,3e-3.")
    name, values = text.split("=", 1)
    dest = name.strip().lstrip("-").replace("-", "_")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in NOT_VARIED}
    if dest not in actions:
        import difflib

        close = difflib.get_close_matches(dest, list(actions), n=3)
        maybe = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--vary: there is no setting {name.strip()!r}{maybe}; any flag of `python -m grader train` "
                         f"works, e.g. lr, n_layer, n_embd, pos_emb, norm, mlp, batch_size, weight_decay.")
    seen = []
    for value in values.split(","):
        value = value.strip()
        if not value:
            raise UsageError(f"--vary {name.strip()}: an empty value in {values!r}.")
        if value not in seen:
            seen.append(value)
    return dest, actions[dest], seen


def plan(argv) -> tuple:
    """(args, plans): every run's train arguments, checked before torch is imported."""
    args, extra = build_parser().parse_known_args(argv)
    if len(args.vary) > 1:
        raise UsageError("Vary one setting at a time (one --vary); give the others as plain flags for every run.")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}.")
    from grader.training.presets import preset
    from grader.training.run import Run
    from grader.training.runtime import TrainError
    from grader.training.train import parse_args as train_parse_args

    try:
        chosen = preset(args.preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tparser = train_parser()
    dest, action, values = parse_vary(args.vary[0], tparser)
    for token in extra:
        if token in ("--out", "--resume") or token.startswith(("--out=", "--resume=")):
            raise UsageError(f"{token.split('=')[0]} is the experiment's to choose: use --out for the experiment's "
                             f"folder; rerunning resumes and skips by itself.")
    steps = args.max_steps or chosen["train"]["max_steps"]
    out = Path(args.out or f"runs/experiment-{args.preset}-{dest}")
    base = ["--preset", args.preset, "--max-steps", str(steps), "--sample-tokens", "0", "--final-sample-tokens", "0"]
    if args.impl:
        base = ["--impl", args.impl, *base]
    plans = []
    for value in values:
        label = f"{dest}={value}"
        folder = out / re.sub(r"[^A-Za-z0-9._=+-]", "_", label)
        vary_argv = flag_argv(action, value)
        run_argv = [*base, *extra, *vary_argv, "--out", str(folder)]
        try:  # train's own checks: types, choices and the flags that go together, one sentence
            ns, model_flags, setting_flags = train_parse_args(run_argv)
        except UsageError as error:
            raise UsageError(f"--vary {dest}={value}: {str(error).split(': ', 1)[-1]}") from None
        ns.overwrite = True  # only the flags are checked here; existing runs are resumed or skipped, never replaced
        try:
            checked = Run(ns, model_flags, setting_flags)
        except TrainError as error:
            raise UsageError(f"--vary {label}: {error}") from None
        plans.append(Plan(label, value, folder, run_argv, checked))
    for p in plans:
        p.state = existing_state(p, steps)
    return args, dest, steps, out, plans


def existing_state(p: Plan, steps: int) -> str:
    """new, finished (skip) or resume; one sentence if the folder holds a run with other settings."""
    metrics_file, ckpt = p.folder / "metrics.json", p.folder / "ckpt.pt"
    if not ckpt.exists() and not metrics_file.exists():
        return "new"
    if not ckpt.exists():
        raise UsageError(f"{p.folder} holds a metrics.json but no checkpoint: it is not a run of this experiment; "
                         f"use another --out.")
    if not metrics_file.exists():
        return "resume"  # a run stopped before it wrote its metrics: train resumes it, checking its settings
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{metrics_file} cannot be read; delete that run's folder or use another --out.") from None
    wanted = dataclasses.asdict(p.run.settings)
    from solutions.config import GPTConfig

    config = dataclasses.asdict(GPTConfig(**{**p.run.preset["model"], **p.run.model_flags, "vocab_size": 2}))
    stored_config = dict(metrics.get("config") or {})
    # the optimizer a preset names may have fallen back (a modern preset trains with AdamW until the learner's 12
    # passes; grader/training/run.py): a run is compared on it only when --optimizer was given
    same_anyway = {"max_steps"} | ({"optimizer"} if "optimizer" not in p.run.setting_flags else set())
    differ = [k for k in wanted if k not in same_anyway and metrics.get("settings", {}).get(k) != wanted[k]]
    differ += [k for k in config if k != "vocab_size" and stored_config.get(k) != config[k]]
    if metrics.get("preset") != p.run.preset_name:
        differ.append("preset")
    if differ:
        k = differ[0]
        have = metrics.get("settings", {}).get(k, stored_config.get(k, metrics.get(k)))
        want = wanted.get(k, config.get(k, p.run.preset_name))
        raise UsageError(f"{p.folder} holds a run with other settings ({k} {have!r}, not {want!r}): nothing was "
                         f"changed; use another --out.")
    done = metrics.get("steps", 0)
    if done >= steps and metrics.get("final"):
        if done > steps:
            raise UsageError(f"{p.folder} holds a run of {done} steps, more than --max-steps {steps}: use another --out.")
        return "finished"
    return "resume"


# --- running -----------------------------------------------------------------------------------------------


def run_one(p: Plan, i: int, n: int) -> int:
    from grader.training import train

    argv = [*p.argv, "--resume"] if p.state == "resume" else p.argv
    verb = "resuming" if p.state == "resume" else "training"
    print(f"[{i}/{n}] {p.label}: {verb} into {p.folder}", file=sys.stderr, flush=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # the header, evaluations and samples go to the run's train.log
        code = train.main(argv)
    if p.folder.is_dir():
        with open(p.folder / "train.log", "a", encoding="utf-8") as f:
            f.write(log.getvalue())
    return code


def read_metrics(p: Plan) -> dict | None:
    try:
        return json.loads((p.folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def main(argv=None, console=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, dest, steps, out, plans = plan(argv)
    except SystemExit as done:
        return int(done.code or 0)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    from data.shakespeare import DataError

    statuses, code = {}, 0
    todo = [p for p in plans if p.state != "finished"]
    for p in plans:
        if p.state == "finished":
            print(f"{p.label}: finished earlier in {p.folder}, skipped", file=sys.stderr)
            statuses[p.label] = "done"
    try:
        for i, p in enumerate(todo, start=1):
            result = run_one(p, i, len(todo))
            if result == 0:
                statuses[p.label] = "done"
            elif result == 1:
                statuses[p.label] = "diverged (loss NaN/inf)"
            elif result == 130:
                statuses[p.label] = "stopped"
                code = 130
                break
            else:
                return result  # train printed its sentence (bad data, an unfinished part): nothing more to run
    except KeyboardInterrupt:
        print("\nStopped; the finished runs are kept.", file=sys.stderr)
        code = 130
    except DataError as error:
        print(error, file=sys.stderr)
        return 2
    summarize(args, dest, steps, out, plans, statuses, console)
    if code == 130:
        print("Stopped. Run the same command again to resume and skip what finished.", file=sys.stderr)
    return code


def summarize(args, dest, steps, out, plans, statuses, console=None):
    from rich import box
    from rich.table import Table

    from grader import screens
    from grader.inside import figures
    from grader.training.report import write_json

    con = console or screens.console()
    curves, rows, floor = [], [], None
    for p in plans:
        m = read_metrics(p)
        if m is None:
            rows.append(dict(label=p.label, status=statuses.get(p.label, "not run")))
            continue
        curves.append((p.label, [(e["step"], e["val_loss"]) for e in m.get("eval", []) if e.get("val_loss") is not None]))
        final = m.get("final") or {}
        floor = m.get("best_possible_loss", floor)
        rows.append(dict(label=p.label, folder=str(p.folder), status=statuses.get(p.label, "not run"),
                         steps=m.get("steps"), val_loss=final.get("val_loss"), train_loss=final.get("train_loss"),
                         wall_s=(m.get("timing") or {}).get("wall"), parameters=m.get("parameters")))
    if not curves:
        con.print("No run finished yet: nothing to compare.")
        return
    out.mkdir(parents=True, exist_ok=True)
    figure = figures.experiment(curves, out / "experiment.png",
                                f"Validation loss, --preset {args.preset}, {steps} steps each, varying {dest}", floor)
    write_json(dict(preset=args.preset, vary=dest, max_steps=steps, runs=rows), out / "experiment.json")
    table = Table(title=f"Varying {dest} (--preset {args.preset}, {steps} steps each)", box=box.SIMPLE_HEAD,
                  title_justify="left")
    for column in ("run", "val loss", "train loss", "steps", "wall time", "parameters", "status"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    finished = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    best = min(finished) if finished else None
    for r in rows:
        val = r.get("val_loss")
        table.add_row(r["label"], "—" if val is None else f"{val:.4f}",
                      "—" if r.get("train_loss") is None else f"{r['train_loss']:.4f}",
                      "—" if r.get("steps") is None else str(r["steps"]),
                      "—" if r.get("wall_s") is None else f"{r['wall_s']:.1f} s",
                      "—" if r.get("parameters") is None else f"{r['parameters']:,}", r["status"],
                      style="bold green" if val is not None and val == best and len(finished) > 1 else "")
    table.caption = "parameters counted as nanoGPT does (without the position embedding); wall time of the whole run"
    con.print(table)
    con.print(f"wrote {figure}")
    con.print(f"wrote {out / 'experiment.json'}")


if __name__ == "__main__":
    sys.exit(main())
