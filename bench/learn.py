"""The learning benchmark: our learning curves next to the published DreamerV3 runs.

    python -m bench.learn curves --protocol cpu --out /tmp/learn     # train, then JSON + PNGs
    python -m bench.learn plot --protocol cpu --out /tmp/learn       # JSON + PNGs of runs so far
    python -m bench.learn throughput --minutes 3 --logdir /tmp/tp    # start-up time and updates/s
    python -m bench.learn check --logdir /tmp/learn-runs/catch \
        --figure docs/figures/learn-cpu-check-catch_0.png        # does it learn catch in 10 min?

`curves` trains every task x seed of a protocol with `dreamerbench train` (one
subprocess per task, so start-up costs are real; re-running resumes unfinished
runs from their checkpoints), then does what `plot` does: it reads each run's
`episodes.jsonl`, writes `curves.json` (settings, machine, load, and per run the
episode curve on the frame axis plus 10k-frame bin means) and one `TASK.png` per
task with our runs over the published DreamerV3 seeds (mean and min-max band of
the per-seed 10k-frame bins of `SUITE-dreamerv3.json.gz`) on the same axis.

Frames are environment frames (agent steps x action repeat), the x axis of the
published files.

`throughput` runs one task for `--minutes`, stops it with SIGINT and prints one
JSON object: the time from process start to the first update, the episode curve
against wall-clock, and the trainer's median updates/s (times the number of
packed seeds: the aggregate updates/s of the process).

`check` is the CPU learning check: a tiny bsuite task (catch_0) trained for
`--minutes` of wall time at :data:`CHECK`'s settings, then summarised from its
`episodes.jsonl` (`--no-train`: summarise a run that exists): mean return by agent
step, bsuite's own score, and a learned / not-learned verdict (:func:`summarise_check`),
written to `LOGDIR/check.json` and a PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

BIN_FRAMES = 10_000  # the published files' grid
SHARED_BASELINES = Path(__file__).resolve().parents[1].parent / "shared" / "baselines" / "dreamerv3"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One learning benchmark: which runs to train and with which settings."""

    suite: str
    """Suite name; its protocol and agent defaults apply unless overridden."""
    tasks: tuple[str, ...]
    """Tasks of the suite to train."""
    seeds: tuple[int, ...]
    """Seeds per task."""
    frames: int
    """Environment frames per run (agent steps x action repeat)."""
    size: str
    """Model size preset."""
    overrides: tuple[tuple[str, object], ...] = ()
    """Config overrides on top of the suite's defaults."""
    seeds_per_process: int = 1
    """Seeds trained together in one process (`--seeds-per-process`); must divide len(seeds)."""
    note: str = ""
    """Why the settings are what they are."""


PROTOCOLS = {
    # Suite settings (16 envs, repeat 1, size1m) except the train ratio: 128 instead
    # of the published 1024, so that 60k frames fit in one to two hours of a 2-core CPU.
    "cpu": Protocol(
        suite="dmc_proprio",
        tasks=("cartpole_swingup", "ball_in_cup_catch"),
        seeds=(0,),
        frames=60_000,
        size="1m",
        overrides=(("agent.train_ratio", 128),),
        note="dmc_proprio suite settings except agent.train_ratio=128 (published: 1024)",
    ),
    # The published dmc_proprio settings (train ratio 1024, 16 envs, size1m), four
    # seeds packed in one process, for an accelerator.
    "gpu": Protocol(
        suite="dmc_proprio",
        tasks=("cartpole_swingup", "ball_in_cup_catch"),
        seeds=(0, 1, 2, 3),
        frames=100_000,
        size="1m",
        seeds_per_process=4,
        note="published dmc_proprio settings, 4 seeds packed per process",
    ),
}


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file (a missing file has none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rundir(out: Path, task: str, seed: int) -> Path:
    return out / "runs" / task / f"seed{seed}"


def _action_repeat(protocol: Protocol) -> int:
    from dreamerbench.suites import get_suite

    overrides = {k[len("env.") :]: v for k, v in protocol.overrides if k.startswith("env.")}
    return int(get_suite(protocol.suite).resolve_protocol(overrides).get("action_repeat", 1))


def train_command(protocol: Protocol, task: str, first_seed: int, logdir: Path) -> list[str]:
    """The `dreamerbench train` command of one process of the protocol."""
    steps = protocol.frames // _action_repeat(protocol)
    command = [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "train",
        "--suite",
        protocol.suite,
        "--task",
        task,
        "--seed",
        str(first_seed),
        "--size",
        protocol.size,
        "--steps",
        str(steps),
        "--logdir",
        str(logdir),
    ]
    if protocol.seeds_per_process > 1:
        command += ["--seeds-per-process", str(protocol.seeds_per_process)]
    for key, value in protocol.overrides:
        command += ["--set", f"{key}={value}"]
    return command


def bin_means(frames: np.ndarray, scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean score of the episodes ending in each bin (edges[i-1], edges[i]]; NaN where none.

    frames, scores: [N] per episode; edges: [M + 1] increasing; returns [M].
    """
    index = np.searchsorted(edges, frames, side="left") - 1  # frames == edges[i] falls in bin i - 1
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(out)):
        chosen = scores[index == i]
        if len(chosen):
            out[i] = chosen.mean()
    return out


def published_bins(suite: str, task: str, frames: int, source: Path) -> dict:
    """Per-seed published DreamerV3 returns on the 10k-frame grid up to `frames`:
    {x, seeds [S, M], mean, min, max}."""
    from dreamerbench.analysis.data import load_published

    runs = load_published(suite, "dreamerv3", source)
    runs = runs[(runs["task"] == task) & (runs["frames"] <= frames)]
    xs = np.arange(BIN_FRAMES, frames + 1, BIN_FRAMES, dtype=float)
    seeds = []
    for _, run in runs.groupby("seed"):
        series = dict(zip(run["frames"], run["score"]))
        seeds.append([series.get(x, np.nan) for x in xs])
    seeds = np.asarray(seeds, dtype=float)
    return {
        "x_frames": xs.tolist(),
        "seeds": seeds.tolist(),
        "mean": np.nanmean(seeds, 0).tolist(),
        "min": np.nanmin(seeds, 0).tolist(),
        "max": np.nanmax(seeds, 0).tolist(),
    }


def collect(protocol: Protocol, out: Path, source: Path) -> dict:
    """Every run's curve and the published bins of every task, as one JSON-able dict."""
    repeat = _action_repeat(protocol)
    edges = np.arange(0, protocol.frames + BIN_FRAMES, BIN_FRAMES, dtype=float)
    runs, published = [], {}
    for task in protocol.tasks:
        published[task] = published_bins(protocol.suite, task, protocol.frames, source)
        for seed in protocol.seeds:
            rundir = _rundir(out, task, seed)
            episodes = read_jsonl(rundir / "episodes.jsonl")
            frames = np.asarray([e["step"] * repeat for e in episodes], dtype=float)
            scores = np.asarray([e["score"] for e in episodes], dtype=float)
            summary = rundir / "summary.json"
            runs.append(
                {
                    "task": task,
                    "seed": seed,
                    "logdir": str(rundir),
                    "finished": summary.exists(),
                    "episodes": len(episodes),
                    "frames": frames.tolist(),
                    "score": scores.round(2).tolist(),
                    "wall_s": [e.get("wall_s") for e in episodes],
                    "bins": {
                        "x_frames": edges[1:].tolist(),
                        "mean": bin_means(frames, scores, edges).round(2).tolist(),
                    },
                }
            )
    return {"runs": runs, "published_dreamerv3": published}


def plot(protocol: Protocol, curves: dict, out: Path) -> list[Path]:
    """One PNG per task: our runs (episodes and 10k-frame bin means) over the published seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    paths = []
    for task in protocol.tasks:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
        pub = curves["published_dreamerv3"][task]
        x = np.asarray(pub["x_frames"])
        ax.fill_between(
            x,
            pub["min"],
            pub["max"],
            color="tab:gray",
            alpha=0.25,
            label=f"published DreamerV3, min-max of {len(pub['seeds'])} seeds",
        )
        ax.plot(x, pub["mean"], color="tab:gray", lw=2, label="published DreamerV3, mean")
        for i, run in enumerate(r for r in curves["runs"] if r["task"] == task):
            color = f"C{i}"
            ax.scatter(run["frames"], run["score"], s=6, color=color, alpha=0.35)
            # Mean of the episodes that end together (all envs end at once on DMC's fixed-length
            # episodes).
            ends = sorted(set(run["frames"]))
            means = [
                np.mean([s for f, s in zip(run["frames"], run["score"]) if f == end])
                for end in ends
            ]
            ax.plot(
                ends,
                means,
                color=color,
                lw=2,
                marker="o",
                ms=4,
                label=f"dreamerbench seed {run['seed']}: mean of the episodes ending together "
                "(dots: episodes)",
            )
        ax.set_xlim(0, protocol.frames)
        ax.set_ylim(0, 1000)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
        ax.set_xlabel("environment frames")
        ax.set_ylabel("episode return")
        ax.set_title(
            f"{protocol.suite} {task}" + (f"\n{protocol.note}" if protocol.note else ""),
            fontsize=10,
        )
        ax.legend(fontsize=7, loc="upper left")
        path = out / f"{task}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _machine() -> dict:
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}


def chosen_protocol(args) -> Protocol:
    """The protocol named by ``--protocol``, with ``--frames`` (if given) as its frames per run."""
    protocol = PROTOCOLS[args.protocol]
    if args.frames is None:
        return protocol
    return dataclasses.replace(protocol, frames=args.frames)


def check_published(protocol: Protocol, source: Path) -> None:
    """Exit with one line (no traceback) if `source` does not hold the protocol suite's published
    DreamerV3 file; checked before anything trains."""
    from dreamerbench.analysis.data import fetch_published
    from dreamerbench.suites import get_suite

    if not source.is_dir():
        raise SystemExit(
            f"bench.learn: error: --published-dir {source} is not a directory; give the folder "
            "of the published SUITE-dreamerv3.json.gz files"
        )
    try:
        fetch_published(get_suite(protocol.suite), "dreamerv3", str(source))
    except ValueError as error:
        raise SystemExit(f"bench.learn: error: --published-dir: {error}") from None


def write_results(
    protocol_name: str, protocol: Protocol, out: Path, source: Path, extra: dict | None = None
) -> dict:
    """`curves.json` and the PNGs for the runs under `out` (`protocol`, named `protocol_name`);
    returns the JSON written."""
    curves = collect(protocol, out, source)
    result = {
        "protocol": protocol_name,
        **{k: v for k, v in dataclasses.asdict(protocol).items()},
        "machine": _machine(),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **(extra or {}),
        **curves,
    }
    (out / "curves.json").write_text(json.dumps(result))
    result["plots"] = [str(p) for p in plot(protocol, curves, out)]
    return result


def run_curves(args) -> None:
    protocol = chosen_protocol(args)
    check_published(protocol, Path(args.published_dir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k = protocol.seeds_per_process
    pending = [
        (task, first) for task in (args.tasks or protocol.tasks) for first in protocol.seeds[::k]
    ]
    log = {
        "jobs": args.jobs,
        "load_1m_before": os.getloadavg()[0],
        "load_1m_every_5_min": [],
        "processes": [],
    }
    log["pinned"] = args.pin
    running, sampled = [], 0.0
    try:
        while pending or running:
            if time.time() - sampled >= 300:
                sampled = time.time()
                log["load_1m_every_5_min"].append(round(os.getloadavg()[0], 2))
            while pending and len(running) < args.jobs:
                task, first = pending.pop(0)
                logdir = _rundir(out, task, first) if k == 1 else out / "runs" / task
                command = train_command(protocol, task, first, logdir)
                if args.pin:
                    # One core per process: XLA sizes its thread pool to the affinity mask,
                    # so a busy machine cannot stall a parallel op's threads on each other.
                    free = sorted(set(range(os.cpu_count())) - {e[6] for e in running})
                    core = free[0]
                    command = ["taskset", "-c", str(core), *command]
                else:
                    core = None
                stderr = open(out / f"train-{task}-{first}.log", "ab")
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
                running.append((process, command, time.time(), stderr, task, first, core))
            time.sleep(2.0)
            for entry in [e for e in running if e[0].poll() is not None]:
                process, command, start, stderr, task, first, _ = entry
                running.remove(entry)
                stderr.close()
                log["processes"].append(
                    {
                        "command": " ".join(command),
                        "returncode": process.returncode,
                        "wall_s": round(time.time() - start, 1),
                        "load_1m_at_end": os.getloadavg()[0],
                    }
                )
                if process.returncode != 0:
                    raise SystemExit(
                        f"train failed ({process.returncode}); see {out}/train-{task}-{first}.log"
                    )
    except KeyboardInterrupt:  # the training processes got the Ctrl-C too: let them save
        for process, *_ in running:
            process.wait()
        raise
    result = write_results(
        args.protocol, protocol, out, Path(args.published_dir), {"training": log}
    )
    print(json.dumps(_summary(result)))


def _summary(result: dict) -> dict:
    """Curves.json without the per-episode lists: what the benchmark prints."""
    runs = [
        {k: v for k, v in r.items() if k not in ("frames", "score", "wall_s")}
        for r in result["runs"]
    ]
    published = {
        t: {
            "x_frames": p["x_frames"],
            "mean": np.round(p["mean"], 1).tolist(),
            "min": np.round(p["min"], 1).tolist(),
            "max": np.round(p["max"], 1).tolist(),
        }
        for t, p in result["published_dreamerv3"].items()
    }
    return {
        **{k: v for k, v in result.items() if k not in ("runs", "published_dreamerv3")},
        "runs": runs,
        "published_dreamerv3": published,
    }


def run_plot(args) -> None:
    protocol, source = chosen_protocol(args), Path(args.published_dir)
    check_published(protocol, source)
    print(json.dumps(_summary(write_results(args.protocol, protocol, Path(args.out), source))))


# --- throughput ---------------------------------------------------------------------

THROUGHPUT_SETTINGS = {
    "agent.train_ratio": 512,
    "env.action_repeat": 4,
    "run.envs": 1,
    "run.save_every": 20_000,
    "run.log_every": 20,
}


def run_throughput(args) -> None:
    logdir = Path(args.logdir)
    if logdir.exists():
        raise SystemExit(f"--logdir {logdir} exists; the benchmark needs a fresh run")
    settings = {**THROUGHPUT_SETTINGS, **dict(item.split("=", 1) for item in args.overrides)}
    command = [
        sys.executable,
        "-m",
        "dreamerbench.experiments.cli",
        "train",
        "--suite",
        "dmc_proprio",
        "--task",
        "cartpole_balance",
        "--seed",
        str(args.seed),
        "--size",
        args.size,
        "--steps",
        "10000000",
        "--logdir",
        str(logdir),
        "--seeds-per-process",
        str(args.seeds_per_process),
        "--set",
        "run.compile_cache=",
    ]
    rundir = logdir if args.seeds_per_process == 1 else logdir / f"seed{args.seed}"
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_update = None
    while time.time() - start < 60 * args.minutes and process.poll() is None:
        if first_update is None and any(
            "time_to_first_update_s" in r for r in read_jsonl(rundir / "metrics.jsonl")
        ):
            first_update = time.time() - start
        time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"train failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    repeat = int(settings["env.action_repeat"])
    episodes = read_jsonl(rundir / "episodes.jsonl")
    curve = [(e["wall_s"], e["step"], e["step"] * repeat, round(e["score"], 1)) for e in episodes]
    metrics = read_jsonl(rundir / "metrics.jsonl")
    updates = [r["updates"] for r in metrics if "updates" in r]
    rates = [r["updates_per_s"] for r in metrics if "updates_per_s" in r][1:]
    print(
        json.dumps(
            {
                "task": "dmc_proprio/cartpole_balance",
                "size": args.size,
                "seed": args.seed,
                "settings": settings,
                "minutes": args.minutes,
                "process_start_to_first_update_s": first_update,
                "seeds_per_process": args.seeds_per_process,
                "aggregate_updates_per_s": round(
                    statistics.median(rates) * args.seeds_per_process, 4
                )
                if rates
                else None,
                "updates_per_s_records": len(rates),
                "updates": updates[-1] if updates else 0,
                "episodes": len(curve),
                "curve_wall_s_step_frames_return": curve,
            }
        )
    )


# --- CPU learning check -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LearningCheck:
    """The CPU learning check: one tiny task trained for a few minutes, and its verdict."""

    protocol: Protocol
    """What to train (one task, one seed); `frames` is only a cap, the wall time stops it."""
    minutes: float
    """Wall-clock minutes of training (process start to SIGINT)."""
    bin_steps: int
    """Width in agent steps of the bins of the return-by-step table."""
    window: int
    """Episodes in the first (random prefill) and the last window that the verdict compares."""
    margin: float
    """Learned: the last window's mean return exceeds the first window's by at least this."""


CHECK = LearningCheck(
    # bsuite catch (10x5 grid, 9-step episodes, return +1 for a catch and -1 for a miss): the
    # smallest model and 16-step sequences (an episode is 10 steps) so that one update takes
    # about 0.15 s on a loaded 2-core CPU; train ratio 512 = 2 updates per agent step (the
    # reference's bsuite setting is 1024 with 64-step sequences, 1 update per step).
    protocol=Protocol(
        suite="bsuite",
        tasks=("catch_0",),
        seeds=(0,),
        frames=1_000_000,
        size="debug",
        overrides=(
            ("agent.train_ratio", 512),
            ("agent.batch_length", 16),
            ("run.envs", 1),
        ),
        note="bsuite catch_0, size debug, train_ratio 512, batch_length 16, 1 env",
    ),
    minutes=10.0,
    bin_steps=250,
    window=50,
    # Random catch returns -0.6 on average (bsuite's catch baseline regret 1.6 = 1 - (-0.6));
    # +0.5 is a quarter of the range from a miss to a catch, far beyond the noise of the mean
    # of 50 returns of +-1 (standard error at most 0.14).
    margin=0.5,
)


def _rebased(records: list[dict], before: dict | None) -> list[dict]:
    """`records` with bsuite's cumulative regret counted from the end of the `before` episode."""
    base = before["bsuite_total_regret"] if before else 0.0
    return [{**r, "bsuite_total_regret": r["bsuite_total_regret"] - base} for r in records]


def summarise_check(episodes: list[dict], check: LearningCheck) -> dict:
    """Return by agent step, bsuite's score and the verdict of a check run's episode records.

    episodes: the records of `episodes.jsonl` in order (`step`: agent step at the episode's end,
    `score`: its return, `length`, `bsuite_total_regret`). Returns `table` (per bin of
    `check.bin_steps` agent steps (lo, hi]: episodes and mean return, bins without episodes
    left out), `first` / `last` (mean return and bsuite score of the first and last
    `check.window` episodes, the last window's regret counted from where it starts),
    `bsuite_score` (bsuite's own score of the whole run, in [0, 1]; the regret counter, which
    restarts at a resume, is summed across resumes), `gain` (last minus first
    mean return) and `learned` (gain >= check.margin). Raises ValueError with fewer than
    2 x check.window episodes (the windows would overlap).
    """
    from dreamerbench.suites.bsuite import bsuite_score, continued

    if len(episodes) < 2 * check.window:
        raise ValueError(
            f"{len(episodes)} episodes; the check needs 2 x window = {2 * check.window}"
        )
    task = check.protocol.tasks[0]
    experiment = task.rpartition("_")[0]
    episodes = continued(episodes)  # the regret counter across resumes
    steps = np.asarray([e["step"] for e in episodes], dtype=float)
    scores = np.asarray([e["score"] for e in episodes], dtype=float)
    edges = np.arange(0, steps.max() + check.bin_steps, check.bin_steps, dtype=float)
    index = np.searchsorted(edges, steps, side="left") - 1
    means = bin_means(steps, scores, edges)
    table = [
        {
            "steps_from": int(edges[i]),
            "steps_to": int(edges[i + 1]),
            "episodes": int((index == i).sum()),
            "mean_return": round(float(means[i]), 3),
        }
        for i in range(len(means))
        if not np.isnan(means[i])
    ]
    first, last = episodes[: check.window], episodes[-check.window :]
    windows = {
        name: {
            "episodes": [records[0]["index"], records[-1]["index"]],
            "steps": [records[0]["step"], records[-1]["step"]],
            "mean_return": round(float(np.mean([r["score"] for r in records])), 3),
            "bsuite_score": round(bsuite_score(experiment, {task: _rebased(records, before)}), 3),
        }
        for name, records, before in (
            ("first", first, None),
            ("last", last, episodes[-check.window - 1]),
        )
    }
    gain = windows["last"]["mean_return"] - windows["first"]["mean_return"]
    return {
        "episodes": len(episodes),
        "agent_steps": int(steps.max()),
        "table": table,
        **windows,
        "bsuite_score": round(bsuite_score(experiment, {task: episodes}), 3),
        "gain": round(gain, 3),
        "margin": check.margin,
        "learned": bool(gain >= check.margin),
    }


def plot_check(episodes: list[dict], summary: dict, check: LearningCheck, path: Path) -> Path:
    """The check's curve: a running mean of `check.window` returns and the per-bin means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray([e["step"] for e in episodes], dtype=float)
    scores = np.asarray([e["score"] for e in episodes], dtype=float)
    running = np.convolve(scores, np.ones(check.window) / check.window, mode="valid")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    ax.plot(
        steps[check.window - 1 :],
        running,
        color="C0",
        lw=1.5,
        label=f"mean of the last {check.window} returns",
    )
    ax.plot(
        [(row["steps_from"] + row["steps_to"]) / 2 for row in summary["table"]],
        [row["mean_return"] for row in summary["table"]],
        color="C1",
        marker="o",
        ms=4,
        lw=0,
        label=f"mean return per {check.bin_steps} agent steps",
    )
    ax.axhline(-0.6, color="tab:gray", ls="--", lw=1, label="random policy (bsuite score 0)")
    ax.axhline(1.0, color="tab:green", ls="--", lw=1, label="solved (bsuite score 1)")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("agent steps")
    ax.set_ylabel("episode return")
    verdict = "learned" if summary["learned"] else "not learned"
    ax.set_title(
        textwrap.fill(f"{check.protocol.note}, {check.minutes:g} min", 90)
        + f"\n{verdict}: last {check.window} episodes "
        f"{summary['last']['mean_return']:+.2f} vs first {summary['first']['mean_return']:+.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_check(args) -> None:
    extra = tuple(tuple(item.split("=", 1)) for item in args.overrides)
    protocol = dataclasses.replace(CHECK.protocol, overrides=CHECK.protocol.overrides + extra)
    if extra:
        note = ", ".join(f"{key}={value}" for key, value in extra)
        protocol = dataclasses.replace(protocol, note=f"{protocol.note}, {note}")
    check = dataclasses.replace(CHECK, protocol=protocol, minutes=args.minutes)
    logdir = Path(args.logdir)
    log = {}
    if not args.no_train:
        if logdir.exists():
            raise SystemExit(f"--logdir {logdir} exists; train a fresh run or pass --no-train")
        command = train_command(protocol, protocol.tasks[0], protocol.seeds[0], logdir)
        log = {"command": " ".join(command), "uptime_before": _uptime()}
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, stderr = process.communicate(timeout=60 * check.minutes)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # the trainer stops at a checkpoint
            _, stderr = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"train failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
        log["uptime_after"] = _uptime()
    episodes = read_jsonl(logdir / "episodes.jsonl")
    summary = summarise_check(episodes, check)
    figure = plot_check(episodes, summary, check, Path(args.figure))
    result = {
        **dataclasses.asdict(check),
        "logdir": str(logdir),
        "machine": _machine(),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "training": log,
        "figure": str(figure),
        **summary,
    }
    (logdir / "check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def _add_side(commands) -> None:
    from bench import side

    sd = commands.add_parser("side", help="each arm's own loop at the same settings, compared")
    sd.add_argument("--out", required=True, help="directory of the runs, side.json and the PNGs")
    sd.add_argument("--task", default=side.CATCH.task, help="our bsuite task name")
    sd.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    sd.add_argument("--arms", nargs="+", choices=side.ARMS, default=list(side.ARMS))
    sd.add_argument("--steps", type=int, default=side.CATCH.steps, help="agent steps per run")
    sd.add_argument("--jobs", type=int, default=2, help="training processes at once")
    sd.add_argument("--no-train", action="store_true", help="compare the runs already in --out")
    sd.set_defaults(func=side.run_side)
    st = commands.add_parser("side-steps", help="one run of ours and of the reference by step")
    st.add_argument("--ours", required=True, help="our run's logdir")
    st.add_argument("--reference", required=True, help="the reference run's logdir")
    st.add_argument("--batch-size", type=int, default=16)
    st.add_argument("--batch-length", type=int, default=64)
    st.add_argument("--figure", required=True, help="the PNG to write")
    st.add_argument("--json", required=True, help="the JSON to write")
    st.add_argument("--note", default="", help="the figure's title")
    st.set_defaults(func=side.run_partial)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("curves", run_curves, "train the protocol's runs, then write JSON and plots"),
        ("plot", run_plot, "write JSON and plots from the runs so far"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
        sub.add_argument(
            "--out", required=True, help="directory of the runs, curves.json and the PNGs"
        )
        sub.add_argument(
            "--published-dir",
            default=str(SHARED_BASELINES),
            help="directory of the published SUITE-dreamerv3.json.gz files",
        )
        sub.add_argument(
            "--frames",
            type=int,
            help="environment frames per run (default: the protocol's, e.g. 60000 for cpu)",
        )
        sub.set_defaults(func=func)
    curves = commands.choices["curves"]
    curves.add_argument("--tasks", nargs="+", help="a subset of the protocol's tasks")
    curves.add_argument("--jobs", type=int, default=1, help="training processes at once")
    curves.add_argument(
        "--pin",
        action="store_true",
        help="pin each training process to its own core (jobs <= cores)",
    )
    tp = commands.add_parser("throughput", help="start-up time and updates/s of one run")
    tp.add_argument("--minutes", type=float, default=60.0)
    tp.add_argument("--logdir", required=True, help="a new directory for the run")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--size", default="1m")
    tp.add_argument(
        "--seeds-per-process",
        type=int,
        default=1,
        help="seeds trained together (the curve is the first's)",
    )
    tp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    tp.set_defaults(func=run_throughput)
    ch = commands.add_parser("check", help="the CPU learning check: train catch_0, verdict")
    ch.add_argument("--logdir", required=True, help="a new directory for the run")
    ch.add_argument(
        "--figure", required=True, help="path of the PNG, e.g. docs/figures/learn-cpu-check.png"
    )
    ch.add_argument("--minutes", type=float, default=CHECK.minutes, help="wall time of training")
    ch.add_argument("--no-train", action="store_true", help="summarise the run already in --logdir")
    ch.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override on top of CHECK's (repeatable)",
    )
    ch.set_defaults(func=run_check)
    _add_side(commands)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        # Ctrl-C reaches the training processes too; each saves a checkpoint on its way out
        # (side's runs are stopped and start afresh: the reference's bsuite logs cannot resume).
        again = (
            "skips the finished runs and starts the others afresh"
            if args.command == "side"
            else "resumes the runs from their checkpoints"
        )
        raise SystemExit(
            f"bench.learn {args.command}: interrupted; the same command {again}"
        ) from None


if __name__ == "__main__":
    main()
