"""How many threads torch uses inside one operation (its intra-op threads), chosen from the work.

torch's default is one thread per core. For the small tensors of this course that is
often the wrong choice: splitting a 32-wide matmul across cores costs more than the
matmul, and when the machine is busy (another program, a test suite, an editor's
language server) each of torch's threads spins waiting for a core, so a step can take
ten or a hundred times longer than on one thread. So:

- small work (the kata's tests, the `tiny` preset, sampling one sequence) runs on
  one thread;
- larger work (the `cpu` preset and up) measures both choices on the real model
  (`calibrate`: a few forward/backward passes on 1 thread and on every available core,
  alternated) and keeps the faster, for that run;
- `--threads N` on train, sample and watch, and `--kata-threads N` for pytest, fix it
  (0: torch's own default).

Different thread counts may round the last bits of a result differently, so a run
records the count it used and `--resume` keeps it (bit-exact resume).

    n = choose(flops_per_step)            # 1, or None: calibrate on the real work
    parser.add_argument("--threads", type=flag)   # the flag's parser
    n = calibrate(step_fn)                # the faster of 1 and all cores, measured
    n = pick(flops_per_step, step_fn, device)   # both in one, and 0 (torch's default) on a GPU
    apply(n)                              # torch.set_num_threads(n) (torch must be imported)
"""

import os
import statistics
import time

SMALL_WORK_FLOPS = 2e8  # below this per step one thread wins on this course's shapes (the tiny preset: 4e7); the
# cpu preset (1e9) is measured: two threads win on a quiet 2-core machine (bench/train_speed.py --threads-check)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def flag(text: str) -> int:
    """argparse's type for --threads N: a whole number >= 0 (0: torch's default)."""
    import argparse

    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a whole number (0 for torch's default), not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative, not {value}")
    return value


def choose(flops_per_step: float) -> int | None:
    """1 for small work (or a single core); None when the work is large enough to measure (calibrate)."""
    if available_cores() == 1 or flops_per_step < SMALL_WORK_FLOPS:
        return 1
    return None


def pick(flops_per_step: float, step, device="cpu") -> int:
    """The thread count for work on device: chosen from the work on the CPU (choose, else calibrate with step());
    0 (torch's default) on a GPU, where the CPU's threads only launch kernels and timing them would time launches."""
    if str(device).split(":")[0] != "cpu":
        return 0
    return choose(flops_per_step) or calibrate(step)


MORE_THREADS_MARGIN = 0.8  # more threads are kept only when they take at most this fraction of one thread's time


def calibrate(step, candidates=None, rounds: int = 6) -> int:
    """The thread count in candidates (default: 1 and all cores) under which step() runs fastest.

    step() must do the same work each call and leave no trace (a forward and backward pass
    whose gradients are then zeroed). The candidates alternate, so a change in the
    machine's load hits both; the mean of `rounds` timings decides (not the median: on a
    busy machine a step on several threads waits for its slowest thread, and those waits
    are the long tail a median hides), and more threads must win by a margin: wrongly
    chosen under load they cost several times more than one thread wrongly kept on a quiet
    machine (bench/train_speed.py --threads-check).
    """
    import torch

    candidates = candidates or sorted({1, min(available_cores(), torch_default(torch))})
    if len(candidates) == 1:
        return candidates[0]
    before = torch.get_num_threads()
    times = {n: [] for n in candidates}
    try:
        for n in candidates:  # one untimed call each: allocator and thread-pool warm-up
            torch.set_num_threads(n)
            step()
        for _ in range(rounds):
            for n in candidates:
                torch.set_num_threads(n)
                start = time.perf_counter()
                step()
                times[n].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    mean = {n: statistics.fmean(times[n]) for n in candidates}
    best = min(candidates, key=mean.get)
    if best != candidates[0] and mean[best] > MORE_THREADS_MARGIN * mean[candidates[0]]:
        return candidates[0]
    return best


_torch_default = None


def torch_default(torch) -> int:
    """torch's own intra-op thread count, as it was before the grader first changed it (what 0 asks for)."""
    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    return _torch_default


def apply(n: int) -> int:
    """Set torch's intra-op threads to n (0: torch's default); the count now in use."""
    import torch

    default = torch_default(torch)  # remembered before the first change
    torch.set_num_threads(n or default)
    return torch.get_num_threads()
