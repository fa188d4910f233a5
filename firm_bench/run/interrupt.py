"""Stop requests: SIGINT and SIGTERM end training at the next epoch boundary, with a checkpoint.

A SLURM time limit (``--signal=TERM@<s>`` in the profile), a pre-emption, a
``kill`` or Ctrl-C send one of them. Inside :func:`stop_requests` the first
one only sets :attr:`StopRequest.signum`; the training loop checks it after
every epoch, saves ``checkpoints/last.pt``, records ``interrupted`` in
status.json and raises :class:`~firm_bench.core.errors.TrainingInterrupted`
(the command line exits 128 + signal: 130, 143). The boundary is the epoch's
end, not a step's: all randomness of an epoch is drawn from the generator of
``(seed, epoch)`` and the CUDA-graph engine schedules a whole epoch's
learning rates up front, so an epoch is the unit that resumes bit for bit
(an epoch of the paper's recipe takes seconds on a GPU). A second signal
stops the process at once, as it would without the handler (the last
periodic checkpoint stays).
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Any, Iterator

#: the signals that ask training to stop
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for, and by which signal (None: not asked)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextmanager
def stop_requests(what: str = "training") -> Iterator[StopRequest]:
    """Handle SIGINT and SIGTERM inside the block: the first sets the request, a second stops at once.

    Outside the main thread (where Python cannot install handlers) the
    signals keep their behaviour and the request is never set. The previous
    handlers are restored on leaving.
    """
    request = StopRequest()
    previous: dict[int, Any] = {}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    def handler(signum: int, frame: Any) -> None:
        if request.requested:  # a second signal: what it would have done without us
            restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        request.signum = signum
        # os.write, not print: the signal may arrive while the main thread is inside a print to stderr
        os.write(2, (f"firm-bench: {signal.Signals(signum).name} received: {what} stops at the end of the current "
                     "epoch, with a checkpoint (send it again to stop at once)\n").encode())

    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        restore()
    try:
        yield request
    finally:
        restore()
