"""The one training-loop skeleton: step, then log, sample and checkpoint on their cadence.

``train-latent`` (:class:`~pathgan.train.Trainer`), ``train-encoder``
(:class:`~pathgan.train.encoder.EncoderTrainer`) and ``train-translate``
(:class:`~pathgan.train.cyclegan.CycleGANTrainer`) differ in what one step does and in what a log
row holds; when they log, sample and save, and that the last step always gets all three, is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pathgan._faults import fault_point

__all__ = ["Cadence", "drive"]


@dataclass(frozen=True)
class Cadence:
    """Every how many steps to log a stats row, write samples (0: never) and save a checkpoint."""

    log_every: int
    checkpoint_every: int
    sample_every: int = 0


def drive(step_once: Callable[[], int], *, step: int, target: int, cadence: Cadence, log: Callable[[], object],
          save: Callable[[], object], sample: Callable[[], object] | None = None,
          out_of_time: Callable[[], bool] = lambda: False) -> str:
    """Run ``step_once`` (one training step; returns the new step number) until ``target`` steps or
    until ``out_of_time()``; after each step: ``log`` every ``log_every``, ``sample`` every
    ``sample_every``, ``save`` every ``checkpoint_every``, and all three after the last step.

    Returns ``"steps"`` or ``"time_budget"``: what stopped it.
    """
    while step < target:
        step = step_once()
        fault_point("train.step")
        stop = out_of_time()
        last = step == target or stop
        if step % cadence.log_every == 0 or last:
            log()
        if sample is not None and cadence.sample_every and (step % cadence.sample_every == 0 or last):
            sample()
        if step % cadence.checkpoint_every == 0 or last:
            save()
        if stop:
            return "time_budget"
    return "steps"
