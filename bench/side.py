"""Learning side by side with the reference: each arm's own training loop at the same settings.

    python -m bench.learn side --seeds 0 1 2 3 4 --out /tmp/side/catch    # train, then compare
    python -m bench.learn side --out /tmp/side/catch --no-train          # compare the runs so far

Arms (issue 20 item 4):

- ``ours``: ``dreamerbench train --suite bsuite --task catch_0`` at :data:`CATCH`'s settings.
- ``reference``: danijar/dreamerv3 e3f0224's ``dreamerv3/main.py --configs bsuite`` in its own
  venv, through `bench/side_reference.py` (which makes its bsuite env run with bsuite 0.3.6),
  with our ``debug`` size, our optimiser defaults and the same train ratio, batch, sequence
  length, env count and training start, float32 on the CPU.
- ``reference-exact``: the same with the reference's two-hot mean replaced by one whose
  uniform-logit output is exactly 0 however XLA orders the sum (see `bench/side_reference.py`).

Each run stops at the same agent step, so all arms do the same number of updates (within one).

Alignment. Both loggers write the mean of the training metrics over a window of updates; ours
stamps a record with the update count at the window's end (``updates``), the reference with the
env step at its end, and its ``train/opt/updates`` is the optimiser counter averaged over the
window (its middle). Here every record of either arm is placed at the middle of its window in
updates, from cumulative counts: ours' ``updates``, the reference's sum of ``replay/updates``
(B x T per update). Curves are then averaged in bins of :data:`BIN_UPDATES` updates, each record
weighted by its window's length. Episode returns are placed by the update count at the env step
where the episode ended (interpolated in the run's own (step, updates) records).

A finished run leaves ``<out>/runs/<arm>/seed<N>/side-done.json``; a second call skips it and
starts any unfinished run afresh (the reference's bsuite logging cannot resume, so neither arm
resumes: one rule for all).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ARMS = ("ours", "reference", "reference-exact")
REFERENCE_DIR = Path("/work/reference")
REFERENCE_PYTHON = Path("/work/refenv/bin/python")
LAUNCHER = Path(__file__).resolve().parent / "side_reference.py"
BIN_UPDATES = 50


@dataclasses.dataclass(frozen=True)
class SideSettings:
    """What every arm trains: one bsuite task at our `debug` size, one env."""

    task: str = "catch_0"
    """Our bsuite task name (the reference's is ``bsuite_<experiment>/<index>``)."""
    steps: int = 772
    """Agent steps per run: (772 - 272) x 2 = 1,000 updates."""
    size: str = "debug"
    """Our size preset; the reference gets its widths."""
    train_ratio: int = 512
    """Replayed steps per agent step (2 updates per step at B16 x T16)."""
    batch_size: int = 16
    batch_length: int = 16
    envs: int = 1
    train_start: int = 272
    """Agent steps before the first update: the reference trains once its replay holds
    batch_size x batch_length sequences of batch_length + 1 steps (16 x 16 + 16 = 272)."""


CATCH = SideSettings()

METRICS = {
    # name: (ours' key, the reference's key)
    "loss_dyn": ("loss/dyn", "train/loss/dyn"),
    "loss_rep": ("loss/rep", "train/loss/rep"),
    "loss_rew": ("loss/rew", "train/loss/rew"),
    "loss_con": ("loss/con", "train/loss/con"),
    "loss_dec": ("loss/rec", "train/loss/observation"),
    "actor_entropy": ("imag/entropy", "train/ent/action"),
    "advantage_mag": ("imag/advantage_mag", "train/adv_mag"),
}
"""The compared training metrics: world-model losses (dynamics, representation, reward,
continuation, decoder), the actor's entropy and the mean advantage magnitude."""


def reference_task(task: str) -> str:
    """``catch_0`` -> ``bsuite_catch/0``."""
    name, _, index = task.rpartition("_")
    return f"bsuite_{name}/{index}"


def ours_command(settings: SideSettings, seed: int, logdir: Path) -> list[str]:
    """Our `dreamerbench train` command of one run, logging after every update burst."""
    sets = {
        "agent.train_ratio": settings.train_ratio,
        "agent.batch_size": settings.batch_size,
        "agent.batch_length": settings.batch_length,
        "run.envs": settings.envs,
        "run.train_start": settings.train_start,
        "run.log_every": 0,
        "run.progress": "false",
    }
    command = [sys.executable, "-m", "dreamerbench.experiments.cli", "train", "--suite", "bsuite"]
    command += ["--task", settings.task, "--seed", str(seed), "--size", settings.size]
    command += ["--steps", str(settings.steps), "--logdir", str(logdir)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    return command


def reference_flags(settings: SideSettings, seed: int, logdir: Path) -> list[str]:
    """The reference's `main.py` flags equal to `settings` and our defaults.

    Widths come from our size preset, layer counts and the optimiser's learning rate and
    warm-up from our `AgentConfig` defaults (they equal the reference's configs.yaml defaults;
    passing them keeps the two equal if ours change). Logging every loop iteration (10 agent
    steps), checkpoints off, report windows as long as the training windows (its default 32
    does not fit a replay of 16-step sequences).
    """
    from dreamerbench.agent.config import SIZES, AgentConfig

    dims, agent = SIZES[settings.size], AgentConfig()
    flags = {
        "configs": "bsuite",
        "task": reference_task(settings.task),
        "logdir": str(logdir),
        "seed": seed,
        "jax.platform": "cpu",
        "jax.compute_dtype": "float32",
        "jax.prealloc": "False",
        "logger.outputs": "jsonl",
        "run.log_every": -1,
        "run.save_every": 0,
        "run.train_ratio": settings.train_ratio,
        "run.envs": settings.envs,
        "run.steps": settings.steps,
        "batch_size": settings.batch_size,
        "batch_length": settings.batch_length,
        "report_length": settings.batch_length,
        "agent.dyn.rssm.deter": dims.deter,
        "agent.dyn.rssm.hidden": dims.hidden,
        "agent.dyn.rssm.classes": dims.classes,
        "agent.opt.lr": agent.opt.lr,
        "agent.opt.warmup": agent.opt.warmup,
    }
    for part in ("enc", "dec"):
        flags[f"agent.{part}.simple.depth"] = dims.depth
        flags[f"agent.{part}.simple.units"] = dims.units
        flags[f"agent.{part}.simple.layers"] = agent.mlp_layers
    for head, layers in (
        ("rewhead", agent.head_layers),
        ("conhead", agent.head_layers),
        ("policy", agent.mlp_layers),
        ("value", agent.mlp_layers),
    ):
        flags[f"agent.{head}.units"] = dims.units
        flags[f"agent.{head}.layers"] = layers
    return [item for key, value in flags.items() for item in (f"--{key}", str(value))]


def arm_command(arm: str, settings: SideSettings, seed: int, logdir: Path) -> list[str]:
    """The command that trains `arm` at `settings` with `seed` into `logdir`."""
    if arm == "ours":
        return ours_command(settings, seed, logdir)
    exact = ["--exact-twohot"] if arm == "reference-exact" else []
    return [str(REFERENCE_PYTHON), str(LAUNCHER), *exact, "--"] + reference_flags(
        settings, seed, logdir
    )


def rundir(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / arm / f"seed{seed}"


def _environment(arm: str) -> dict[str, str]:
    env = dict(os.environ)
    if arm != "ours":
        env["PYTHONPATH"] = str(REFERENCE_DIR)
        env["JAX_PLATFORMS"] = "cpu"
    return env


def train_all(
    out: Path, settings: SideSettings, arms: Sequence[str], seeds: Sequence[int], jobs: int
) -> list[dict]:
    """Train every arm x seed not finished yet, `jobs` processes at a time; returns one record
    per process started (command, return code, wall seconds, load at its end).

    Runs go seed by seed, all arms of a seed before the next, so partial results stay
    comparable. Ctrl-C stops the processes (each gets the SIGINT too) and re-raises; their
    runs are started afresh next time.
    """
    pending = [(a, s) for s in seeds for a in arms if not _done(out, a, s)]
    running, log = [], []
    (out / "logs").mkdir(parents=True, exist_ok=True)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                arm, seed = pending.pop(0)
                logdir = rundir(out, arm, seed)
                if logdir.exists():
                    shutil.rmtree(logdir)
                logdir.parent.mkdir(parents=True, exist_ok=True)
                command = arm_command(arm, settings, seed, logdir)
                stream = open(out / "logs" / f"{arm}-seed{seed}.log", "wb")
                process = subprocess.Popen(
                    command, stdout=stream, stderr=subprocess.STDOUT, env=_environment(arm)
                )
                running.append((process, arm, seed, command, time.time(), stream))
            time.sleep(2.0)
            for entry in [e for e in running if e[0].poll() is not None]:
                process, arm, seed, command, start, stream = entry
                running.remove(entry)
                stream.close()
                record = {
                    "arm": arm,
                    "seed": seed,
                    "command": " ".join(command),
                    "returncode": process.returncode,
                    "wall_s": round(time.time() - start, 1),
                    "loadavg_at_end": _loadavg(),
                }
                log.append(record)
                if process.returncode == 0:
                    (rundir(out, arm, seed) / "side-done.json").write_text(json.dumps(record))
                else:
                    print(
                        f"bench.learn side: {arm} seed {seed} failed ({process.returncode}); "
                        f"see {out}/logs/{arm}-seed{seed}.log",
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        for process, *_ in running:
            process.terminate()
            process.wait()
        raise
    return log


def _done(out: Path, arm: str, seed: int) -> bool:
    return (rundir(out, arm, seed) / "side-done.json").exists()


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_side(args) -> None:
    """`bench.learn side`: train what is missing (unless --no-train), then compare."""
    settings = dataclasses.replace(CATCH, task=args.task, steps=args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = {"loadavg": _loadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    log = [] if args.no_train else train_all(out, settings, args.arms, args.seeds, args.jobs)
    print(json.dumps({"started": started, "processes": log}))
