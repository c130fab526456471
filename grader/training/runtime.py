"""Where and how a run executes: the device, autocast, several processes (torchrun), Ctrl-C."""

import contextlib
import os
import signal


class TrainError(ValueError):
    """Something the learner must change, in one sentence; the command exits with 2."""


def check_device_name(name: str, auto: bool = True) -> None:
    """A --device that names no device is refused in one sentence, before any work (no torch needed)."""
    kinds = ("auto", "cpu", "cuda", "mps") if auto else ("cpu", "cuda", "mps")
    kind, colon, index = name.partition(":")
    numbered = kind in ("cuda", "mps") and index.isdigit()  # cuda:1
    if kind not in kinds or (colon and not numbered):
        raise TrainError(f"Unknown --device {name!r}: use {'auto, ' if auto else ''}cpu, cuda, cuda:N or mps.")


def pick_device(name: str, torch):
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but PyTorch sees no CUDA GPU: use --device cpu (or auto).")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainError("--device mps was asked for but this PyTorch has no MPS: use --device cpu (or auto).")
    return name


def device_rng_state(torch, device):
    """The accelerator's RNG state (dropout on CUDA or MPS draws from it), None on the CPU."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        return torch.cuda.get_rng_state(device)
    if kind == "mps":
        return torch.mps.get_rng_state()
    return None


def set_device_rng_state(torch, device, state) -> None:
    kind = str(device).split(":")[0]
    if state is not None and kind == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif state is not None and kind == "mps":
        torch.mps.set_rng_state(state)


@contextlib.contextmanager
def rng_kept(torch, device):
    """Whatever runs inside leaves torch's RNG as it was, the CPU's and the device's: a probe leaves no trace."""
    cpu, accelerator = torch.get_rng_state(), device_rng_state(torch, device)
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        set_device_rng_state(torch, device, accelerator)


def pick_dtype(name: str, device: str, torch):
    """The autocast dtype, or None for plain float32."""
    cuda = device.startswith("cuda")
    if name == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if name == "bfloat16":
        if not cuda:
            raise TrainError(f"--dtype bfloat16 (autocast) is for CUDA GPUs; on {device} train in float32 (--dtype auto).")
        return torch.bfloat16
    return None


class Distributed:
    """torchrun's environment: RANK, LOCAL_RANK, WORLD_SIZE. world_size 1 is a plain single process."""

    def __init__(self, torch):
        self.torch = torch
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self.master = self.rank == 0

    def start(self, device):
        if not self.enabled:
            return device
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{self.local_rank}"
            self.torch.cuda.set_device(device)
            dist.init_process_group("nccl")
        elif device == "cpu":
            dist.init_process_group("gloo")
        else:
            raise TrainError(f"Several processes need --device cpu (gloo) or cuda (nccl), not {device}.")
        return device

    def wrap(self, model, device):
        if not self.enabled:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # Buffers (a learner's cached rotary tables, say) are alike in every process: no sync before each forward.
        # torch 2.13 renamed the flag and warns about the old name.
        name = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                else "broadcast_buffers")
        return DistributedDataParallel(model, device_ids=[self.local_rank] if device.startswith("cuda") else None,
                                       **{name: False})

    def gather(self, obj):
        """[obj of process 0, obj of process 1, ...] (every process calls it at the same step)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values, device):
        """The sums over all processes of a few floats (every process calls it at the same step)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        t = self.torch.tensor(values, dtype=self.torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def stop(self, together: bool):
        """Leave the process group; `together`: every process got here (a run that returned, not one that raised).

        Processes that finished wait for each other first: one that destroys its gloo group while another still
        works (process 0 writing the reports) can abort at exit ("terminate called without an active exception").
        """
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                if together:
                    dist.barrier()
                dist.destroy_process_group()


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step; a second Ctrl-C quits at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[signum] = signal.signal(signum, self.handle)
            except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
                pass
        return self

    def handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class Autocast:
    """Wraps a model so that its forward runs under torch.autocast (bf16 on CUDA); backward runs outside."""

    def __new__(cls, model, device_type, dtype, torch):
        class AutocastModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.config = getattr(model, "config", None)

            def forward(self, *args, **kwargs):
                with torch.autocast(device_type=device_type, dtype=dtype):
                    return self.model(*args, **kwargs)

        return AutocastModel()
