"""`dreamerbench eval` and `export` on a trained DreamerV3 debug checkpoint, and the open-loop
report (issue 14). One tiny dmc_vision run (16x16 images, two CNN stages) trains once for
the module; its compiles are cached for the eval process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from dreamerbench.core.records import media_files

STEPS = 64
TINY = [
    "agent.batch_size=2",
    "agent.batch_length=8",
    "agent.imag_length=3",
    "agent.train_ratio=16",
    "agent.cnn_mults=[2,2]",
    "run.envs=1",
    "run.parallel_envs=false",
    "run.train_start=32",
    f"run.save_every={STEPS}",
    "run.log_every=0",
    "replay.capacity=5000",
    "env.action_repeat=8",
    "env.image_size=16",
    f"run.eval_every={STEPS}",
    "run.eval_mode=greedy",
    "run.video_every=48",
]


def cli(*args, timeout=900):
    result = subprocess.run(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    sets = [
        arg for item in (*TINY, f"run.compile_cache={root / 'cache'}") for arg in ("--set", item)
    ]
    cli(
        "train",
        "--suite",
        "dmc_vision",
        "--task",
        "cartpole_balance",
        "--size",
        "debug",
        "--seed",
        "1",
        "--steps",
        STEPS,
        "--logdir",
        root / "run",
        *sets,
    )
    return root / "run"


@pytest.mark.slow
def test_openloop_report_shows_true_predicted_and_error_frames(trained):
    (report,) = [p for p in media_files(trained / "media") if p.name.startswith("openloop-")]
    frames = iio.imread(report, index=None)
    # At step 48 one env holds 5 windows of T + 1 = 9 steps: 5 sequences of T = 8 frames side by
    # side, each true / pred / error (16 pixels each) stacked, in a 2-pixel border.
    assert frames.shape[1:] == (3 * 16 + 4, 5 * (16 + 4), 3) and 1 < frames.shape[0] <= 8
    first = frames[0]
    assert tuple(first[0, 0]) == (0, 255, 0)  # an observed (context) frame: green border
    assert tuple(frames[-1][0, 0]) == (255, 0, 0)  # an open-loop frame: red border


@pytest.mark.slow
def test_eval_reproduces_the_trainers_evaluation_and_the_export_acts(trained, tmp_path):
    (final,) = [
        r
        for r in map(json.loads, (trained / "eval.jsonl").read_text().splitlines())
        if r["step"] == STEPS
    ]
    result = json.loads(cli("eval", trained, "--video").stdout.strip().splitlines()[-1])
    assert result["step"] == STEPS and result["mode"] == "greedy"
    assert [e["score"] for e in result["episodes"]] == [
        final["score"]
    ]  # same seeds, same keys: same score
    stored = trained / "evaluations" / f"step-{STEPS:012d}-greedy-1ep.json"
    assert json.loads(stored.read_text()) == result
    assert Path(result["video"]).stat().st_size > 0
    # The training records are untouched.
    assert len((trained / "eval.jsonl").read_text().splitlines()) == 1

    out = tmp_path / "policy.npz"
    cli("export", trained, out)
    with np.load(out) as data:
        names = set(data.files)
    assert "meta.json" in names and any(n.startswith("world_model/") for n in names)
    assert any(n.startswith("actor/") for n in names) and not any(
        n.startswith(("critic", "slow")) for n in names
    )

    from dreamerbench.agent import load_policy
    from dreamerbench.suites import get_suite

    policy = load_policy(out)
    suite = get_suite("dmc_vision")
    env = suite.make_env("cartpole_balance", 7, suite.resolve_protocol(policy.config.env))
    obs = env.reset()
    first, state = policy.act(obs)
    again, _ = policy.act(obs)
    assert first.shape == (1,) and first.dtype == np.float32 and np.all(np.abs(first) <= 1)
    np.testing.assert_array_equal(first, again)  # greedy from the same state: the same action
    for _ in range(3):
        obs = env.step(first)
        first, state = policy.act(obs, state)
    env.close()


def test_eval_and_export_refuse_a_directory_without_a_run(tmp_path, capsys):
    from dreamerbench.experiments.cli import main

    for argv in (["eval", str(tmp_path)], ["export", str(tmp_path), str(tmp_path / "p.npz")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and f"LOGDIR='{tmp_path}' is not allowed; allowed: a run directory" in err
        )
    assert not (tmp_path / "p.npz").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tmp_path), "--mode", "max"])
    assert exit_info.value.code == 2
    assert "--mode='max' is not allowed; allowed: greedy, sample" in capsys.readouterr().err


def _saved_logdir(root: Path, saves: int = 2) -> Path:
    """A logdir with a valid config and `saves` checkpoints (steps 10, 20, ...) of stand-in state
    bytes (no training)."""
    from test_rundir import config

    from dreamerbench.agent.rundir import RunDir
    from dreamerbench.core import checkpoint

    logdir = root / "run"
    logdir.mkdir()
    RunDir(logdir).write_config(config(100))
    for i in range(saves):
        checkpoint.save(
            logdir / "checkpoint",
            10 * (i + 1),
            f"state {i}".encode(),
            {"x": np.zeros(2)},
            {"pack": [0]},
        )
    return logdir


def test_eval_and_export_refuse_a_corrupt_config_in_one_line_as_train_does(tmp_path, capsys):
    """New-user test, fault 1: a corrupt LOGDIR/config.yaml gave a yaml.parser.ParserError
    traceback."""
    from dreamerbench.experiments.cli import main

    logdir = _saved_logdir(tmp_path)
    (logdir / "config.yaml").write_text("agent: {batch_size: [\n")
    for argv in (["eval", str(logdir)], ["export", str(logdir), str(tmp_path / "p.npz")]):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"dreamerbench {argv[0]}: error: {logdir / 'config.yaml'} is not a readable config "
            "(while parsing a flow node); restore it, or use a new logdir\n"
        )
    assert not (tmp_path / "p.npz").exists()


def test_export_refuses_a_directory_or_a_file_in_the_way_before_anything_else(tmp_path, capsys):
    """New-user test, fault 2: OUT a directory gave IsADirectoryError and left a temporary file;
    a file as OUT's parent gave FileExistsError. Both are refused before the run is read."""
    from dreamerbench.experiments.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    allowed = "a new or existing file path (not a directory, and under no existing file)"
    cases = {
        tmp_path: "it is a directory",
        blocker / "p.npz": f"{blocker} is a file",
        blocker / "sub" / "p.npz": f"{blocker} is a file",
    }
    for out, why in cases.items():
        before = sorted(tmp_path.rglob("*"))
        assert (
            main(["export", str(tmp_path / "no-run"), str(out)]) == 2
        )  # OUT is checked before LOGDIR
        assert capsys.readouterr().err == (
            f"dreamerbench export: error: OUT='{out}' is not allowed; allowed: {allowed}; {why}\n"
        )
        assert sorted(tmp_path.rglob("*")) == before


def test_eval_and_export_warn_as_the_trainer_does_when_falling_back_to_an_older_checkpoint(
    tmp_path, capsys
):
    """New-user test, fault 4: a damaged newest checkpoint fell back silently (train warns)."""
    from dreamerbench.agent.policy import newest_state
    from dreamerbench.core import checkpoint

    logdir = _saved_logdir(tmp_path)
    older, newer = checkpoint.complete(logdir / "checkpoint")
    state = newer.path / "state.msgpack"
    state.write_bytes(bytes([state.read_bytes()[0] ^ 1]) + state.read_bytes()[1:])
    _, ckpt, data, step = newest_state(logdir)
    assert (ckpt, data, step) == (older, b"state 0", 10)
    assert capsys.readouterr().err == (
        f"warning: {state} is damaged: its SHA-256 differs from the manifest's; "
        "trying an older checkpoint\n"
    )


@pytest.mark.parametrize(
    "junk", [b"\xff\xfejunk", b"[]", b'{"state.msgpack": 1}', b'{"state.msgpack": {"bytes": "x"}}']
)
def test_a_checkpoint_with_a_junk_manifest_is_named_not_called_missing(tmp_path, capsys, junk):
    """New-user test, fault 4: the only checkpoint with a junk manifest was reported as no
    checkpoint."""
    from dreamerbench.core import checkpoint
    from dreamerbench.experiments.cli import main

    logdir = _saved_logdir(tmp_path, saves=1)
    (only,) = checkpoint.complete(logdir / "checkpoint")
    (only.path / "manifest.json").write_bytes(junk)
    assert main(["eval", str(logdir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: {only.path / 'manifest.json'} is damaged (")
    assert err[1].startswith(
        f"dreamerbench eval: error: LOGDIR='{logdir}' is not allowed; allowed: a run directory "
        f"with a readable checkpoint ({only.path / 'manifest.json'} is damaged ("
    )
    assert len(err) == 2


@pytest.mark.slow
def test_export_write_failures_and_bad_policy_files_are_one_line(
    trained, tmp_path, capsys, monkeypatch
):
    """New-user test, faults 2 and 3: a failed write named the temporary path (exit 2); a truncated
    or empty policy file raised BadZipFile or EOFError; a wrongly shaped observation reached the
    network. tools.fault_round (export:out-proc): an OUT under /proc is bad input, refused
    before the run is read (exit 2), as table's and plot's --out."""
    import errno
    import os

    from dreamerbench.agent import load_policy
    from dreamerbench.experiments.cli import main

    assert main(["export", str(trained), "/proc/p.npz"]) == 2
    assert capsys.readouterr().err == (
        "dreamerbench export: error: OUT='/proc/p.npz' is not allowed; allowed: a new or "
        "existing file path (not a directory, and under no existing file); /proc is on the "
        "kernel's proc file system, not a disk\n"
    )

    # A write that fails all the same (here: an I/O error at the rename) is a storage fault
    # (exit 1) named by OUT, not by its temporary file, which goes.
    def broken(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    failing = tmp_path.parent / f"{tmp_path.name}-failing"
    failing.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", broken)
        assert main(["export", str(trained), str(failing / "p.npz")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"dreamerbench export: error: cannot write {failing / 'p.npz'} (Input/output error); "
        "choose another OUT\n"
    ), err
    assert ".tmp" not in err and not list(failing.iterdir())

    out = tmp_path / "policy.npz"
    assert main(["export", str(trained), str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.npz"]  # no temporary file left
    policy = load_policy(out)
    for name, data in {"truncated": out.read_bytes()[:1000], "empty": b""}.items():
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(data)
        with pytest.raises(
            ValueError,
            match=rf"^policy='{bad}' is not allowed; allowed: a policy file written by "
            r"`dreamerbench export` \([^\n]*\)$",
        ):
            load_policy(bad)

    obs = {key: np.zeros(space.shape, space.dtype) for key, space in policy.obs_space.items()}
    image_shape = tuple(policy.obs_space["image"].shape)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"obs['image'] has shape (1, {', '.join(map(str, image_shape))}); "
            f"the policy needs shape {image_shape}"
        ),
    ):
        policy.act({**obs, "image": obs["image"][None]})
    action, _ = policy.act(obs)
    assert action.shape == (1,)
