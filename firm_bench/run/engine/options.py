"""The ``speed`` options of a run (what each does: ``schema/run.schema.yaml``), resolved for its device; device helpers."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import torch
from torch import Tensor

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torch.compile modes that capture CUDA graphs themselves (exclusive with speed.cuda_graph)
_COMPILE_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class SpeedOptions:
    """The resolved ``speed`` section (every ``auto`` made concrete for one device)."""

    eval_bf16: bool = False
    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    cuda_graph: bool = False
    compile: bool = False
    compile_mode: str = "default"
    pack_kernels: str = "per_run"  # a pack's kernels: grouped (one per layer for all runs) or per_run (exact)

    def record(self) -> dict:
        return asdict(self)


def _auto(value: Any, key: str, when: bool) -> bool:
    if value == "auto":
        return when
    if isinstance(value, bool):
        return value
    raise ValueError(f"speed.{key}={value!r}: expected auto, true or false")


def resolve_speed(speed: Mapping[str, Any], device: torch.device) -> SpeedOptions:
    """The options for ``device`` from the config's ``speed`` section.

    ``auto`` means on for CUDA devices (bf16: CUDA devices with bf16 support)
    and off elsewhere. Impossible explicit combinations raise ValueError
    naming the key.
    """
    cuda = device.type == "cuda"
    bf16_ok = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    opts = SpeedOptions(
        eval_bf16=bool(speed["eval_bf16"]),
        bf16=_auto(speed["bf16"], "bf16", bf16_ok),
        channels_last=_auto(speed["channels_last"], "channels_last", cuda),
        cudnn_benchmark=_auto(speed["cudnn_benchmark"], "cudnn_benchmark", cuda),
        cuda_graph=False,
        compile=bool(speed["compile"]),
        compile_mode=str(speed["compile_mode"]),
        pack_kernels=_pack_kernels(speed.get("pack_kernels", "auto"), cuda),
    )
    if opts.compile_mode not in COMPILE_MODES:
        raise ValueError(f"speed.compile_mode={opts.compile_mode!r}; valid: {', '.join(COMPILE_MODES)}")
    graph = speed["cuda_graph"]
    blockers = [
        why
        for why, bad in (
            ("a CUDA device", not cuda),
            ("no speed.compile with a CUDA-graph compile_mode", opts.compile and opts.compile_mode in _COMPILE_GRAPH_MODES),
        )
        if bad
    ]
    if graph is True and blockers:
        raise ValueError(f"speed.cuda_graph: true needs {', '.join(blockers)}; use auto or false")
    return replace(opts, cuda_graph=_auto(graph, "cuda_graph", not blockers))


PACK_KERNELS = ("grouped", "per_run")


def _pack_kernels(value: Any, cuda: bool) -> str:
    """``speed.pack_kernels``: auto = grouped on CUDA (HFTA's fused kernels), per_run elsewhere (exact)."""
    if value == "auto":
        return "grouped" if cuda else "per_run"
    if value not in PACK_KERNELS:
        raise ValueError(f"speed.pack_kernels={value!r}: expected auto, {', '.join(PACK_KERNELS)}")
    return str(value)


def autocast_bf16(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on ``device`` when asked (no weight cache: CUDA graphs need none), else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Any:
    """``torch.backends.cudnn.benchmark = on`` inside the block only."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def to_device(t: Tensor, device: torch.device, non_blocking: bool = False) -> Tensor:
    """``t`` on ``device``; from pinned memory without waiting for the device when asked."""
    if t.device == device:
        return t
    if non_blocking and device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class PinnedStage:
    """A reusable pinned host buffer for the small host-to-device copies of every epoch (lr, momentum).

    ``copy_to(dst, values)`` writes ``values`` into the buffer and enqueues one
    asynchronous copy into the device tensor ``dst``: no pinned allocation and
    no host synchronisation per epoch (a ``to_device(torch.tensor(...), ...)``
    pins a new buffer each time). Before the buffer is rewritten, an event
    recorded after the last copy is queried (``cudaEventQuery``, which does
    not wait); should that copy still be in flight, a fresh buffer is taken
    instead of waiting. On a CPU device it is a plain copy.
    """

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host = torch.empty(shape, dtype=dtype, pin_memory=self.cuda)
        self.event = torch.cuda.Event() if self.cuda else None

    def copy_to(self, dst: Tensor, values: Tensor) -> None:
        if not self.cuda:
            dst.copy_(values)
            return
        if not self.event.query():  # the last copy still reads the buffer: never wait for it
            self.host = torch.empty_like(self.host, pin_memory=True)
        self.host.copy_(values)
        dst.copy_(self.host, non_blocking=True)
        self.event.record()

