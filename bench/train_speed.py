"""How fast does `python -m grader train` learn Tiny Shakespeare? Prints, for the reference (--impl solutions):

(a) the anchor (--anchor, ~200 s on a laptop): nanoGPT's documented CPU run of shakespeare-char (4 layers x 128,
    4 heads, context 64, batch 12, AdamW lr 1e-3 -> 1e-4, warmup 100, 2000 iterations, dropout 0, no biases),
    evaluated on 200 batches at the end: its wall time and final validation loss (nanoGPT reports about 1.88);
(b) --preset cpu as a learner runs it: wall time and final validation loss (target: val <= 1.88 in at most half
    the anchor's wall time);
(c) --preset cpu-modern against --preset cpu at equal wall time: cpu-modern's validation loss when its training
    loop has run as long as cpu's did (interpolated between its evaluations), and with --matched also a run of
    cpu-modern whose schedule (--max-steps) is shortened or lengthened to end at cpu's wall time;
(d) throughput: tokens/s of the train steps alone, and the overhead ((wall - train steps) / train steps) both
    inside the training loop (metrics.json: evaluation, sampling, checkpoints, batches) and for the whole
    command (plus Python and torch imports, data preparation, the final sample and the reports), with the
    config of every run; `--throughput gpu gpu-modern --device cuda` adds short runs of other presets.

Two benchmarks stand alone (each prints the load average at its start and end):

--peer  (issue 10) nanoGPT itself against --preset cpu: ../shared/peer/train_nanogpt_char.py (nanoGPT's model.py,
        its laptop settings: --max_iters=2000 --eval_interval=2000 --final_eval_iters=200) and `python -m grader
        train --impl solutions --preset cpu` (no other flag: what a learner gets), interleaved (peer, ours, peer,
        ours; --rounds), both without OMP_NUM_THREADS/MKL_NUM_THREADS. Each run's wall time (the whole process),
        and each final model -- the peer's (saved with its --save, loaded with its own model.py) and our checkpoint
        -- evaluated here on the same 200 validation batches of 12 x 64 (the shape of the peer's final estimate).
        Goal: our val <= 1.88 in every run, in at most 0.5x the peer's wall time. Skipped when ../shared/peer/ is
        absent (the peer is never copied into the project).
--muon  (issue 11) --preset cpu-modern with --optimizer adamw and with --optimizer muon: the same steps, batches and
        evaluations (every --eval-interval steps on the same --eval-iters batches). Both curves, the step at which
        Muon first reaches AdamW's final validation loss (interpolated) and its fraction of the steps (goal: <= 75 %),
        the wall time at that point, and Muon's loss at AdamW's final wall time.

Each run is `python -m grader train ...` in a subprocess, written to a temporary --out (kept with --keep DIR);
the figures come from its metrics.json. Besides each run's own final estimate (its preset's eval_iters), every
checkpoint is evaluated afterwards on the same --final-eval-iters validation batches (batch 32, fixed seed), so
that the runs' losses compare on one estimate. Data: Tiny Shakespeare, found as the train command finds it
($KATA_DATA_DIR/tinyshakespeare/input.txt, the download cache, or a download).

    python bench/train_speed.py --quick                 # a few hundred steps: checks that the script works
    python bench/train_speed.py --anchor --matched      # the whole benchmark on a quiet machine (~30 min on 2 cores)
    python bench/train_speed.py --device cuda --throughput gpu gpu-modern
    python bench/train_speed.py --threads-check         # the thread choice, quiet and under load (~5 min)
    python bench/train_speed.py --peer                  # nanoGPT vs --preset cpu, twice each (~15-25 min)
    python bench/train_speed.py --muon                  # Muon vs AdamW on cpu-modern (~10-20 min)

Timings are only meaningful on a quiet machine (--peer and --muon interleave or pair their runs and report
ratios), except in --threads-check, which makes its own load (one busy
loop per core) to show the thread choice under it. With --compile, compilation lands in the first train steps.
"""

import argparse
import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NANOGPT_VAL = 1.88  # nanoGPT's README, for exactly the anchor's run on a laptop CPU
# nanoGPT: python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
#   --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
#   --lr_decay_iters=2000 --dropout=0.0   (the config: lr 1e-3, min_lr 1e-4, warmup 100, beta2 0.99,
#   weight decay 0.1, grad clip 1; nanoGPT's train.py default bias=False). Evaluated at the end on 200 batches.
ANCHOR = ["--preset", "cpu", "--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size", "64",
          "--no-bias", "--dropout", "0", "--batch-size", "12", "--grad-accum", "1", "--lr", "1e-3", "--min-lr", "1e-4",
          "--warmup-steps", "100", "--max-steps", "2000", "--lr-decay-steps", "2000", "--beta1", "0.9",
          "--beta2", "0.99", "--weight-decay", "0.1", "--grad-clip", "1.0", "--eval-interval", "2000",
          "--eval-iters", "200", "--sample-tokens", "0", "--final-sample-tokens", "0"]
QUICK_STEPS = 200


def override(argv, *pairs):
    """argv with each (flag, value) in pairs replacing that flag's value, or appended when argv lacks it."""
    argv = list(argv)
    for flag, value in pairs:
        if flag in argv:
            argv[argv.index(flag) + 1] = str(value)
        else:
            argv += [flag, str(value)]
    return argv


def shown(cmd):
    """The command as a person would type it (python, not this venv's full path)."""
    return shlex.join(["python" if cmd[0] == sys.executable else cmd[0], *cmd[1:]])


def train(name, args, work, common, threads=None, env=None):
    """Run `python -m grader train --impl solutions ARGS --out WORK/NAME`; its metrics and timings."""
    out = work / name
    cmd = [sys.executable, "-m", "grader", "train", "--impl", "solutions", *args, *common, "--out", str(out),
           *(["--threads", str(threads)] if threads is not None else [])]
    cmd_text = shown(cmd)
    print(f"[{name}] {cmd_text}", flush=True)
    log = work / f"{name}.log"
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        sys.exit(f"[{name}] exited {code}; the end of {log}:\n{tail}")
    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["final"] or {}
    print(f"[{name}] {wall:.1f} s, {metrics['steps']} steps, val loss {final.get('val_loss', float('nan')):.4f}",
          flush=True)
    return dict(name=name, cmd=cmd_text, out=out, wall=wall, metrics=metrics, common_val=None,
                load=(load, os.getloadavg()[0]))


def common_val(run, iters):
    """The validation loss of run's checkpoint on the same iters batches (32 x its context, seed 0) as every run."""
    import torch

    from grader.training import checkpoint
    from grader.training.corpus import prepare
    from grader.training.parts import load_parts

    ckpt = checkpoint.load(run["out"] / checkpoint.FILENAME)
    parts = load_parts("solutions")
    corpus = prepare(ckpt["run"]["data"], ckpt["tokenizer"]["kind"], ckpt["tokenizer"])
    config = parts.GPTConfig(**ckpt["config"])
    model = parts.GPT(config)
    model.load_state_dict(ckpt["model"])
    generator = torch.Generator().manual_seed(0)
    run["common_val"] = parts.estimate_loss(model, corpus.val, 32, config.block_size, iters, generator=generator)
    return run["common_val"]


def val_at(evals, elapsed):
    """(val loss, step) at `elapsed` seconds of the training loop, interpolated between evaluations."""
    previous = None
    for e in evals:
        if e["elapsed"] >= elapsed:
            if previous is None:
                return e["val_loss"], e["step"]
            f = (elapsed - previous["elapsed"]) / (e["elapsed"] - previous["elapsed"])
            return (previous["val_loss"] + f * (e["val_loss"] - previous["val_loss"]),
                    previous["step"] + f * (e["step"] - previous["step"]))
        previous = e
    return evals[-1]["val_loss"], evals[-1]["step"]  # it finished sooner: its final loss


def train_time(run):
    return run["metrics"]["timing"]["train_steps"]


def loop_wall(run):
    return run["metrics"]["timing"]["wall"]


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def describe(run):
    m = run["metrics"]
    c, s = m["config"], m["settings"]
    parts = f"{c['norm']}/{c['pos_emb']}/{c['mlp']}" + ("/qk-norm" if c["qk_norm"] else "") + \
            ("" if c["bias"] else "/no-bias") + ("" if c["tie_embeddings"] else "/untied") + \
            (f"/softcap {c['logit_softcap']:g}" if c["logit_softcap"] else "")
    return (f"{c['n_layer']}x{c['n_embd']}, {c['n_head']} heads, ctx {c['block_size']}, {parts}, "
            f"{m['parameters']:,} params; batch {s['batch_size']} x accum {s['grad_accum']} x {m['world_size']} "
            f"= {m['tokens_per_step']:,} tok/step, lr {s['lr']:g}, {m['steps']} steps; on {m['device']} "
            f"({m['dtype']}{', compiled' if m['compile'] else ''})")


def print_table(runs):
    print(f"\n{'run':<20}{'steps':>6}{'cmd wall':>10}{'loop wall':>11}{'val (own)':>11}{'val (common)':>14}"
          f"{'train tok/s':>13}{'loop tok/s':>12}{'ovh loop':>10}{'ovh cmd':>9}")
    for r in runs:
        m = r["metrics"]
        final = m["final"] or {}
        cmd_overhead = (r["wall"] - train_time(r)) / train_time(r) if train_time(r) else None
        print(f"{r['name']:<20}{m['steps']:>6}{r['wall']:>9.1f}s{loop_wall(r):>10.1f}s"
              f"{fmt(final.get('val_loss')):>11}{fmt(r['common_val']):>14}"
              f"{fmt(m['train_step_tokens_per_second'], ',.0f'):>13}{fmt(m['tokens_per_second'], ',.0f'):>12}"
              f"{fmt(m['overhead'], '.1%'):>10}{fmt(cmd_overhead, '.1%'):>9}")


class BusyLoops:
    """One process per core spinning at 100 % (a competing load: another program, a test suite)."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


THREAD_RUNS = {"tiny": 300, "cpu": 150}  # steps: enough for a steady rate, a few seconds each


def threads_check(work, common):
    """tiny and cpu presets' train-step tokens/s with the default thread choice, one thread and every core
    (torch's own default, what the command used before it chose), quiet and under a busy loop per core."""
    rows = []
    for load in ("quiet", "loaded"):
        with BusyLoops() if load == "loaded" else contextlib.nullcontext():
            for preset, steps in THREAD_RUNS.items():
                rates = {}
                for label, threads in (("default", None), ("1 thread", 1), ("all cores", 0)):
                    argv = ["--preset", preset, "--max-steps", str(steps), "--eval-interval", str(steps),
                            "--eval-iters", "1", "--sample-tokens", "0", "--final-sample-tokens", "0"]
                    run = train(f"{preset}-{load}-{label.replace(' ', '-')}", argv, work, common, threads,
                                env=learner_env())  # no OMP_NUM_THREADS: "all cores" must mean all cores
                    rates[label] = (run["metrics"]["train_step_tokens_per_second"], run["metrics"].get("threads"))
                rows.append((preset, load, rates))
    print(f"\n{'preset':<8}{'machine':<9}{'default (threads)':>22}{'1 thread':>12}{'all cores':>12}"
          f"{'best / default':>16}")
    for preset, load, rates in rows:
        default, chosen = rates["default"]
        best = max(rate for rate, _ in rates.values())
        print(f"{preset:<8}{load:<9}{default:>14,.0f} ({chosen}){rates['1 thread'][0]:>12,.0f}"
              f"{rates['all cores'][0]:>12,.0f}{best / default:>15.2f}x")
    print(f"  train-step tokens/s; 'loaded': one busy loop per core ({os.cpu_count()}) runs beside the training. "
          f"Goal: best / default <= 1.2 in every row.")


# --- (e) --peer: nanoGPT itself, side by side ----------------------------------------------------------------

PEER_DIR = ROOT.parent / "shared" / "peer"  # never copied into the project: called where it lies
PEER_SCRIPT = "train_nanogpt_char.py"
PEER_ARGS = ["--max_iters=2000", "--eval_interval=2000", "--final_eval_iters=200"]  # its laptop run, 200 batches
PEER_EVAL = dict(iters=200, batch_size=12, block_size=64, seed=0)  # the peer's final estimate's shape, one seed
PEER_GOAL = dict(val=1.88, ratio=0.5)  # issue 10: val <= 1.88 in every run, in at most half the peer's wall time


def learner_env():
    """This environment without thread-count variables: the defaults a learner's shell gives both programs."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def loadavg():
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def run_peer(name, work, threads, peer_args):
    """The peer's laptop run in a subprocess: wall time of the whole process, its JSON log and its saved model."""
    log_json, saved = work / f"{name}.json", work / f"{name}.pt"
    cmd = [sys.executable, str(PEER_DIR / PEER_SCRIPT), *peer_args, f"--json={log_json}", f"--save={saved}",
           *([f"--threads={threads}"] if threads else [])]
    print(f"[{name}] {shown(cmd)}", flush=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(work / f"{name}.log", "w") as f:
        code = subprocess.run(cmd, cwd=work, stdout=f, stderr=subprocess.STDOUT, env=learner_env()).returncode
    wall = time.perf_counter() - start
    if code != 0:
        tail = "\n".join((work / f"{name}.log").read_text(errors="replace").splitlines()[-15:])
        sys.exit(f"[{name}] exited {code}; the end of its log:\n{tail}")
    log = json.loads(log_json.read_text())
    run = dict(name=name, cmd=shown(cmd), wall=wall, steps=log["args"]["max_iters"], threads=log["args"]["threads"],
               own_val=log["final_eval"]["val"], train_steps=log["summary"]["train_wall_s"], saved=saved,
               load=(load, os.getloadavg()[0]), common_val=None)
    print(f"[{name}] {wall:.1f} s, {run['steps']} steps, val loss {run['own_val']:.4f} (its own 200 batches)", flush=True)
    return run


def peer_model(saved):
    """The peer's final model (nanoGPT's model.py, imported from where it lies) and its vocabulary."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("nanogpt_model", PEER_DIR / "nanogpt_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = torch.load(saved, map_location="cpu")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        model = module.GPT(module.GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])

    class Contiguous(torch.nn.Module):  # its loss views the targets; our get_batch slices them
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            return self.model(x.contiguous(), y.contiguous())

    return Contiguous(), state["stoi"]


def peer_common_vals(runs):
    """Every run's final model on the same validation batches (PEER_EVAL: 200 batches of 12 x 64, one seed)."""
    import torch

    from grader.training import checkpoint
    from grader.training.corpus import prepare
    from grader.training.parts import load_parts

    parts = load_parts("solutions")
    corpus = prepare("shakespeare", "char")
    e = PEER_EVAL

    def loss(model, val):
        generator = torch.Generator().manual_seed(e["seed"])
        return parts.estimate_loss(model, val, e["batch_size"], e["block_size"], e["iters"], generator=generator)

    for run in runs:
        if "saved" in run:  # the peer: its own character ids, the same characters at the same positions
            model, stoi = peer_model(run["saved"])
            ids = torch.tensor([stoi[corpus.tokenizer.decode([i])] for i in range(corpus.tokenizer.vocab_size)])
            run["common_val"] = loss(model, ids[corpus.val])
        else:
            ckpt = checkpoint.load(run["out"] / checkpoint.FILENAME)
            model = parts.GPT(parts.GPTConfig(**ckpt["config"]))
            model.load_state_dict(ckpt["model"])
            run["common_val"] = loss(model, corpus.val)


def peer_benchmark(work, common, threads, peer_threads, rounds, quick):
    """nanoGPT's laptop run and `--preset cpu` as a learner runs it, interleaved (peer, ours, peer, ours)."""
    if not (PEER_DIR / PEER_SCRIPT).exists():
        print(f"--peer: skipped, {PEER_DIR} is absent (the peer is nanoGPT, kept outside the project).")
        return
    print(f"--peer: {PEER_DIR / PEER_SCRIPT} (nanoGPT's model.py) against python -m grader train --impl solutions "
          f"--preset cpu; both without OMP_NUM_THREADS/MKL_NUM_THREADS (a learner's defaults). "
          f"Load average at the start: {loadavg()}", flush=True)
    peer_args, ours_args = PEER_ARGS, ["--preset", "cpu"]
    if quick:
        peer_args = [f"--max_iters={QUICK_STEPS}", f"--eval_interval={QUICK_STEPS}", "--final_eval_iters=20"]
        ours_args = ours_args + ["--max-steps", str(QUICK_STEPS)]
    runs = []
    for i in range(1, rounds + 1):
        runs.append(run_peer(f"peer-{i}", work, peer_threads, peer_args))
        ours = train(f"ours-{i}", ours_args, work, common, threads, env=learner_env())
        runs.append(dict(ours, steps=ours["metrics"]["steps"], threads=ours["metrics"]["threads"],
                         own_val=ours["metrics"]["final"]["val_loss"], train_steps=train_time(ours)))
    peer_common_vals(runs)
    e = PEER_EVAL
    print(f"\n{'run':<8}{'wall':>8}{'train steps':>13}{'steps':>7}{'threads':>9}{'val (own)':>11}"
          f"{'val (same batches)':>20}{'load 1 min: start -> end':>27}")
    for r in runs:
        print(f"{r['name']:<8}{r['wall']:>7.1f}s{r['train_steps']:>12.1f}s{r['steps']:>7}{r['threads']:>9}"
              f"{r['own_val']:>11.4f}{r['common_val']:>20.4f}{r['load'][0]:>19.1f} -> {r['load'][1]:.1f}")
    print(f"  wall: the whole process; train steps: the time inside its optimizer steps; val (own): each program's "
          f"final estimate (the peer: 200 batches of 12 x 64; ours: its preset's eval_iters batches); val (same "
          f"batches): each final model on the same {e['iters']} validation batches of {e['batch_size']} x "
          f"{e['block_size']} (seed {e['seed']}), evaluated here")
    peers, ours = runs[0::2], runs[1::2]
    ratios = [o["wall"] / p["wall"] for p, o in zip(peers, ours)]
    overall = sum(o["wall"] for o in ours) / sum(p["wall"] for p in peers)
    step_ratio = sum(o["train_steps"] for o in ours) / sum(p["train_steps"] for p in peers)
    print("\nwall time, ours / peer: " + ", ".join(f"round {i}: {r:.2f}" for i, r in enumerate(ratios, 1))
          + f"; all rounds: {overall:.2f} (train steps alone: {step_ratio:.2f})")
    worst = max(o["common_val"] for o in ours)
    print(f"goal (issue 10): ours val <= {PEER_GOAL['val']} in every run: {'yes' if worst <= PEER_GOAL['val'] else 'NO'} "
          f"(worst {worst:.4f}; the peer's: " + ", ".join(f"{p['common_val']:.4f}" for p in peers) + "); "
          f"wall <= {PEER_GOAL['ratio']} x the peer's in every round: "
          f"{'yes' if max(ratios) <= PEER_GOAL['ratio'] else 'NO'}")
    print(f"Load average at the end: {loadavg()}")


# --- (f) --muon: Muon against AdamW through the train command -------------------------------------------------

MUON_GOAL = 0.75  # issue 11: Muon reaches AdamW's final validation loss within 75 % of the steps


def reach(evals, target):
    """(step, elapsed) at which the curve first reaches target, interpolated between evaluations; None if never."""
    for a, b in zip(evals, evals[1:]):
        if b["val_loss"] <= target:
            f = 1.0 if a["val_loss"] == b["val_loss"] else (a["val_loss"] - target) / (a["val_loss"] - b["val_loss"])
            f = min(max(f, 0.0), 1.0)
            return a["step"] + f * (b["step"] - a["step"]), a["elapsed"] + f * (b["elapsed"] - a["elapsed"])
    return None


def muon_benchmark(work, common, threads, steps, interval, eval_iters, final_iters):
    """--preset cpu-modern with --optimizer adamw and with --optimizer muon: same steps, same batches, same
    evaluations; when does Muon reach AdamW's final validation loss?"""
    from grader.training.presets import preset

    steps = steps or preset("cpu-modern")["train"]["max_steps"]
    print(f"--muon: --preset cpu-modern, {steps} steps, evaluated every {interval} steps on the same {eval_iters} "
          f"validation batches in both runs. Load average at the start: {loadavg()}", flush=True)
    argv = ["--preset", "cpu-modern", "--max-steps", str(steps), "--eval-interval", str(interval),
            "--eval-iters", str(eval_iters), "--sample-tokens", "0", "--final-sample-tokens", "0"]
    runs = {kind: train(kind, argv + ["--optimizer", kind], work, common, threads) for kind in ("adamw", "muon")}
    for r in runs.values():
        common_val(r, final_iters)
    adamw, muon = runs["adamw"]["metrics"], runs["muon"]["metrics"]
    curves = {kind: {e["step"]: e for e in runs[kind]["metrics"]["eval"]} for kind in runs}
    every = max(interval, round(steps / 8 / interval) * interval)
    shown_steps = sorted(s for s in curves["adamw"] if s % every == 0 or s == steps)
    print(f"\nvalidation loss (the same {eval_iters} batches in both runs; the loop's elapsed seconds in brackets)")
    print(f"{'step':>6}{'adamw':>18}{'muon':>18}")
    for s in shown_steps:
        a, m = curves["adamw"].get(s), curves["muon"].get(s)
        print(f"{s:>6}" + "".join(f"{e['val_loss']:>10.4f} ({e['elapsed']:>5.0f}s)" if e else f"{'-':>18}" for e in (a, m)))
    target = adamw["final"]["val_loss"]
    hit = reach(muon["eval"], target)
    print(f"\nAdamW's final validation loss: {target:.4f} at step {adamw['steps']} ({adamw['final']['elapsed']:.0f} s "
          f"of loop); Muon's: {muon['final']['val_loss']:.4f}. On {final_iters} batches of 32 (seed 0): adamw "
          f"{runs['adamw']['common_val']:.4f}, muon {runs['muon']['common_val']:.4f}")
    per_step = (muon["timing"]["train_steps"] / muon["steps"]) / (adamw["timing"]["train_steps"] / adamw["steps"])
    if hit is None:
        print(f"Muon does not reach {target:.4f} within {steps} steps: goal (<= {MUON_GOAL:.0%} of the steps) NOT met.")
    else:
        step, elapsed = hit
        fraction = step / adamw["steps"]
        print(f"Muon reaches it at step {step:.0f}: {fraction:.0%} of the steps (goal <= {MUON_GOAL:.0%}: "
              f"{'met' if fraction <= MUON_GOAL else 'NOT met'}); after {elapsed:.0f} s of loop, "
              f"{elapsed / adamw['final']['elapsed']:.0%} of AdamW's wall time.")
    val, _ = val_at(muon["eval"], adamw["final"]["elapsed"])
    print(f"Same wall time: at AdamW's end ({adamw['final']['elapsed']:.0f} s) Muon's val is {val:.4f} (interpolated). "
          f"A Muon train step costs {per_step:.2f}x an AdamW one (threads: adamw {adamw['threads']}, muon "
          f"{muon['threads']}).")
    print(f"Load average at the end: {loadavg()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--anchor", action="store_true", help="also run nanoGPT's laptop run (~200 s on a laptop)")
    parser.add_argument("--matched", action="store_true",
                        help="also run cpu-modern with --max-steps chosen to end at cpu's wall time")
    parser.add_argument("--no-modern", action="store_true", help="skip (c), the cpu-modern runs")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_STEPS} steps per run (eval every 50, common eval on 20 batches): checks the script")
    parser.add_argument("--device", default="auto", help="passed to every run: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--throughput", nargs="*", default=[], metavar="PRESET",
                        help="also measure these presets' throughput (e.g. gpu gpu-modern on CUDA): short runs, "
                             "no evaluation")
    parser.add_argument("--throughput-steps", type=int, default=300)
    parser.add_argument("--final-eval-iters", type=int, default=None,
                        help="validation batches of the common final estimate (default 200; 20 with --quick)")
    parser.add_argument("--extra", default="", metavar="'ARGS'",
                        help="more train flags for every run, e.g. --extra='--compile' or --extra='--dtype float32'")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="--threads N for every run (default: the train command's own choice)")
    parser.add_argument("--threads-check", action="store_true",
                        help="only the thread check: tiny and cpu presets' tokens/s with the default thread choice, "
                             "1 thread and all cores, quiet and under a busy loop per core")
    parser.add_argument("--peer", action="store_true",
                        help="only the peer comparison: nanoGPT (../shared/peer) against --preset cpu, interleaved "
                             "(~15-25 min on a busy 2-core machine)")
    parser.add_argument("--peer-threads", type=int, metavar="N",
                        help="with --peer: the peer's --threads (default: its own, 2)")
    parser.add_argument("--rounds", type=int, default=2, help="with --peer: pairs of runs (peer, ours), default 2")
    parser.add_argument("--muon", action="store_true",
                        help="only Muon against AdamW: --preset cpu-modern with each optimizer (~15 min)")
    parser.add_argument("--muon-steps", type=int, metavar="N", help="with --muon: steps (default: the preset's)")
    parser.add_argument("--eval-interval", type=int, default=50, help="with --muon: steps between evaluations")
    parser.add_argument("--eval-iters", type=int, default=20, help="with --muon: batches per evaluation")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs' outputs and logs in DIR (default: a temp dir)")
    args = parser.parse_args()

    from data.shakespeare import DataError, path

    try:
        data = path()
    except DataError as error:
        sys.exit(str(error))
    common = (["--device", args.device] if args.device != "auto" else []) + shlex.split(args.extra)
    quick = [("--max-steps", QUICK_STEPS), ("--eval-interval", 50)] if args.quick else []
    eval_iters = args.final_eval_iters or (20 if args.quick else 200)
    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="train_speed_"))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)  # for the common final estimate, here
    print(f"Tiny Shakespeare: {data}" + (f" (KATA_DATA_DIR={os.environ['KATA_DATA_DIR']})"
                                         if os.environ.get("KATA_DATA_DIR") else ""))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
          + (f", CUDA: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
          + (f" (--threads {args.threads})" if args.threads else "")
          + (" -- QUICK: a check of the script, not a benchmark" if args.quick else ""))
    print(f"outputs in {work}\n", flush=True)

    if args.threads_check or args.peer or args.muon:
        try:
            if args.threads_check:
                threads_check(work, common)
            if args.peer:
                peer_benchmark(work, common, args.threads, args.peer_threads, args.rounds, args.quick)
            if args.muon:
                muon_benchmark(work, common, args.threads, QUICK_STEPS if args.quick else args.muon_steps,
                               args.eval_interval, args.eval_iters, eval_iters)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return

    runs = {}

    def run(name, argv):
        runs[name] = train(name, argv, work, common, args.threads)
        return runs[name]

    try:
        if args.anchor:
            anchor = ANCHOR
            if args.quick:
                anchor = override(ANCHOR, ("--max-steps", QUICK_STEPS), ("--lr-decay-steps", QUICK_STEPS),
                                  ("--eval-interval", QUICK_STEPS), ("--eval-iters", 20))
            run("anchor", anchor)
        cpu = run("cpu", override(["--preset", "cpu"], *quick))
        if not args.no_modern:
            modern = run("cpu-modern", override(["--preset", "cpu-modern"], *quick))
            if args.matched:  # as many steps as fit in cpu's loop wall time at cpu-modern's pace
                pace = (loop_wall(modern) / modern["metrics"]["steps"]) / (loop_wall(cpu) / cpu["metrics"]["steps"])
                steps = max(1, round(cpu["metrics"]["steps"] / pace))
                run("cpu-modern@matched", override(["--preset", "cpu-modern"], *quick, ("--max-steps", steps)))
        for preset in args.throughput:
            n = 30 if args.quick else args.throughput_steps
            run(f"{preset}-tput", ["--preset", preset, "--max-steps", str(n), "--eval-interval", str(n),
                                   "--eval-iters", "1", "--sample-tokens", "0", "--final-sample-tokens", "0"])
        for name, r in runs.items():
            if not name.endswith("-tput"):
                common_val(r, eval_iters)

        print_table(runs.values())
        print(f"  val (own): the run's last evaluation (its preset's eval_iters); val (common): its checkpoint on the "
              f"same {eval_iters} validation batches of 32; ovh loop/cmd: (loop or command wall - train steps) / train steps")

        print("\n(a) anchor: " + (f"{runs['anchor']['wall']:.1f} s, val {fmt(runs['anchor']['metrics']['final']['val_loss'])}"
                                  f" (common {fmt(runs['anchor']['common_val'])}); nanoGPT reports {NANOGPT_VAL}"
                                  if "anchor" in runs else "not run (--anchor)"))
        own = cpu["metrics"]["final"]["val_loss"]
        line = f"(b) cpu: {cpu['wall']:.1f} s, val {own:.4f} (common {fmt(cpu['common_val'])}); val <= {NANOGPT_VAL}: " \
               f"{'yes' if max(own, cpu['common_val']) <= NANOGPT_VAL else 'NO'}"
        if "anchor" in runs:
            half = runs["anchor"]["wall"] / 2
            line += f"; wall <= half the anchor's ({half:.1f} s): {'yes' if cpu['wall'] <= half else 'NO'}"
        print(line)
        if "cpu-modern" in runs:
            modern = runs["cpu-modern"]
            budget = cpu["metrics"]["final"]["elapsed"]
            val, step = val_at(modern["metrics"]["eval"], budget)
            print(f"(c) equal wall time, {budget:.1f} s of training loop (cpu's last evaluation): cpu val {own:.4f}, "
                  f"cpu-modern val {val:.4f} (interpolated, at step ~{step:.0f} of its {modern['metrics']['steps']}); "
                  f"cpu-modern's own end: val {modern['metrics']['final']['val_loss']:.4f} "
                  f"at {modern['metrics']['final']['elapsed']:.1f} s")
            if "cpu-modern@matched" in runs:
                m = runs["cpu-modern@matched"]
                print(f"    cpu-modern with --max-steps {m['metrics']['steps']} (its schedule sized to cpu's wall): val "
                      f"{m['metrics']['final']['val_loss']:.4f} (common {fmt(m['common_val'])}) at "
                      f"{m['metrics']['final']['elapsed']:.1f} s vs cpu {own:.4f} (common {fmt(cpu['common_val'])}) "
                      f"at {budget:.1f} s")
        print("(d) throughput and where the time goes (seconds):")
        for r in runs.values():
            t = r["metrics"]["timing"]
            print(f"  {r['name']:<20} {describe(r)}")
            print(f"  {'':<20} train steps {t['train_steps']:.1f}, batches {t['data']:.1f}, eval {t['eval']:.1f}, "
                  f"sample {t['sample']:.1f}, checkpoints {t['checkpoint']:.1f}, rest of loop "
                  f"{t['wall'] - sum(t[k] for k in ('train_steps', 'data', 'eval', 'sample', 'checkpoint')):.1f}, "
                  f"outside the loop {r['wall'] - t['wall']:.1f}")
        print("\nCommands:")
        for r in runs.values():
            print(f"  {r['cmd']}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
