"""The fault probes: a run, a sweep or the MLflow server is killed or its files damaged at a
chosen point, then the documented re-run is made. A probe survives when nothing a checkpoint
covered is lost, nothing is recorded twice (files and MLflow), and the re-run finishes the work
(or, where the issue asks for it, refuses in one line and leaves the files byte-identical).

Every run is cartpole at the debug size with TINY (common.py): an episode every 126 steps.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import signal
import threading
import time
from pathlib import Path

from tools.fault_round.common import (
    EPISODE,
    MlflowServer,
    Outcome,
    ProbeFailed,
    check,
    check_mlflow,
    check_records,
    checkpoint_steps,
    chosen,
    covered,
    episodes_done,
    run_cli,
    signal_group,
    started,
    tiny_spec,
    train_args,
    tree_bytes,
    wait_for,
)

STEPS = 5 * EPISODE  # five episodes
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}


def _sqlite(root: Path) -> str:
    return f"sqlite:///{root / 'm.db'}"


def _finish(root: Path, logdir: Path, uri: str | None, kept: list, steps=STEPS, **sets):
    """The documented re-run (the same command) to its end, then every record check."""
    done = run_cli(*train_args(logdir, steps, uri=uri, **sets), cwd=root)
    lines = done.stderr.strip().splitlines()
    check(done.returncode == 0, f"the re-run exit {done.returncode}: {lines[-1:]}")
    episodes = check_records(logdir, steps, kept)
    if uri:
        check_mlflow(uri, logdir, episodes, "train")


def _in_save(logdir: Path):
    folder = logdir / "checkpoint"
    return folder.is_dir() and any(p.name.startswith(".tmp-ckpt-") for p in folder.iterdir())


POINTS = {
    # before the first update: the logdir is made, nothing trained yet
    "compile": lambda logdir: (logdir / "config.yaml").exists() and time.sleep(3) is None,
    "mid": lambda logdir: checkpoint_steps(logdir) and episodes_done(logdir) >= 2,
    "save": lambda logdir: checkpoint_steps(logdir) and _in_save(logdir),
}


def _interrupt(root, logdir, point, sig, uri=None, steps=STEPS, **sets):
    """Train `logdir` and send `sig` at `point` (a POINTS key, or a predicate of the logdir);
    returns (exit code, output, covered episodes)."""
    log = root / f"{logdir.name}.log"
    reached = POINTS.get(point, point)
    with started(*train_args(logdir, steps, uri=uri, **sets), cwd=root, log=log) as process:
        poll = 0.002 if point == "save" else 0.05
        wait_for(lambda: reached(logdir), 300, f"the {point} point", poll, process)
        signal_group(process, sig)
        process.wait(timeout=120)
    return process.returncode, log.read_text(), covered(logdir)


def signal_probe(point: str, name: str, times: int = 1):
    def probe(root: Path) -> None:
        logdir, uri = root / "run", _sqlite(root)
        kept: list = []
        for _ in range(times):
            code, output, kept = _interrupt(root, logdir, point, SIGNALS[name], uri)
            check("Traceback" not in output, f"a traceback after SIG{name.upper()} at {point}")
        _finish(root, logdir, uri, kept)

    return probe


def first_second_int(root: Path) -> None:
    """Ctrl-C in the first second: a line, no traceback; the re-run trains the whole run."""
    logdir = root / "run"
    log = root / "run.log"
    with started(*train_args(logdir, STEPS), cwd=root, log=log) as process:
        time.sleep(0.7)
        signal_group(process, signal.SIGINT)
        process.wait(timeout=120)
    text = log.read_text()
    check("Traceback" not in text, f"a traceback: {text.strip().splitlines()[-1:]}")
    check(len(text.strip().splitlines()) <= 1, f"{len(text.splitlines())} lines: {text[:150]!r}")
    _finish(root, logdir, None, [])


# --- a damaged logdir: made once per base, copied for each probe


_BASES: dict[int, tuple[Path, list]] = {}
_BASES_LOCK = threading.Lock()


def _base(root: Path, checkpoints: int) -> tuple[Path, list]:
    """A copy in `root` of a run SIGKILLed just after its `checkpoints`-th checkpoint (untracked:
    a copied logdir would not match its MLflow run's logdir tag), made once per round in
    root/../_base<checkpoints>; returns the copy and the episodes its checkpoint covers."""

    def enough(logdir: Path) -> bool:
        return len(checkpoint_steps(logdir)) >= checkpoints and episodes_done(logdir) >= checkpoints

    with _BASES_LOCK:
        if checkpoints not in _BASES:
            home = root.parent / f"_base{checkpoints}"
            home.mkdir()
            _interrupt(home, home / "run", enough, signal.SIGKILL)
            _BASES[checkpoints] = (home / "run", covered(home / "run"))
    made, kept = _BASES[checkpoints]
    shutil.copytree(made, root / "run", symlinks=True)
    return root / "run", kept


def _refused_or_finished(root, logdir, kept, uri=None, what="", **sets):
    """A damaged logdir: either one line naming `what` (exit non-zero) with every record file
    byte-identical, or a finished run that kept every covered record."""
    before = {n: (logdir / n).read_bytes() for n in ("episodes.jsonl", "metrics.jsonl")}
    done = run_cli(*train_args(logdir, STEPS, uri=uri, **sets), cwd=root)
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("resource plan")]
    check("Traceback" not in done.stderr, f"a traceback: {lines[-1:]}")
    if done.returncode == 0:
        episodes = check_records(logdir, STEPS, kept)
        if uri:
            check_mlflow(uri, logdir, episodes, "train")
        return "finished"
    check(len(lines) == 1, f"exit {done.returncode} with {len(lines)} lines: {lines[:3]}")
    check(what in lines[0], f"the refusal does not name {what}: {lines[0][:150]}")
    after = {n: (logdir / n).read_bytes() for n in before}
    check(after == before, "the records changed although the run was refused")
    return "refused"


def damage(base_checkpoints: int, how: str):
    def probe(root: Path) -> None:
        logdir, kept = _base(root, base_checkpoints)
        uri, sets = None, {}
        ckpts = sorted((logdir / "checkpoint").glob("ckpt-*"))
        what = "checkpoint"
        if how == "damage-newest":
            # the older checkpoint is resumed: what the damaged one alone covered is redone
            older = [int(c.name.split("-")[1]) for c in ckpts[:-1]]
            kept = [e for e in kept if older and e["step"] <= older[-1]]
            replay = ckpts[-1] / "replay.npz"
            data = replay.read_bytes()
            replay.write_bytes(data[:100] + b"\0" * 64 + data[164:])
        elif how == "delete-checkpoints":
            shutil.rmtree(logdir / "checkpoint")
        elif how == "empty-checkpoints":
            for ckpt in ckpts:
                shutil.rmtree(ckpt)
        elif how == "other-config":
            (logdir / "config.yaml").unlink()
            sets, what = {"agent.train_ratio": 8}, "config"
        elif how == "garble-mid":
            lines = (logdir / "episodes.jsonl").read_text().splitlines(keepends=True)
            lines[0] = '{"index": 0, "sc#garbled\n'
            (logdir / "episodes.jsonl").write_text("".join(lines))
            kept, what = kept[1:], "episodes.jsonl"
        elif how == "torn-tail":
            with open(logdir / "episodes.jsonl", "a") as f:
                f.write('{"index": 99, "sco')
        outcome = _refused_or_finished(root, logdir, kept, uri, what, **sets)
        if how == "other-config":
            check(outcome == "refused", "resumed the checkpoint under another config")
        if how == "garble-mid" and outcome == "finished":
            check(False, "finished over a garbled record without a word")

    return probe


def busy_logdir(root: Path) -> None:
    """A second train on a logdir in use: one line, quickly; the first finishes."""
    logdir = root / "run"
    with started(*train_args(logdir, STEPS), cwd=root, log=root / "a.log") as first:
        wait_for(lambda: (logdir / "config.yaml").exists(), 120, "the first run", process=first)
        second = run_cli(*train_args(logdir, STEPS), cwd=root, timeout=120)
        lines = second.stderr.strip().splitlines()
        check(
            second.returncode != 0 and len(lines) == 1,
            f"second: exit {second.returncode} {lines[:2]}",
        )
        first.wait(timeout=600)
        check(first.returncode == 0, f"the first run exit {first.returncode}")
    check_records(logdir, STEPS)


def two_logdirs_one_run(root: Path) -> None:
    """Two logdirs with the same task, seed and config into one store: each its own run, or the
    second refused at start; never records mixed."""
    uri, a, b = _sqlite(root), root / "a", root / "b"
    done = run_cli(*train_args(a, 2 * EPISODE, uri=uri), cwd=root)
    check(done.returncode == 0, f"the first run exit {done.returncode}")
    start = time.monotonic()
    other = run_cli(*train_args(b, 2 * EPISODE, uri=uri), cwd=root)
    if other.returncode == 0:
        check_mlflow(uri, b, check_records(b, 2 * EPISODE), "train")
    else:
        check(time.monotonic() - start < 60, "refused only after training")
        check(len(other.stderr.strip().splitlines()) == 1, "refused in several lines")
    check_mlflow(uri, a, check_records(a, 2 * EPISODE), "train")


def server_train(kill_train: bool):
    """train --tracking-uri on a real mlflow server: the server SIGKILLed and restarted 20 s
    later mid-run (the run finishes and delivers everything, or, if it ended inside the
    outage, says its records wait and the same command delivers them once), or the train
    SIGKILLed mid-run and re-run (each episode once)."""

    def probe(root: Path) -> None:
        server = MlflowServer(root / "server")
        server.start()
        try:
            logdir = root / "run"
            if kill_train:
                _, _, kept = _interrupt(root, logdir, "mid", signal.SIGKILL, server.url)
                _finish(root, logdir, server.url, kept)
                return
            args = train_args(logdir, 8 * EPISODE, uri=server.url)
            with started(*args, cwd=root, log=root / "run.log") as process:
                wait_for(lambda: episodes_done(logdir) >= 1, 300, "an episode", process=process)
                server.kill()
                time.sleep(20)
                server.start()
                process.wait(timeout=600)
            if process.returncode != 0:  # the run ended inside the outage: the README's re-run
                _outage_at_the_end((root / "run.log").read_text(), process.returncode)
                _finish(root, logdir, server.url, [], steps=8 * EPISODE)
                return
            check_mlflow(server.url, logdir, check_records(logdir, 8 * EPISODE), "train")
        finally:
            server.kill()

    return probe


def _outage_at_the_end(output: str, code: int) -> None:
    """A command whose run ended while the server was down may stop (exit 1), as the README
    says, only with its last line naming MLflow and the records kept on disk ("stopped
    (resumable)" or "records wait"), never FAILED: then the same command, re-run once the
    server is back, must deliver everything once."""
    lines = output.strip().splitlines()
    check(code == 1, f"exit {code} after the outage: {lines[-1:]}")
    check(
        lines and "MLflow at" in lines[-1] and ("wait" in output or "resumable" in output),
        f"after the outage the last line does not say the records wait: {lines[-1:]}",
    )


# --- sweeps with the local launcher


def _sweep_args(spec: Path, root: Path, uri: str, workdir: str = "work") -> list[str]:
    return ["sweep", str(spec), "--tracking-uri", uri, "--workdir", str(root / workdir)]


def _check_sweep(uri: str, name: str, runs: int, steps: int) -> None:
    """Every run of sweep `name` FINISHED, its files whole and each episode once in MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    check(experiment is not None, f"no experiment {name}")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    check(len(found) == runs, f"{len(found)} MLflow runs, wanted {runs}")
    for run in found:
        logdir = Path(run.data.tags["dreamerbench.logdir"])
        check_mlflow(uri, logdir, check_records(logdir, steps), name)


def _spec(root: Path, name: str, seeds: int = 2, steps: int = 3 * EPISODE) -> Path:
    return tiny_spec(root, name, tasks=["cartpole_balance"], seeds=seeds, steps=steps, parallel=1)


def launcher_probe(point: str, name: str):
    """A local sweep launcher signalled at `point` (start: 0.5 s in; mid: the first run's first
    checkpoint; after-finished: right after '[1/2] finished'), then the sweep re-run."""

    def probe(root: Path) -> None:
        seeds = 2 if point == "after-finished" else 1
        spec, uri = _spec(root, "s", seeds=seeds), _sqlite(root)
        log = root / "launcher.log"
        with started(*_sweep_args(spec, root, uri), cwd=root, log=log) as launcher:
            if point == "start":
                time.sleep(0.5)
            elif point == "mid":
                wait_for(
                    lambda: list((root / "work").rglob("ckpt-*")),
                    300,
                    "a checkpoint",
                    process=launcher,
                )
            else:
                wait_for(
                    lambda: "finished" in log.read_text(), 300, "a run to finish", 0.01, launcher
                )
            stopped_at = time.monotonic()
            signal_group(launcher, SIGNALS[name])
            launcher.wait(timeout=300)
        if point == "after-finished" and name != "kill":
            took = time.monotonic() - stopped_at
            check(took < 30, f"the launcher ran {took:.0f} s more after SIG{name.upper()}")
        # a launcher killed outright leaves its worker to end by itself: wait for it
        wait_for(lambda: not _workers_running(root), 300, "the orphaned worker", 0.5)
        again = run_cli(*_sweep_args(spec, root, uri), cwd=root)
        check(
            again.returncode == 0,
            f"the re-run exit {again.returncode}: "
            f"{(again.stdout + again.stderr).strip().splitlines()[-1:]}",
        )
        _check_sweep(uri, "s", seeds, 3 * EPISODE)

    return probe


def _workers_running(root: Path) -> bool:
    """Whether a process still has `root` on its command line (a worker of this probe)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(root).encode() in (proc / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def two_launchers(same_workdir: bool):
    def probe(root: Path) -> None:
        spec, uri = _spec(root, "s"), _sqlite(root)
        b_workdir = "work" if same_workdir else "work2"
        with started(*_sweep_args(spec, root, uri), cwd=root, log=root / "a.log") as a:
            with started(
                *_sweep_args(spec, root, uri, b_workdir), cwd=root, log=root / "b.log"
            ) as b:
                a.wait(timeout=600)
                b.wait(timeout=600)
        texts = [(root / n).read_text() for n in ("a.log", "b.log")]
        check("Traceback" not in "".join(texts), "a traceback in a launcher")
        check(all("FAILED" not in t for t in texts), "a launcher reports FAILED runs")
        _check_sweep(uri, "s", 2, 3 * EPISODE)

    return probe


def rewritten_logdir_tag(root: Path) -> None:
    """A stopped sweep run whose MLflow logdir tag names another folder: the re-run must leave
    that folder byte-identical and finish the run."""
    from mlflow.tracking import MlflowClient

    spec, uri = _spec(root, "s", seeds=1, steps=4 * EPISODE), _sqlite(root)
    with started(*_sweep_args(spec, root, uri), cwd=root, log=root / "l.log") as launcher:
        wait_for(
            lambda: list((root / "work").rglob("ckpt-*")), 300, "a checkpoint", process=launcher
        )
        signal_group(launcher, signal.SIGTERM)
        launcher.wait(timeout=300)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    real = Path(run.data.tags["dreamerbench.logdir"])
    decoy = root / "decoy"
    shutil.copytree(real, decoy)
    (decoy / "media").mkdir(exist_ok=True)
    (decoy / "media" / "keep.txt").write_text("precious\n")
    before = tree_bytes(decoy)
    client.set_tag(run.info.run_id, "dreamerbench.logdir", str(decoy))
    again = run_cli(*_sweep_args(spec, root, uri), cwd=root)
    check(tree_bytes(decoy) == before, "the folder the tag named was changed")
    check(again.returncode == 0, f"the re-run exit {again.returncode}")
    run = client.get_run(run.info.run_id)
    check(run.info.status == "FINISHED", f"the run is {run.info.status}")
    episodes = check_records(real, 4 * EPISODE)
    history = client.get_metric_history(run.info.run_id, "episode/score")
    check(len(history) == len(episodes), f"{len(history)} scores in MLflow, {len(episodes)} ran")


def server_sweep(root: Path) -> None:
    """A local sweep into a real mlflow server SIGKILLed mid-run and restarted 20 s later: the
    launcher finishes the run (or, if the run ended inside the outage, says the records wait
    and the sweep re-run finishes it) and MLflow holds each episode once."""
    server = MlflowServer(root / "server")
    server.start()
    try:
        spec = _spec(root, "s", seeds=1, steps=8 * EPISODE)
        log = root / "launcher.log"
        with started(*_sweep_args(spec, root, server.url), cwd=root, log=log) as launcher:
            wait_for(
                lambda: [p for p in (root / "work").rglob("episodes.jsonl") if p.stat().st_size],
                300,
                "an episode",
                process=launcher,
            )
            server.kill()
            time.sleep(20)
            server.start()
            launcher.wait(timeout=600)
        if launcher.returncode != 0:  # the run ended inside the outage: the README's re-run
            _outage_at_the_end(log.read_text(), launcher.returncode)
            again = run_cli(*_sweep_args(spec, root, server.url), cwd=root)
            tail = again.stderr.strip().splitlines()[-1:]
            check(again.returncode == 0, f"the re-run of the sweep exit {again.returncode}: {tail}")
        _check_sweep(server.url, "s", 1, 8 * EPISODE)
    finally:
        server.kill()


PROBES = {
    **{
        f"train-{name}-{point}": signal_probe(point, name)
        for point in ("compile", "mid", "save")
        for name in ("kill", "term", "int")
    },
    "train-kill-mid-twice": signal_probe("mid", "kill", times=2),
    "train-int-first-second": first_second_int,
    "logdir-damaged-only-checkpoint": damage(1, "damage-newest"),
    "logdir-checkpoint-deleted": damage(1, "delete-checkpoints"),
    "logdir-checkpoints-emptied": damage(2, "empty-checkpoints"),
    "logdir-damaged-newest-of-two": damage(2, "damage-newest"),
    "logdir-config-deleted-other-config": damage(2, "other-config"),
    "logdir-jsonl-garbled-mid": damage(2, "garble-mid"),
    "logdir-jsonl-torn-tail": damage(2, "torn-tail"),
    "train-busy-logdir": busy_logdir,
    "train-two-logdirs-one-store": two_logdirs_one_run,
    "server-train-kill-restart": server_train(kill_train=False),
    "server-train-sigkill-rerun": server_train(kill_train=True),
    "server-sweep-kill-restart": server_sweep,
    **{
        f"sweep-{name}-{point}": launcher_probe(point, name)
        for point, name in [
            ("start", "kill"),
            ("mid", "kill"),
            ("mid", "term"),
            ("mid", "int"),
            ("after-finished", "term"),
            ("after-finished", "int"),
        ]
    },
    "sweep-two-launchers-same-workdir": two_launchers(same_workdir=True),
    "sweep-two-launchers-two-workdirs": two_launchers(same_workdir=False),
    "sweep-logdir-tag-rewritten": rewritten_logdir_tag,
}
QUICK = [
    "train-kill-mid",
    "train-term-save",
    "logdir-damaged-only-checkpoint",
    "logdir-config-deleted-other-config",
    "sweep-term-after-finished",
    "server-train-kill-restart",
]


def _one(name: str, root: Path) -> Outcome:
    start = time.monotonic()
    root.mkdir(parents=True)
    try:
        PROBES[name](root)
        return Outcome(name, True, "", time.monotonic() - start)
    except Exception as failed:  # a probe's own error is its verdict, not the round's end
        reason = str(failed) if isinstance(failed, ProbeFailed) else repr(failed)
        return Outcome(name, False, reason[:300], time.monotonic() - start)


def run(out: Path, only: list[str] | None, quick: bool, log, jobs: int = 2) -> list[Outcome]:
    """Every probe (or those of `only`, or QUICK), `jobs` at a time, each in out/<probe>/."""
    names = [n for n in PROBES if chosen(n, only, quick, QUICK)]
    outcomes = []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for outcome in pool.map(lambda n: _one(n, out / n), names):
            log(outcome)
            outcomes.append(outcome)
    return outcomes
