"""The one training loop both trainers (generator, damage detector) run.

Steps until a step count or a time limit; a line of running losses in OUT/log.jsonl every 50 steps;
every `checkpoint_minutes` and at the end a validation line and a checkpoint (the trainer's own:
`checkpoint()` validates, keeps the best held-out weights and saves last.pt); SIGTERM (kill, Slurm
preemption) ends the run cleanly, with a checkpoint, so `--resume` continues where it stopped.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Protocol


class Trains(Protocol):
    step: int
    elapsed: float  # seconds spent in steps, over every session of the run

    def next_step(self) -> dict[str, float]: ...  # one optimisation step; its losses

    def checkpoint(self) -> dict: ...  # validate, save; the validation metrics

    def log_fields(self) -> dict: ...  # extra fields for the loss lines (learning rate, throughput)


def train_loop(trainer: Trains, out: Path, steps: int | None, minutes: float | None, checkpoint_minutes: float,
               progress: Callable[[int, dict], None] | None = None) -> dict:
    """Run `trainer` until `steps` (total) or `minutes` (this session); returns step, hours and the
    last validation metrics."""
    start, t0 = trainer.step, time.time()
    last = t0
    running: dict[str, float] = {}
    metrics: dict = {}
    stop = {"now": False}
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.__setitem__("now", True))
    with open(out / "log.jsonl", "a") as log:
        def checkpoint() -> dict:
            m = trainer.checkpoint()
            log.write(json.dumps({"step": trainer.step, "time": round(trainer.elapsed, 1), **m}) + "\n")
            log.flush()
            return m

        try:
            while not stop["now"]:
                if steps is not None and trainer.step >= steps:
                    break
                if minutes is not None and time.time() - t0 >= minutes * 60:
                    break
                ts = time.time()
                losses = trainer.next_step()
                trainer.elapsed += time.time() - ts
                for k, v in losses.items():
                    running[k] = 0.98 * running.get(k, v) + 0.02 * v
                if progress:
                    progress(trainer.step, running)
                if trainer.step % 50 == 0:
                    log.write(json.dumps({"step": trainer.step, "time": round(trainer.elapsed, 1), **trainer.log_fields(),
                                          **{k: round(v, 5) for k, v in running.items()}}) + "\n")
                    log.flush()
                if time.time() - last >= checkpoint_minutes * 60:
                    metrics = checkpoint()
                    last = time.time()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if trainer.step > start:
                metrics = checkpoint()
    return {"step": trainer.step, "hours": round(trainer.elapsed / 3600, 3), **metrics}


def save_last(state: dict, out: Path) -> None:
    """Write a trainer's state to OUT/last.pt through a temp file: a run killed mid-write keeps the
    previous checkpoint, and `--resume` never reads half a file."""
    import torch

    tmp = out / "last.pt.part"
    torch.save(state, tmp)
    tmp.replace(out / "last.pt")


def update_ema(ema, model, step: int, ceiling: float) -> None:
    """Move the EMA copy's weights towards the model's (decay rising from 0.1 to `ceiling`, so the
    average does not remember the random start), buffers copied as they are."""
    import torch

    with torch.no_grad():
        decay = min(ceiling, (1 + step) / (10 + step))
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm.detach(), 1 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)
