"""Issue 23, items 5 and 7, through the real CLI into real MLflow: one workdir owns a sweep (a
second launcher of the spec and store with another ``--workdir`` is refused in one line naming
the first), and a resumed run trains in the logdir the sweep derives for it, never in the folder
its MLflow tag ``dreamerbench.logdir`` names.

One module-scoped scenario (two launchers started together, the winner stopped after its first
checkpoint, the run's tag pointed at another folder, the sweep run again) is shared by the
tests; each asserts on what it recorded, so their order does not matter."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_sweep_continue import EPISODE, spec_for
from test_sweep_slurm import REPO, dreamerbench, jsonl, wait_for

from dreamerbench.experiments import tracking

STEPS = 4 * EPISODE  # a checkpoint each episode: time to stop the run between them


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("workdir")
    spec = spec_for(root, STEPS)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    workdirs = [root / "first", root / "second"]
    launchers = [
        subprocess.Popen(
            [sys.executable, "-m", "dreamerbench.experiments.cli", "sweep", str(spec)]
            + ["--tracking-uri", uri, "--workdir", str(workdir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for workdir in workdirs
    ]
    try:
        tracker = wait_for(lambda: _tracker(uri), 300, "the sweep's MLflow experiment", poll=0.5)
        experiment_id = tracker.find_experiment("grow").experiment_id

        def checkpointed():
            runs = tracker.runs(experiment_id)
            return runs and int(runs[0].data.tags.get(tracking.STEPS_TAG, "0")) > 0 and runs[0]

        run = wait_for(checkpointed, 300, "the run's first delivered checkpoint")
        owner = Path(run.data.tags[tracking.LOGDIR_TAG]).parents[2]  # WORKDIR/grow/RUN/ID
        winner = workdirs.index(owner)
        launchers[winner].send_signal(signal.SIGTERM)  # stopped at a checkpoint: resumable
        outputs = [launcher.communicate(timeout=300) for launcher in launchers]
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    stopped = tracker.run(run.info.run_id)
    logdir = Path(stopped.data.tags[tracking.LOGDIR_TAG])

    # Someone who may write to the store points the run's tag at another folder of files (here
    # a copy of the run's own logdir, which a resume there would happily continue).
    other = root / "elsewhere"
    shutil.copytree(logdir, other)
    (other / "media").mkdir(exist_ok=True)
    (other / "media" / "keep.gif").write_bytes(b"GIF89a not to be deleted")
    before = snapshot(other)
    tracker.tag(run.info.run_id, {"logdir": str(other)})
    resumed = dreamerbench(
        "sweep", str(spec), "--tracking-uri", uri, "--workdir", str(workdirs[winner])
    )
    return SimpleNamespace(
        spec=spec,
        uri=uri,
        tracker=tracker,
        run_id=run.info.run_id,
        stopped=stopped,
        logdir=logdir,
        winner=workdirs[winner],
        loser=workdirs[1 - winner],
        outputs=outputs,
        codes=[launcher.returncode for launcher in launchers],
        index=winner,
        other=other,
        before=before,
        resumed=resumed,
    )


def _tracker(uri):
    try:
        tracker = tracking.Tracker(uri, create=False)
        tracker.find_experiment("grow")
    except (FileNotFoundError, ValueError):
        return None
    return tracker


def test_a_second_workdir_of_one_sweep_is_refused_in_one_line_naming_the_first(scenario, capsys):
    """Item 7: two launchers of one spec and store with different --workdir both trained the
    same MLflow runs, each reporting FAILED for what the other finished."""
    out, err = scenario.outputs[1 - scenario.index]
    assert scenario.codes[1 - scenario.index] == 2, (out, err)
    refusal = (
        f"dreamerbench sweep: error: --workdir='{scenario.loser}' is not allowed; allowed: "
        f"{scenario.winner}, the workdir of sweep 'grow' in {scenario.uri} (its runs' logdirs "
        "are there; a second workdir would train the same MLflow runs again)"
    )
    assert err.strip().splitlines()[-1] == refusal, err
    assert "Traceback" not in err and not scenario.loser.exists()
    # The winner trained until it was stopped; the dry run refuses what the sweep refuses.
    assert "stopped (resumable)" in scenario.outputs[scenario.index][0]
    from dreamerbench.experiments.cli import main

    argv = ["sweep", str(scenario.spec), "--tracking-uri", scenario.uri, "--dry-run"]
    assert main([*argv, "--workdir", str(scenario.loser)]) == 2
    assert capsys.readouterr().err == refusal + "\n"
    assert not scenario.loser.exists()


def test_a_resumed_run_trains_in_its_own_logdir_whatever_its_tag_names(scenario):
    """Item 5: a resumed run trained in whatever folder its dreamerbench.logdir tag named (it
    replaced metrics.jsonl there and deleted a file under media/)."""
    assert scenario.stopped.info.status == "SCHEDULED"
    assert scenario.resumed.returncode == 0, scenario.resumed.stdout + scenario.resumed.stderr
    assert (
        f"warning: MLflow run {scenario.run_id} (cartpole_balance/seed0) has its tag "
        f"dreamerbench.logdir='{scenario.other}', not its logdir in the sweep's folder; it "
        f"resumes in {scenario.logdir} and the tag is set back to it\n"
    ) in scenario.resumed.stderr
    assert snapshot(scenario.other) == scenario.before  # byte for byte, nothing added
    assert scenario.logdir.is_relative_to(scenario.winner / "grow")

    (run,) = scenario.tracker.runs(scenario.tracker.find_experiment("grow").experiment_id)
    assert run.info.run_id == scenario.run_id and run.info.status == "FINISHED"
    assert run.data.tags[tracking.LOGDIR_TAG] == str(scenario.logdir)
    assert 0 < int(run.data.tags["dreamerbench.resumed_at"]) < STEPS
    episodes = jsonl(scenario.logdir / "episodes.jsonl")
    assert [e["index"] for e in episodes] == list(range(len(episodes))) and len(episodes) >= 3
    history = scenario.tracker.client.get_metric_history(scenario.run_id, "episode/score")
    assert sorted((m.step, m.value) for m in history) == [
        (e["step"], float(e["score"])) for e in episodes
    ]
