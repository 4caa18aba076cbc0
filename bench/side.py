"""Learning side by side with the reference: each arm's own training loop at the same settings.

    python -m bench.learn side --seeds 0 1 2 3 4 --out /tmp/side/catch    # train, then compare
    python -m bench.learn side --out /tmp/side/catch --no-train          # compare the runs so far
    python -m bench.learn side-steps --ours DIR --reference DIR --figure F.png --json F.json
                                                     # one run of each side by agent step

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

import numpy as np

ARMS = ("ours", "reference", "reference-exact")
# The reference checkout and its venv beside this repository (tools/setup_reference.sh).
REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "reference"
REFERENCE_PYTHON = Path(__file__).resolve().parents[1].parent / "refenv" / "bin" / "python"
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
    "loss_dec": ("loss/rec", "train/loss/<each observation key>"),
    "actor_entropy": ("imag/entropy", "train/ent/action"),
    "advantage_mag": ("imag/advantage_mag", "train/adv_mag"),
}
"""The compared training metrics: world-model losses (dynamics, representation, reward,
continuation, decoder), the actor's entropy and the mean advantage magnitude. Ours sums the
decoder's loss over the observation keys; the reference logs one loss per key (Catch:
``train/loss/observation``; DMC proprio: ``position``, ``velocity``), summed here."""
NOT_DECODER = ("dyn", "rep", "rew", "con", "policy", "value", "repval")
"""The reference's ``train/loss/<name>`` entries that are not decoder losses."""


def _reference_value(record: dict, name: str) -> float:
    if name != "loss_dec":
        return record.get(METRICS[name][1], np.nan)
    losses = [
        value
        for key, value in record.items()
        if key.startswith("train/loss/") and key[len("train/loss/") :] not in NOT_DECODER
    ]
    return sum(losses) if losses else np.nan


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
                if process.returncode == 0 and reached(arm, rundir(out, arm, seed), settings.steps):
                    (rundir(out, arm, seed) / "side-done.json").write_text(json.dumps(record))
                else:
                    print(
                        f"bench.learn side: {arm} seed {seed} stopped before step "
                        f"{settings.steps} (exit {process.returncode}); see "
                        f"{out}/logs/{arm}-seed{seed}.log",
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        for process, *_ in running:
            process.terminate()
            process.wait()
        raise
    return log


def reached(arm: str, logdir: Path, steps: int) -> bool:
    """Whether the run in `logdir` trained to agent step `steps`: ours' ``summary.json`` says
    ``finished`` (a SIGINT stops it early with exit 0); the reference's last record is at that
    step or later (its loop goes 10 steps at a time, so it may end a few steps past)."""
    from bench.learn import read_jsonl

    if arm == "ours":
        summary = logdir / "summary.json"
        return summary.exists() and bool(json.loads(summary.read_text()).get("finished"))
    records = read_jsonl(logdir / "metrics.jsonl")
    return bool(records) and records[-1]["step"] >= steps


def _done(out: Path, arm: str, seed: int) -> bool:
    return (rundir(out, arm, seed) / "side-done.json").exists()


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --- comparison -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Windows:
    """The training-metric records of one run on the update axis; N records, in order."""

    lo: np.ndarray
    """[N] updates done before the record's window."""
    hi: np.ndarray
    """[N] updates done at its end."""
    step: np.ndarray
    """[N] agent step at which the record was written."""
    values: dict[str, np.ndarray]
    """Metric name (a key of :data:`METRICS`) -> [N] its mean over the window."""

    @property
    def mid(self) -> np.ndarray:
        """[N] the mean update number (1-based) of each window: (lo + 1 + hi) / 2."""
        return (self.lo + 1 + self.hi) / 2


def _windows(records: list[dict], hi: np.ndarray, value) -> Windows:
    hi = np.asarray(hi, dtype=float)
    return Windows(
        lo=np.concatenate([[0.0], hi[:-1]]),
        hi=hi,
        step=np.asarray([r["step"] for r in records], dtype=float),
        values={
            name: np.asarray([value(r, name) for r in records], dtype=float) for name in METRICS
        },
    )


def ours_windows(records: list[dict]) -> Windows:
    """Windows of our `metrics.jsonl` records: ``kind: train`` records carry the update count
    at their window's end (``updates``)."""
    train = [r for r in records if r.get("kind") == "train"]
    return _windows(train, [r["updates"] for r in train], lambda r, n: r.get(METRICS[n][0], np.nan))


def reference_windows(records: list[dict], batch_size: int, batch_length: int) -> Windows:
    """Windows of the reference's `metrics.jsonl` records.

    Each record holds ``replay/updates``, the replay entries rewritten in its window (B x T
    per update, the fresh latents written back), so their running sum / (B x T) is the update
    count at the window's end. Records before the first update (no ``train/`` keys) count
    towards nothing and are dropped.
    """
    done = np.cumsum([r.get("replay/updates", 0.0) for r in records]) / (batch_size * batch_length)
    keep = [i for i, r in enumerate(records) if METRICS["loss_dyn"][1] in r]
    return _windows([records[i] for i in keep], done[keep], _reference_value)


def binned(windows: Windows, name: str, edges: np.ndarray) -> np.ndarray:
    """Mean of metric `name` per update bin (edges[i], edges[i + 1]], each record placed at its
    window's middle and weighted by its window's length; NaN where no record falls.

    edges: [M + 1] increasing; returns [M].
    """
    index = np.searchsorted(edges, windows.mid, side="left") - 1
    weights = windows.hi - windows.lo
    values = windows.values[name]
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(out)):
        chosen = (index == i) & np.isfinite(values)
        if weights[chosen].sum() > 0:
            out[i] = np.average(values[chosen], weights=weights[chosen])
    return out


def returns_by_update(
    steps: np.ndarray, scores: np.ndarray, windows: Windows, edges: np.ndarray
) -> np.ndarray:
    """Mean episode return per update bin (edges[i], edges[i + 1]]; NaN where none ends.

    steps, scores: [E] agent step at each episode's end and its return. An episode is placed at
    the update count of the run at that step (interpolated in its records' (step, hi));
    episodes that end before the first update are left out. Returns [M].
    """
    updates = np.interp(steps, windows.step, windows.hi, left=0.0)
    index = np.searchsorted(edges, updates, side="left") - 1
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(out)):
        chosen = (index == i) & (updates > 0)
        if chosen.any():
            out[i] = scores[chosen].mean()
    return out


def read_run(
    arm: str, logdir: Path, settings: SideSettings
) -> tuple[Windows, np.ndarray, np.ndarray]:
    """(windows, episode end steps [E], episode returns [E]) of one run's files."""
    from bench.learn import read_jsonl

    records = read_jsonl(logdir / "metrics.jsonl")
    if arm == "ours":
        episodes = read_jsonl(logdir / "episodes.jsonl")
        steps = [e["step"] for e in episodes]
        scores = [e["score"] for e in episodes]
        windows = ours_windows(records)
    else:
        episodes = read_jsonl(logdir / "scores.jsonl")
        steps = [e["step"] for e in episodes]
        scores = [e["episode/score"] for e in episodes]
        windows = reference_windows(records, settings.batch_size, settings.batch_length)
    return windows, np.asarray(steps, dtype=float), np.asarray(scores, dtype=float)


RETURN_BIN_UPDATES = 200
"""Returns are binned wider than the losses: an episode is 10 agent steps = 20 updates, so a bin
of 200 updates holds 10 episodes of +-1 per seed."""
MARKS = (100, 250, 500, 750, 1000)
"""Update counts of the table: the bins that end there (returns: every return bin)."""


def curves(out: Path, settings: SideSettings, arms: Sequence[str], seeds: Sequence[int]) -> dict:
    """Per arm and seed, every metric's binned curve and the binned returns; runs without a
    ``side-done.json`` are left out. Returns {arm: {"seeds": [...], name: [S, M] lists}} with
    the bin edges under "edges" (metrics) and "return_edges"."""
    last = 2 * (settings.steps - settings.train_start)
    edges = np.arange(0, last + BIN_UPDATES, BIN_UPDATES, dtype=float)
    return_edges = np.arange(0, last + RETURN_BIN_UPDATES, RETURN_BIN_UPDATES, dtype=float)
    result = {"edges": edges.tolist(), "return_edges": return_edges.tolist(), "arms": {}}
    for arm in arms:
        done = [s for s in seeds if _done(out, arm, s)]
        per = {"seeds": done, **{name: [] for name in METRICS}, "return": []}
        for seed in done:
            windows, steps, scores = read_run(arm, rundir(out, arm, seed), settings)
            for name in METRICS:
                per[name].append(binned(windows, name, edges).tolist())
            per["return"].append(returns_by_update(steps, scores, windows, return_edges).tolist())
        result["arms"][arm] = per
    return result


def spread(values: list[list[float]]) -> dict:
    """Mean, min and max over seeds of [S, M] values (NaN-aware): three [M] lists."""
    values = np.asarray(values, dtype=float)
    return {
        "mean": np.nanmean(values, 0).tolist(),
        "min": np.nanmin(values, 0).tolist(),
        "max": np.nanmax(values, 0).tolist(),
    }


def compare(result: dict) -> dict:
    """Per metric: each arm's seed spread at :data:`MARKS` (returns: at every bin) and whether
    ours' seed mean lies within each reference arm's min-max over seeds, per bin (the fraction
    of bins and the marks)."""
    table = {}
    for name in (*METRICS, "return"):
        edges = np.asarray(result["return_edges" if name == "return" else "edges"])
        marks = (
            [int(m) for m in edges[1:]]
            if name == "return"
            else [m for m in MARKS if m in edges[1:]]
        )
        at = [int(np.searchsorted(edges, m)) - 1 for m in marks]
        arms = {a: spread(v[name]) for a, v in result["arms"].items() if v[name]}
        row = {
            "marks": marks,
            **{a: {k: [s[k][i] for i in at] for k in s} for a, s in arms.items()},
        }
        if "ours" in arms:
            ours = np.asarray(arms["ours"]["mean"])
            for ref in ("reference", "reference-exact"):
                if ref in arms:
                    lo, hi = np.asarray(arms[ref]["min"]), np.asarray(arms[ref]["max"])
                    inside = (ours >= lo) & (ours <= hi)
                    row[f"ours_within_{ref}"] = {
                        "fraction_of_bins": round(float(inside.mean()), 3),
                        "at_marks": [bool(inside[i]) for i in at],
                    }
        table[name] = row
    return table


LABELS = {
    "loss_dyn": "dynamics loss",
    "loss_rep": "representation loss",
    "loss_rew": "reward loss",
    "loss_con": "continuation loss",
    "loss_dec": "decoder loss",
    "actor_entropy": "actor entropy (nats)",
    "advantage_mag": "advantage magnitude (mean of abs A)",
    "return": "episode return",
}


def plot(result: dict, out: Path, note: str) -> list[Path]:
    """One PNG per metric, `out/side-<name>.png`: each arm's seed mean and min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, label in LABELS.items():
        edges = np.asarray(result["return_edges" if name == "return" else "edges"])
        x = (edges[:-1] + edges[1:]) / 2
        fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
        for color, (arm, per) in zip(("C0", "C1", "C2"), result["arms"].items()):
            if not per[name]:
                continue
            s = spread(per[name])
            ax.plot(x, s["mean"], color=color, lw=1.5, label=f"{arm} ({len(per['seeds'])} seeds)")
            ax.fill_between(x, s["min"], s["max"], color=color, alpha=0.2, lw=0)
        if name == "advantage_mag":  # the stock reference's is ~1e4 times the others' at first
            ax.set_yscale("log")
        ax.set_xlabel("updates")
        ax.set_ylabel(label)
        ax.set_title(f"{label}: seed mean, band = min-max over seeds\n{note}", fontsize=8)
        ax.legend(fontsize=7)
        path = out / f"side-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(table: dict) -> str:
    """The comparison as a Markdown table: per metric and update mark, each arm's seed mean
    [min, max], and whether ours' mean lies within each reference arm's min-max there."""
    arms = [a for a in ARMS if a in next(iter(table.values()))]
    refs = [r for r in ("reference", "reference-exact") if f"ours_within_{r}" in table["loss_dyn"]]
    head = ["metric", "updates", *arms, *(f"ours within {r}" for r in refs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in table.items():
        for i, mark in enumerate(row["marks"]):
            cells = [LABELS[name], f"{mark:,}"]
            for arm in arms:
                s = {k: row[arm][k][i] for k in ("mean", "min", "max")}
                cells.append(f"{s['mean']:.5g} [{s['min']:.5g}, {s['max']:.5g}]")
            for ref in refs:
                cells.append("yes" if row[f"ours_within_{ref}"]["at_marks"][i] else "**no**")
            lines.append("| " + " | ".join(cells) + " |")
    fractions = [
        f"{LABELS[name]}: "
        + ", ".join(
            f"{row[f'ours_within_{r}']['fraction_of_bins']:.0%} of bins within {r}" for r in refs
        )
        for name, row in table.items()
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {f}" for f in fractions) + "\n"


def run_side(args) -> None:
    """`bench.learn side`: train what is missing (unless --no-train), then write `side.json`
    and the PNGs into --out and print the comparison."""
    from bench.learn import _machine

    problem = None  # checked before anything is created
    if args.steps <= CATCH.train_start:
        problem = (
            f"--steps {args.steps}: allowed are integers > run.train_start = {CATCH.train_start}"
        )
    elif args.jobs < 1:
        problem = f"--jobs {args.jobs}: allowed are integers >= 1"
    if problem:
        print(f"bench.learn side: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    settings = dataclasses.replace(CATCH, task=args.task, steps=args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    training_path = out / "side-training.json"
    training = json.loads(training_path.read_text()) if training_path.exists() else []
    if not args.no_train:
        session = {"start": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg_start": _loadavg()}
        session["processes"] = train_all(out, settings, args.arms, args.seeds, args.jobs)
        session.update(end=time.strftime("%Y-%m-%d %H:%M:%S %Z"), loadavg_end=_loadavg())
        training.append(session)
        training_path.write_text(json.dumps(training, indent=1))
    result = curves(out, settings, args.arms, args.seeds)
    note = (
        f"bsuite {settings.task}, size {settings.size}, train ratio {settings.train_ratio}, "
        f"B{settings.batch_size} x T{settings.batch_length}, {settings.envs} env, "
        f"{settings.steps} agent steps"
    )
    summary = {
        "settings": dataclasses.asdict(settings),
        "note": note,
        "machine": _machine(),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "training": training,
        "bin_updates": BIN_UPDATES,
        "return_bin_updates": RETURN_BIN_UPDATES,
        "table": compare(result),
    }
    (out / "side.json").write_text(json.dumps({**summary, "curves": result}))
    (out / "side.md").write_text(markdown(summary["table"]))
    summary["figures"] = [str(p) for p in plot(result, out, note)]
    print(json.dumps({k: v for k, v in summary.items() if k != "training"}))


# --- two runs by agent step (a partial run of each side) --------------------------------


def by_steps(ours_dir: Path, reference_dir: Path, batch_size: int, batch_length: int) -> dict:
    """One run of ours and one of the reference's own loop, on the agent-step axis.

    Both loggers stamp a record with the agent step at its window's end, so records are
    compared by that step as written. Returns {side: {"steps": [N], "updates": [N], name: [N]
    per METRICS key, "episodes": [[step, return], ...]}} for sides "ours" and "reference".
    """
    result = {}
    for side, logdir in (("ours", ours_dir), ("reference", reference_dir)):
        settings = dataclasses.replace(CATCH, batch_size=batch_size, batch_length=batch_length)
        windows, steps, scores = read_run(side, logdir, settings)
        result[side] = {
            "steps": windows.step.tolist(),
            "updates": windows.hi.tolist(),
            **{name: windows.values[name].tolist() for name in METRICS},
            "episodes": [[s, r] for s, r in zip(steps.tolist(), scores.tolist())],
        }
    return result


def plot_by_steps(result: dict, path: Path, note: str) -> Path:
    """One panel per metric of :func:`by_steps`'s result, both sides against agent steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(METRICS)
    fig, axes = plt.subplots(2, 4, figsize=(13, 6), constrained_layout=True)
    for ax, name in zip(axes.flat, names):
        for color, (side, run) in zip(("C0", "C1"), result.items()):
            ax.plot(run["steps"], run[name], color=color, lw=1, label=side)
        ax.set_title(LABELS[name], fontsize=9)
        ax.set_xlabel("agent steps (= frames)", fontsize=8)
    axes.flat[len(names) - 1].set_yscale("log")  # the advantage magnitude
    last = axes.flat[len(names)]
    for color, (side, run) in zip(("C0", "C1"), result.items()):
        last.plot(run["steps"], run["updates"], color=color, lw=1, label=side)
    last.set_title("updates done", fontsize=9)
    last.set_xlabel("agent steps (= frames)", fontsize=8)
    last.legend(fontsize=8)
    fig.suptitle(note, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_partial(args) -> None:
    """`bench.learn side-steps`: a figure and JSON of one run of each side by agent step."""
    result = by_steps(Path(args.ours), Path(args.reference), args.batch_size, args.batch_length)
    figure = plot_by_steps(result, Path(args.figure), args.note)
    summary = {
        side: {
            "last_step": run["steps"][-1] if run["steps"] else 0,
            "updates": run["updates"][-1] if run["updates"] else 0,
            "episodes": len(run["episodes"]),
            **{name: run[name][-1] for name in METRICS if run[name]},
        }
        for side, run in result.items()
    }
    Path(args.json).write_text(json.dumps({"note": args.note, "summary": summary, **result}))
    print(json.dumps({"figure": str(figure), "summary": summary}))
