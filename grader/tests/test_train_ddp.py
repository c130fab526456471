"""`python -m grader train` with two processes (distributed data parallel, gloo on the CPU).

Two processes are started the way torchrun starts them: the same command, with RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the environment (torch.distributed's env:// contract, which
`Distributed` in grader/training/runtime.py reads). Launching them ourselves instead of through `torchrun` spares a
third Python that imports torch, and lets rank 1 be given its own --out, so that "rank 1 writes nothing"
can be seen. A tiny model trains for 3 steps on a small text file in a tmp dir; the whole file takes a
few seconds, almost all of it two Pythons importing torch.
"""

import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist

from grader.training import train as train_cmd
from grader.registry import ROOT
from grader.training import checkpoint

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("this PyTorch has no torch.distributed gloo backend", allow_module_level=True)

WORLD = 2
STEPS = 3
WORDS = "to be or not that is the question whether tis nobler in mind suffer slings arrows of outrageous fortune"


def small_text(n_chars=6000):
    r = random.Random(0)
    out = []
    while sum(map(len, out)) < n_chars:
        word = r.choice(WORDS.split())
        out.append(word.upper() + ":\n" if r.random() < 0.08 else word + " ")
    return "".join(out)


def train_args(data, out, *extra):
    return ["--impl", "solutions", "--data", str(data), "--preset", "tiny", "--out", str(out),
            "--max-steps", str(STEPS), "--eval-interval", "1000", "--eval-iters", "1", "--sample-tokens", "0",
            "--final-sample-tokens", "0", "--dropout", "0", "--device", "cpu", *extra]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv_of_rank, logs):
    """Run `python -m grader train <argv_of_rank(rank)>` in WORLD processes; their exit codes.

    If one process fails, the others are stopped (they would wait for it forever in a collective).
    A port taken between free_port() and rank 0 binding it is retried with another port.
    """
    for attempt in range(3):
        env = {**os.environ, "WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
               "OMP_NUM_THREADS": "1"}
        procs = []
        for rank in range(WORLD):
            with open(logs / f"rank{rank}.out", "w") as out, open(logs / f"rank{rank}.err", "w") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "grader", "train", *argv_of_rank(rank)], cwd=ROOT,
                    env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, stdout=out, stderr=err))
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
        codes = [p.wait() for p in procs]
        errors = "".join((logs / f"rank{rank}.err").read_text() for rank in range(WORLD))
        if codes == [0] * WORLD or "address already in use" not in errors.lower():
            return codes
    return codes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of the same 3 steps: 2 processes x accum 1, 1 process x accum 2, and 1 process x accum 1."""
    root = tmp_path_factory.mktemp("ddp")
    data = root / "text.txt"
    data.write_text(small_text(), encoding="utf-8")
    ddp = root / "ddp"
    codes = launch(lambda rank: train_args(data, ddp if rank == 0 else root / f"rank{rank}", "--grad-accum", "1"),
                   root)
    logs = {name: (root / name).read_text() for name in ("rank0.out", "rank0.err", "rank1.out", "rank1.err")}
    assert codes == [0] * WORLD, f"exit codes {codes}; rank 0 stderr:\n{logs['rank0.err']}\nrank 1 stderr:\n{logs['rank1.err']}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, accum in (("single", "2"), ("half", "1")):
            assert train_cmd.main(train_args(data, root / name, "--grad-accum", accum)) == 0
    finally:
        torch.set_num_threads(threads)
    return root, logs


def load(out):
    return checkpoint.load(out / checkpoint.FILENAME)


def test_two_processes_train_exactly_like_one_process_accumulating_both_micro_batches(runs):
    # Each step, grader/train.py draws accum * world micro-batches from one generator that every process seeds
    # alike, and process r takes slice [r * accum, (r + 1) * accum). So 2 processes x --grad-accum 1 see the
    # micro-batches that 1 process x --grad-accum 2 sees. DDP averages the two gradients, (g0 + g1) / 2, which
    # is what accumulating loss / 2 over both gives (g0 / 2 + g1 / 2); the same initial weights (seeded),
    # clipping of that one gradient and the same AdamW step follow. Float32 sums in another order may differ
    # in the last bit, hence the float32 tolerance (on this machine they are bit for bit equal).
    root, _ = runs
    ddp, single, half = load(root / "ddp"), load(root / "single"), load(root / "half")
    assert ddp["step"] == single["step"] == STEPS
    assert ddp["model"].keys() == single["model"].keys()
    for key in single["model"]:
        torch.testing.assert_close(ddp["model"][key], single["model"][key], atol=1e-6, rtol=1e-5,
                                   msg=lambda m: f"{key} after {STEPS} steps, 2 processes vs 1 process x accum 2: {m}")
    ddp_losses = [loss for _, loss in ddp["metrics"]["train"]]  # the mean over both processes, each step
    single_losses = [loss for _, loss in single["metrics"]["train"]]
    torch.testing.assert_close(ddp_losses, single_losses, atol=1e-6, rtol=1e-5)
    # Not vacuous: rank 1's micro-batch mattered (one process with only rank 0's micro-batch ends elsewhere).
    assert not all(torch.allclose(ddp["model"][k], half["model"][k], atol=1e-6, rtol=1e-5) for k in half["model"])
    metrics = json.loads((root / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and metrics["tokens_per_step"] == 2 * 8 * 32  # batch 8 x context 32 x 2


def test_only_the_first_process_writes_files_or_prints(runs):
    root, logs = runs
    assert not (root / "rank1").exists(), "rank 1 was given --out <tmp>/rank1 and must not create it"
    written = sorted(p.name for p in (root / "ddp").iterdir())
    assert written == sorted(p.name for p in (root / "single").iterdir())  # ckpt.pt, loss.png, ... and no tmp files
    assert "Training the reference GPT" in logs["rank0.out"] and logs["rank1.out"] == ""
