"""What every probe of the round shares: the CLI as a user runs it, the tiny training settings,
filesystem snapshots, the run-record checks and the result type."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "experiments" / "quickstart.yaml"
EPISODE = 126  # cartpole at action repeat 8: 125 actions per episode, the reset step included

# The tiny training settings of tests/test_rundir.py (TINY), with train records every second.
TINY = {
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.train_ratio": 16,
    "run.envs": 1,
    "run.train_start": 32,
    "run.save_every": EPISODE,
    "run.log_every": 1,
    "run.progress": False,
    "replay.capacity": 5000,
    "env.action_repeat": 8,
}


@dataclasses.dataclass
class Outcome:
    """One probe's verdict: `ok` (a fault survived, a bad input got its clear line) and, when not,
    a one-line reason."""

    probe: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0


class ProbeFailed(Exception):
    """A probe's check failed; the message is the one-line reason."""


def chosen(probe: str, only: list[str] | None, quick: bool, quick_set: list[str]) -> bool:
    """Whether to run `probe`: named in `only` (an entry ending in * is a prefix), else all or,
    with `quick`, those of `quick_set`."""
    if only:
        return any(probe == x or (x.endswith("*") and probe.startswith(x[:-1])) for x in only)
    return not quick or probe in quick_set


def check(condition: bool, reason: str) -> None:
    if not condition:
        raise ProbeFailed(reason)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI call: ours without a tracking URI, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, **extra}


def command(*args: str) -> list[str]:
    """`dreamerbench ARGS` as a subprocess argv (this interpreter, so this checkout)."""
    return [sys.executable, "-m", "dreamerbench", *args]


def run_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None):
    """Run `dreamerbench ARGS` to its end: a CompletedProcess (text). Past `timeout` seconds its
    whole process group (a launcher's workers too) is killed and returncode is -9."""
    process = subprocess.Popen(
        command(*args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(),
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        code = -9
    return subprocess.CompletedProcess(process.args, code, out, err)


@contextlib.contextmanager
def started(*args: str, cwd: Path, env: dict | None = None, log: Path | None = None):
    """`dreamerbench ARGS` in the background in its own process group (stdout and stderr to `log`
    or discarded); killed with its group on leaving the block if it still runs."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        command(*args),
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env or cli_env(),
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            out.close()


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05, process=None):
    """Poll `predicate` until it returns something true; ProbeFailed after `timeout` seconds or
    when `process` ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise ProbeFailed(f"the process ended (exit {process.returncode}) before {what}")
        time.sleep(poll)
    raise ProbeFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def signal_group(process, sig: int) -> None:
    """Send `sig` to the process (a launcher forwards it to its workers itself)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)


def train_args(logdir: Path, steps: int, seed: int = 0, uri: str | None = None, **sets) -> list:
    """`train` argv on cartpole at the debug size with TINY (and `sets`, keys with `__` for `.`)."""
    args = ["train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug"]
    args += ["--seed", str(seed), "--steps", str(steps), "--logdir", str(logdir)]
    for key, value in {**TINY, **{k.replace("__", "."): v for k, v in sets.items()}}.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args + (["--tracking-uri", uri] if uri else [])


def tiny_spec(directory: Path, name: str, **changes) -> Path:
    """The quickstart spec (the one home of the tiny sweep config) with fields changed, at action
    repeat 8 and saves every episode."""
    data = yaml.safe_load(QUICKSTART.read_text())
    data["overrides"] = {
        **data["overrides"],
        "env.action_repeat": 8,
        "run.save_every": EPISODE,
        "run.train_start": 64,
    }
    data.update(name=name, **changes)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- what is on disk


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots` (the roots included) with its kind, size, mode and content mtime;
    missing roots are recorded as missing."""
    seen: dict[str, tuple] = {}
    for root in roots:
        if not os.path.lexists(root):
            seen[str(root)] = ("missing",)
            continue
        paths = [Path(root)]
        if Path(root).is_dir() and not Path(root).is_symlink():
            paths += [Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files]
        for path in paths:
            st = path.lstat()
            seen[str(path)] = (st.st_mode, st.st_size, st.st_mtime_ns if path.is_file() else 0)
    return seen


def changed(before: dict, after: dict) -> list[str]:
    """Paths created, removed or modified between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its content (byte-identity checks)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_steps(logdir: Path) -> list[int]:
    """Steps of the complete checkpoints in LOGDIR/checkpoint (names ckpt-<step>-<n>)."""
    folder = logdir / "checkpoint"
    if not folder.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("ckpt-*") if p.is_dir())


def episodes_done(logdir: Path) -> int:
    path = logdir / "episodes.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def check_records(logdir: Path, steps: int, kept: list[dict] | None = None) -> list[dict]:
    """The checks of a run that was to finish `steps`: summary finished at `steps`; episodes with
    indices 0..n-1 once each in step order; train records once each; every record of `kept` (what
    a checkpoint covered before the fault) still there, unchanged. Returns the episodes."""
    summary = json.loads((logdir / "summary.json").read_text())
    check(summary.get("finished") and summary["steps"] == steps, f"summary.json says {summary}")
    episodes = jsonl(logdir / "episodes.jsonl")
    indices = [e["index"] for e in episodes]
    check(indices == list(range(len(indices))), f"episode indices {indices}")
    ep_steps = [e["step"] for e in episodes]
    check(ep_steps == sorted(set(ep_steps)), f"episode steps repeat or go back: {ep_steps}")
    check(len(episodes) >= steps // EPISODE - 2, f"{len(episodes)} episodes in {steps} steps")
    train = [r["step"] for r in jsonl(logdir / "metrics.jsonl") if r["kind"] == "train"]
    check(train == sorted(set(train)), f"train records repeat or go back: {train}")
    for record in kept or []:
        check(record in episodes, f"the covered episode {record['index']} was lost or changed")
    return episodes


def covered(logdir: Path) -> list[dict]:
    """The episodes that the newest complete checkpoint covers (what no fault may lose)."""
    steps = checkpoint_steps(logdir)
    if not steps or not (logdir / "episodes.jsonl").exists():
        return []
    lines = (logdir / "episodes.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.endswith("}") and json.loads(x)["step"] <= steps[-1]]


def check_mlflow(uri: str, logdir: Path, episodes: list[dict], experiment: str) -> None:
    """MLflow holds each of `episodes` exactly once (episode/score history = the file) in the one
    run whose logdir tag names `logdir`, and that run is FINISHED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    check(found is not None, f"no MLflow experiment {experiment}")
    runs = [
        r
        for r in client.search_runs([found.experiment_id], max_results=1000)
        if r.data.tags.get("dreamerbench.logdir") == str(logdir)
    ]
    check(len(runs) == 1, f"{len(runs)} MLflow runs name the logdir {logdir}")
    (run,) = runs
    history = sorted(
        (m.step, m.timestamp, m.value)
        for m in client.get_metric_history(run.info.run_id, "episode/score")
    )
    want = sorted((e["step"], e["time_ms"], e["score"]) for e in episodes)
    check(
        history == want,
        f"MLflow holds {len(history)} episode scores, the file {len(want)}"
        f" ({len(set(history) - set(want))} extra, {len(set(want) - set(history))} missing)",
    )
    check(run.info.status == "FINISHED", f"MLflow run is {run.info.status}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with a sqlite store, that a probe kills and restarts
    (the same port and store)."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 120) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--workers", "1"]
            + ["--backend-store-uri", f"sqlite:///{self.root / 'server.db'}"]
            + ["--artifacts-destination", str(self.root / "artifacts")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**cli_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        log.close()

        def healthy():
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    return response.status == 200
            return False

        wait_for(healthy, timeout, "the mlflow server", poll=0.5, process=self.process)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            self.process.wait()
            self.process = None
