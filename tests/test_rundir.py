"""The run directory and the training loop, driven by a stub agent on a real DMC task (no JAX).

cartpole with action repeat 8: every episode is 125 actions, so episodes end at
steps 125, 251, 377, ... (one env). Each test names the fault of issue 11 it covers.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from stub_agent import StubAgent

from dreamerbench.agent.config import ConfigError, resolve_config
from dreamerbench.agent.rundir import LogdirBusy, RunDir
from dreamerbench.agent.trainer import Trainer
from dreamerbench.core import checkpoint, chunks
from dreamerbench.core.checkpoint import CheckpointError
from dreamerbench.core.files import DiskFull
from dreamerbench.experiments.outputs import build

REPO = Path(__file__).resolve().parent.parent
EPISODE = 126  # observations per episode, the reset one included
TINY = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "agent.train_ratio": 16,
    "run.envs": 1,
    "run.train_start": 32,
    "run.save_every": EPISODE,
    "run.log_every": 0,
    "run.progress": False,
    "replay.capacity": 5000,
    "env.action_repeat": 8,
}


def config(steps, seed=0, **extra):
    return resolve_config(
        "dmc_proprio", "cartpole_balance", seed, {**TINY, "run.steps": steps, **extra}
    )


def train(logdir, steps, stop_after_saves=None, **extra):
    """Train with the stub agent; `stop_after_saves` stops the loop (as Ctrl-C does) after that
    many saves."""
    stop = threading.Event()
    cfg = config(steps, **extra)
    outputs = build([cfg], [logdir])[0] + (
        [_StopAfter(stop_after_saves, stop)] if stop_after_saves else []
    )
    return Trainer(cfg, logdir, outputs, make_agent=StubAgent).run(stop)


class _StopAfter:
    def __init__(self, saves, stop):
        self.saves, self.stop = saves, stop

    def publish(self, logdir):
        self.saves -= 1
        if self.saves <= 0:
            self.stop.set()

    def close(self):
        pass


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def episode_steps(logdir):
    return [r["step"] for r in records(Path(logdir) / "episodes.jsonl")]


def test_stub_agent_drives_the_loop_without_jax(tmp_path):
    script = (
        "import json, sys\n"
        "from test_rundir import train\n"
        f"summary = train({str(tmp_path / 'run')!r}, 3 * {EPISODE})\n"
        "print(json.dumps({'summary': summary, 'jax': 'jax' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["jax"] is False
    assert (
        out["summary"]["steps"] == 3 * EPISODE and out["summary"]["updates"] == 3 * EPISODE - 32 + 1
    )
    episodes = records(tmp_path / "run" / "episodes.jsonl")
    assert [e["step"] for e in episodes] == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1]
    assert [e["index"] for e in episodes] == [0, 1, 2]
    metrics = records(tmp_path / "run" / "metrics.jsonl")
    assert {m["kind"] for m in metrics} == {"train", "fps"}
    for log in (episodes, metrics):  # the identity no store can merge: strictly increasing time_ms
        times = [r["time_ms"] for r in log]
        assert times == sorted(set(times))
    assert [c.step for c in checkpoint.complete(tmp_path / "run" / "checkpoint")] == [
        2 * EPISODE,
        3 * EPISODE,
    ]


def test_summary_after_a_resume_counts_every_episode_on_disk(tmp_path):
    """Issue 11, fault 6: the summary of a resumed run counted only the episodes after the
    resume."""
    logdir = tmp_path / "run"
    stopped = train(logdir, 4 * EPISODE, stop_after_saves=2)  # stopped (Ctrl-C) at the save at 252
    assert stopped["steps"] == 2 * EPISODE and not stopped["finished"] and stopped["episodes"] == 2
    scores = [r["score"] for r in records(logdir / "episodes.jsonl")]
    summary = train(logdir, 2 * EPISODE + 100)  # resumed; no episode ends before the budget
    assert summary["finished"] and summary["episodes"] == 2
    assert summary["last_score"] == scores[-1]
    assert summary["mean_score_last_10"] == pytest.approx(sum(scores) / 2)
    assert json.loads((logdir / "summary.json").read_text()) == summary


# Calls that change the filesystem; the kill test kills the process just before the k-th of them
# inside a save. (A process kill loses no written page, so an fsync is not a point of its own.)
_FS_CALLS = [
    (os, "open"),
    (os, "rename"),
    (os, "replace"),
    (os, "mkdir"),
    (os, "unlink"),
    (os, "truncate"),
    (os, "ftruncate"),
    (shutil, "rmtree"),
    (builtins, "open"),
]


def _changes_files(name, args, kwargs) -> bool:
    if name == "builtins.open":
        mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
        return any(flag in mode for flag in "wax+")
    if name == "os.open":
        return bool(
            (args[1] if len(args) > 1 else kwargs["flags"]) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
    return True


def _train_killed_at(logdir, steps, k, **extra) -> int:
    """Fork; the child trains and dies (os._exit: no clean-up runs) just before its k-th filesystem
    call inside a save or a replay chunk's write (counted over all of them). Returns the child's
    exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            state = {"inside": False, "calls": 0}

            def counted(name, function):
                def call(*args, **kwargs):
                    if not state["inside"] or not _changes_files(name, args, kwargs):
                        return function(*args, **kwargs)
                    state["calls"] += 1
                    if state["calls"] > k:
                        os._exit(137)
                    # calls made by this one (rmtree's unlinks) are not points of their own
                    state["inside"] = False
                    try:
                        return function(*args, **kwargs)
                    finally:
                        state["inside"] = True

                return call

            for module, name in _FS_CALLS:
                setattr(module, name, counted(f"{module.__name__}.{name}", getattr(module, name)))

            def inside(function):
                def call(*args, **kwargs):
                    state["inside"] = True
                    try:
                        return function(*args, **kwargs)
                    finally:
                        state["inside"] = False

                return call

            RunDir.save = inside(RunDir.save)
            chunks.write = inside(chunks.write)
            train(logdir, steps, **extra)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    return os.waitpid(pid, 0)[1] >> 8


@pytest.mark.parametrize("chunk", [1024, 6])
def test_a_kill_at_every_point_of_a_save_and_a_resave_leaves_a_resumable_logdir(tmp_path, chunk):
    """Issue 11, fault 4: a kill while re-saving at the same step left a logdir that could not
    resume. With 6-step replay chunks the kills also hit the chunks written between the saves."""
    # Action repeat 50: 20-step episodes keep each of the ~50 kill points cheap.
    short = {
        "env.action_repeat": 50,
        "run.train_start": 10,
        "run.save_every": 20,
        "replay.chunk": chunk,
    }
    base = tmp_path / "base"
    train(
        base, 20, **short
    )  # saves at 20, then re-saves after recording the episode that ends there
    (base / "summary.json").unlink()
    k = 0
    while True:
        logdir = tmp_path / f"k{k}"
        shutil.copytree(base, logdir)
        # Resumed at 20 (envs restart), the run saves at 40 and re-saves at 40 after
        # recording the episode that ends there; the child dies before its k-th call.
        code = _train_killed_at(logdir, 40, k, **short)
        held = checkpoint.complete(logdir / "checkpoint")
        assert held and held[-1].step in (20, 40), (k, held)
        before = (logdir / "episodes.jsonl").read_bytes()
        summary = train(logdir, 41, **short)  # resume after the kill, and finish
        episodes = records(logdir / "episodes.jsonl")
        assert summary["finished"] and summary["episodes"] == len(episodes), (k, summary)
        assert [e["index"] for e in episodes] == list(range(len(episodes))), k
        assert [e["step"] for e in episodes][:1] == [20] and len(episodes) in (1, 2), (k, episodes)
        if (held[-1].step, held[-1].n) == (40, 2):  # the re-save was in place: nothing is lost
            assert (logdir / "episodes.jsonl").read_bytes() == before and len(episodes) == 2, k
        train_steps = [m["step"] for m in records(logdir / "metrics.jsonl") if m["kind"] == "train"]
        assert train_steps == sorted(set(train_steps)), k  # no metric record twice
        # The replay directory holds the chunks the last checkpoint names, each whole, and
        # nothing else (no chunk of the killed timeline, no half-written one).
        last = checkpoint.complete(logdir / "checkpoint")[-1]
        _, replay, _ = checkpoint.load(last)
        written = int(replay["chunks"][1])
        assert written == (41 // chunk if chunk < 41 else 0), (k, written)
        assert sorted(p.name for p in (logdir / "replay").glob("*")) == [
            chunks.name(i) for i in range(written)
        ], k
        for i, digest in enumerate(json.loads(bytes(replay["digests"]))):
            chunks.read(logdir / "replay", i, digest)  # CheckpointError if damaged
        shutil.rmtree(logdir)
        if code == 0:
            break
        assert code == 137, (k, code)
        k += 1
    assert k >= 15, f"only {k} kill points inside saves: the kill hook did not reach the saves"


@pytest.fixture
def saved_run(tmp_path):
    """An unfinished run with checkpoints at 126 and 252 (stopped as by Ctrl-C)."""
    logdir = tmp_path / "run"
    train(logdir, 4 * EPISODE, stop_after_saves=2)
    held = checkpoint.complete(logdir / "checkpoint")
    assert [c.step for c in held] == [EPISODE, 2 * EPISODE]
    return logdir, held


def _resumes_from(logdir, capsys, bad):
    summary = train(logdir, 3 * EPISODE)
    warning = capsys.readouterr().err
    assert str(bad) in warning and "trying an older checkpoint" in warning, warning
    assert summary["finished"] and summary["steps"] == 3 * EPISODE
    assert episode_steps(logdir) == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1]
    assert json.loads((logdir / "summary.json").read_text())["episodes"] == 3


@pytest.mark.parametrize("garble", ["zeros", "ones", "truncate"])
@pytest.mark.parametrize("name", ["state.msgpack", "replay.npz", "counters.json"])
def test_a_damaged_checkpoint_file_is_detected_and_the_older_checkpoint_used(
    saved_run, capsys, name, garble
):
    """Issue 11, fault 5: garbled checkpoint bytes loaded silently; a truncated replay.npz was a
    traceback."""
    logdir, held = saved_run
    bad = held[-1].path / name
    data = bad.read_bytes()
    middle = len(data) // 2
    if garble == "truncate":
        bad.write_bytes(data[:middle])
    else:  # 64 bytes in the middle set to 0x00 or 0xFF
        fill = b"\0" if garble == "zeros" else b"\xff"
        bad.write_bytes(data[:middle] + fill * 64 + data[middle + 64 :])
    _resumes_from(logdir, capsys, bad)


def test_no_readable_checkpoint_is_one_error_naming_the_file(saved_run):
    logdir, held = saved_run
    for ckpt in held:
        (ckpt.path / "replay.npz").write_bytes(b"PK\3\4 cut short")
    with pytest.raises(CheckpointError) as error:
        train(logdir, 3 * EPISODE)
    message = str(error.value)
    assert "\n" not in message and str(held[0].path / "replay.npz") in message and "move" in message
    assert records(logdir / "episodes.jsonl"), "a failed resume must not empty the logs"


def test_a_jsonl_file_shorter_than_the_checkpoint_says_is_never_padded(saved_run, capsys):
    """Issue 11, fault 5: a short JSONL was padded with NUL bytes on resume."""
    logdir, held = saved_run
    path = logdir / "episodes.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0])  # the 2nd episode (covered by the newest checkpoint) is gone
    _resumes_from(logdir, capsys, path)
    assert b"\0" not in path.read_bytes()
    path.write_bytes(b"")  # shorter than every checkpoint: an error naming the file, nothing padded
    (logdir / "summary.json").unlink()
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        train(logdir, 4 * EPISODE)
    assert path.read_bytes() == b""


def test_an_empty_stray_checkpoint_directory_does_not_hide_the_good_one(saved_run, capsys):
    """Issue 11, fault 5: an empty stray ckpt-* hid the good checkpoint."""
    logdir, held = saved_run
    stray = logdir / "checkpoint" / "ckpt-999999999999-1"
    stray.mkdir()
    summary = train(logdir, 3 * EPISODE)
    assert f"{stray} is not a complete checkpoint" in capsys.readouterr().err
    assert summary["updates"] == 3 * EPISODE - 32 + 1  # resumed from 252, not from scratch
    assert episode_steps(logdir) == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1]


def test_a_garbled_config_is_one_error_naming_the_file(saved_run, tmp_path):
    logdir, _ = saved_run
    (logdir / "config.yaml").write_text("agent: [unclosed\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{logdir / 'config.yaml'} is not a readable config")
    ):
        train(logdir, 3 * EPISODE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "train",
            "--suite",
            "dmc_proprio",
            "--task",
            "cartpole_balance",
            "--size",
            "debug",
            "--logdir",
            str(logdir),
            "--set",
            "env.action_repeat=8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"dreamerbench train: error: {logdir / 'config.yaml'} is not a readable config "
        "(while parsing a flow sequence); restore it, or use a new logdir"
    ], done.stderr


def test_a_logdir_trains_in_one_process_at_a_time_and_keeps_others_temporary_files(tmp_path):
    """Issue 11, fault 3: two processes trained one logdir, and one deleted the other's checkpoint
    in progress."""
    logdir = tmp_path / "run"
    train(logdir, EPISODE)
    (logdir / "summary.json").unlink()
    with RunDir(logdir):  # this process trains it, with a save in progress
        in_progress = logdir / "checkpoint" / ".tmp-ckpt-000000000252-abc"
        in_progress.mkdir()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from test_rundir import train; train({str(logdir)!r}, 3 * {EPISODE})",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
        )
        assert done.returncode != 0 and "LogdirBusy" in done.stderr
        assert f"logdir {logdir} is in use by {os.getpid()}@" in done.stderr
        assert in_progress.is_dir()
    with pytest.raises(LogdirBusy):
        with RunDir(logdir):
            with RunDir(logdir):
                pass


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64m"):
        message = "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * (1 << 20))
                file.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_one_error_and_the_run_resumes_afterwards(small_disk):
    """Issue 11, fault 8: a full disk was a traceback. The device is a real 64 MB tmpfs filled up
    mid-run."""
    logdir = small_disk / "run"
    stop = threading.Event()

    class FillAfterFirstSave:
        def publish(self, _logdir):
            if not (small_disk / "filler").exists():
                _fill(small_disk)

        def close(self):
            pass

    trainer = Trainer(config(4 * EPISODE), logdir, [FillAfterFirstSave()], make_agent=StubAgent)
    with pytest.raises(DiskFull) as error:
        trainer.run(stop)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"no space left on the device of {logdir}")
    assert "run the same command again" in message
    (small_disk / "filler").unlink()
    summary = train(logdir, 4 * EPISODE)
    assert summary["finished"] and summary["episodes"] == 4
    assert episode_steps(logdir) == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1, 4 * EPISODE - 1]
    assert [r["index"] for r in records(logdir / "episodes.jsonl")] == [0, 1, 2, 3]


def test_a_full_disk_through_the_command_line_is_one_line(small_disk):
    """The `dreamerbench train` path of the same fault: exit 1, one line, no traceback."""
    logdir = small_disk / "run"
    (small_disk / "run").mkdir()
    _fill(small_disk)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            "train",
            "--suite",
            "dmc_proprio",
            "--task",
            "cartpole_balance",
            "--size",
            "debug",
            "--steps",
            "100",
            "--logdir",
            str(logdir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"dreamerbench train: error: no space left on the device of {logdir}")
    assert line.endswith(
        "free some space and run the same command again: it resumes from the last checkpoint"
    )


def test_updates_follow_the_train_ratio_exactly_and_a_stop_cuts_a_burst_of_updates(tmp_path):
    """updates = 1 + floor((agent steps from train_start on) x train_ratio / (B x T)) (the
    reference's Ratio), across a stop and resume.

    train_ratio 40 with B x T = 2 x 8 earns 2.5 updates per agent step (bursts of 2 and 3). A stop
    set after the 100th update (inside the burst from 99 to 101) is obeyed before the next update;
    the updates left stay due and are done after the resume.
    """
    steps, ratio = 3 * EPISODE, 40
    expected = 1 + (steps - TINY["run.train_start"]) * ratio // (2 * 8)
    whole = Trainer(
        config(steps, **{"agent.train_ratio": ratio}), tmp_path / "whole", make_agent=StubAgent
    ).run()
    assert whole["updates"] == expected == 866

    stop = threading.Event()

    class Stopping(StubAgent):
        def after_update(self):
            if self.updates[0] == 100:
                stop.set()

    logdir = tmp_path / "stopped"
    cut = Trainer(config(steps, **{"agent.train_ratio": ratio}), logdir, make_agent=Stopping).run(
        stop
    )
    assert not cut["finished"] and cut["updates"] == 100
    resumed = Trainer(
        config(steps, **{"agent.train_ratio": ratio}), logdir, make_agent=StubAgent
    ).run()
    assert resumed["finished"] and resumed["updates"] == expected
    state, _, _ = checkpoint.load(checkpoint.complete(logdir / "checkpoint")[-1])
    assert json.loads(state)["updates"] == expected  # the agent's own count agrees with the loop's


# `dreamerbench train` as a user runs it (a real process, the real command line and exit codes),
# with the stub agent standing in for DreamerV3 so that no JAX is needed.
_STUB_CLI = (
    "import sys\n"
    "from stub_agent import StubAgent\n"
    "from dreamerbench.agent import trainer\n"
    "trainer.Trainer.__init__.__defaults__ = ((), StubAgent)\n"
    "from dreamerbench.experiments.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def dreamerbench_train(logdir, steps, **extra):
    """``dreamerbench train --size debug`` with :data:`TINY` (and `extra`) on the stub agent:
    (exit code, stderr lines, summaries printed). A started run's resource-plan line (checked in
    test_train_command.py) is left out of the stderr lines."""
    sets = {**TINY, **extra}
    sets.pop("agent.size")
    argv = [
        *("train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug"),
        *("--steps", str(steps), "--logdir", str(logdir)),
    ]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    done = subprocess.run(
        [sys.executable, "-c", _STUB_CLI, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
    )
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    lines = done.stderr.strip().splitlines()
    started = [line for line in lines if line.startswith("resource plan: ")]
    assert len(started) <= 1, lines
    return done.returncode, [line for line in lines if line not in started], summaries


def _records_bytes(logdir):
    return {name: (logdir / f"{name}.jsonl").read_bytes() for name in ("episodes", "metrics")}


def _damage_replay(ckpt):
    path = ckpt.path / "replay.npz"
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\0" * 64 + data[164:])
    return path


@pytest.fixture
def one_checkpoint(tmp_path):
    """A run stopped after its first save: it holds one checkpoint (at 126), as every run does for
    its first run.save_every steps and after a failure (settle_pack)."""
    logdir = tmp_path / "run"
    train(logdir, 4 * EPISODE, stop_after_saves=1)
    (only,) = checkpoint.complete(logdir / "checkpoint")
    assert only.step == EPISODE and records(logdir / "episodes.jsonl")
    return logdir, only


@pytest.mark.parametrize(
    "fault", ["damaged only checkpoint", "checkpoint/ deleted", "checkpoint/ emptied", "both"]
)
def test_records_a_checkpoint_covered_are_never_erased(one_checkpoint, fault):
    """Issue "Nothing lost", 1: a damaged only checkpoint or a deleted checkpoint/ started the run
    from step 0 and emptied episodes.jsonl and metrics.jsonl. Now: exit 1, one line naming the
    file and what to do, every record kept."""
    logdir, only = one_checkpoint
    before = _records_bytes(logdir)
    if fault == "damaged only checkpoint":
        named = _damage_replay(only)
    elif fault == "checkpoint/ emptied":
        checkpoint.remove(only)
        named = logdir / "checkpoint"
    else:  # deleted; "both": config.yaml too, so nothing but the records is left
        shutil.rmtree(logdir / "checkpoint")
        if fault == "both":
            (logdir / "config.yaml").unlink()
        named = logdir / "checkpoint"
    code, err, summaries = dreamerbench_train(logdir, 4 * EPISODE)
    assert code == 1 and not summaries, err
    assert len(err) == 1 and err[0].startswith("dreamerbench train: error: "), err
    assert str(named) in err[0] and f"move {logdir} aside" in err[0], err[0]
    assert "new --logdir" in err[0]
    assert _records_bytes(logdir) == before
    assert [c.step for c in checkpoint.complete(logdir / "checkpoint")] == (
        [EPISODE] if fault == "damaged only checkpoint" else []
    )
    if fault == "both":  # moved aside, the same command starts afresh in a new logdir
        logdir.rename(logdir.with_name("aside"))
        code, err, summaries = dreamerbench_train(logdir, 2 * EPISODE)
        assert code == 0 and summaries[0]["finished"] and summaries[0]["episodes"] == 2, err


def test_a_kill_during_the_first_save_still_starts_afresh(tmp_path):
    """Records written before any checkpoint was complete are no one's yet (nothing delivered
    them): a kill at any point of the first save leaves a logdir that starts afresh or resumes.
    Issue "Nothing lost", found by tools.fault_round: a kill between the rename of the first
    checkpoint and its ``.checkpointed`` marker, then checkpoint/ deleted, started afresh and
    rewrote a covered episode."""
    short = {"env.action_repeat": 50, "run.train_start": 10, "run.save_every": 20}
    k = 0
    while True:
        logdir = tmp_path / f"k{k}"
        code = _train_killed_at(logdir, 40, k, **short)  # the first save is at 20
        held = checkpoint.complete(logdir / "checkpoint")
        marked = (logdir / ".checkpointed").exists()
        # The marker is written just before the checkpoint is renamed into place: a complete
        # checkpoint never lacks it (a kill there, then checkpoint/ deleted, erased covered
        # records), and a marker without one comes with the cut save's temporary directory.
        assert marked or not held, k
        assert held or not marked or checkpoint.partial_steps(logdir / "checkpoint") == {20}, k
        summary = train(logdir, 41, **short)
        episodes = records(logdir / "episodes.jsonl")
        assert summary["finished"] and summary["episodes"] == len(episodes), (k, summary)
        assert [e["index"] for e in episodes] == list(range(len(episodes))), k
        if not held:  # started afresh: the same two episodes as an unbroken run
            assert [e["step"] for e in episodes] == [20, 41], k
        assert (logdir / ".checkpointed").exists()
        shutil.rmtree(logdir)
        if code == 0 or held:
            break  # the first save was complete: what follows is the kill test above
        assert code == 137, (k, code)
        k += 1
    assert k >= 5, f"only {k} kill points inside the first save"


def test_the_config_a_checkpoint_was_made_with_travels_in_it(one_checkpoint):
    """Issue "Nothing lost", 2: with config.yaml deleted, a command with train ratio 8 resumed a
    checkpoint made at train ratio 16. The checkpoint's own config refuses it; run.* may change."""
    logdir, only = one_checkpoint
    assert checkpoint.read_counters(only)["config"]["agent"]["train_ratio"] == 16
    (logdir / "config.yaml").unlink()
    before = _records_bytes(logdir)
    code, err, _ = dreamerbench_train(logdir, 4 * EPISODE, **{"agent.train_ratio": 8})
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"dreamerbench train: error: logdir {logdir} holds a run with a different config in "
        f"checkpoint {only.path} (agent.train_ratio); use a new logdir, or the same settings "
        "to resume"
    )
    assert _records_bytes(logdir) == before and not (logdir / "config.yaml").exists()
    # Bookkeeping (run.*) may change: a longer budget and another log interval resume.
    code, err, summaries = dreamerbench_train(logdir, 3 * EPISODE, **{"run.log_every": 1.5})
    assert code == 0 and summaries[0]["finished"], err
    assert summaries[0]["updates"] == 3 * EPISODE - 32 + 1  # resumed, not started afresh
    assert episode_steps(logdir) == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1]


def _garble(path, index):
    """Overwrite the middle of line `index` of a JSONL file (same length); its byte offset."""
    lines = path.read_bytes().splitlines(keepends=True)
    offset = sum(len(line) for line in lines[:index])
    line = lines[index]
    lines[index] = line[:5] + b"#" * (len(line) - 10) + line[-5:]
    path.write_bytes(b"".join(lines))
    return offset


@pytest.mark.parametrize("name", ["episodes", "metrics"])
def test_a_garbled_line_every_checkpoint_covers_is_found_at_the_start(saved_run, name):
    """Issue "Nothing lost", 3: a JSONL line garbled mid-file was found only when the run ended,
    and then every rerun failed with no advice. Found before training: file, byte, what to do."""
    logdir, held = saved_run
    path = logdir / f"{name}.jsonl"
    offset = _garble(path, 0)  # covered by both checkpoints
    garbled = path.read_bytes()
    code, err, _ = dreamerbench_train(logdir, 3 * EPISODE)
    assert code == 1 and len(err) == 1, err
    assert f"{path} is damaged: the line at byte {offset} is not a JSON record" in err[0]
    assert f"restore what is damaged, or move {logdir} aside" in err[0], err[0]
    assert path.read_bytes() == garbled
    assert [c.step for c in checkpoint.complete(logdir / "checkpoint")] == [EPISODE, 2 * EPISODE]


def test_a_garbled_line_only_the_newest_checkpoint_covers_resumes_the_older(saved_run):
    """What the older checkpoint does not cover is written again on resume: the garbled line
    goes."""
    logdir, held = saved_run
    path = logdir / "episodes.jsonl"
    older, newer = (checkpoint.read_counters(c)["file_sizes"]["episodes"] for c in held)
    assert len(records(path)) == 2 and older == len(path.read_bytes().splitlines(True)[0])
    offset = _garble(path, 1)
    assert offset == older
    code, err, summaries = dreamerbench_train(logdir, 3 * EPISODE)
    assert code == 0 and summaries[0]["finished"], err
    assert err == [
        f"warning: {path} is damaged: the line at byte {offset} is not a JSON record, within the "
        f"{newer} bytes that checkpoint {held[1].path.name} covers; trying an older checkpoint"
    ], err
    assert summaries[0]["updates"] == 3 * EPISODE - 32 + 1
    assert episode_steps(logdir) == [EPISODE - 1, 2 * EPISODE - 1, 3 * EPISODE - 1]


@pytest.mark.parametrize("every_s, due", [(0.0, 0), (50.0, 5)])
def test_saves_follow_the_clock_as_well_so_outputs_lag_by_seconds(
    tmp_path, monkeypatch, every_s, due
):
    """Issue 17 item 6: the outputs take records only at checkpoints, every ``run.save_every``
    steps (hours at paper scale). With ``run.save_every_s`` a save also comes every that many
    seconds. A fake clock reads 1 s later at every look (about 1-2 looks per policy step), so
    over 2 episodes (252 policy steps, no step-scheduled save before the end) 50 s mean at
    least 5 saves and no more than 252 / 25; 0 turns the clock off."""
    from dreamerbench.agent import schedule

    now = iter(range(10**9))
    monkeypatch.setattr(schedule, "time", type("FakeTime", (), {"monotonic": lambda: next(now)}))

    class Saves:
        steps: list[int] = []

        def publish(self, logdir):
            self.steps.append(checkpoint.complete(Path(logdir) / "checkpoint")[-1].step)

        def close(self):
            pass

    saves = Saves()
    cfg = config(2 * EPISODE, **{"run.save_every": 10**6, "run.save_every_s": every_s})
    summary = Trainer(cfg, tmp_path, [saves], make_agent=StubAgent).run()
    assert summary["finished"]
    mid_run = saves.steps[:-1]  # the last save is the budget's
    assert saves.steps[-1] == 2 * EPISODE and mid_run == sorted(set(mid_run))
    assert due <= len(mid_run) <= (2 * EPISODE // 25 if due else 0), mid_run
