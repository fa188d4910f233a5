"""Step engines for tests: a run's engine rebuilt with another graph mode, one step of an epoch as an epoch."""

from __future__ import annotations

from firm_bench.run.engine import EpochData, EpochDraws, TrainEngine


def engine_of(t, steps: int, graph_mode: str) -> TrainEngine:
    """A ``TrainEngine`` of the ``Training`` t's model, optimiser and scheduler: ``steps`` per epoch, ``graph_mode``."""
    e = t.engine
    return TrainEngine(t.model, t.optimizer, t.scheduler, e.loss_fn, e.augment, t.opts, t.device, t.batch, steps,
                       graph_mode=graph_mode)


def one_step(ed: EpochData, step: int, batch: int) -> EpochData:
    """Step ``step`` of the epoch ``ed`` as an epoch of its own (for an engine of one step per epoch)."""
    draws = EpochDraws(*(x[step : step + 1] for x in ed.draws)) if ed.draws is not None else None
    return EpochData(ed.images, ed.labels, ed.order[step * batch : (step + 1) * batch], draws, ed.generator)
