"""`dreamerbench eval` and `export` on a trained DreamerV3 debug checkpoint, and the open-loop
report (issue 14). One tiny dmc_vision run (16x16 images, two CNN stages) trains once for
the module; its compiles are cached for the eval process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from agent.rundir import media_files

STEPS = 64
TINY = [
    "agent.batch_size=2", "agent.batch_length=8", "agent.imag_length=3", "agent.train_ratio=16",
    "agent.cnn_mults=[2,2]", "run.envs=1", "run.parallel_envs=false", "run.train_start=32",
    f"run.save_every={STEPS}", "run.log_every=0", "replay.capacity=5000", "env.action_repeat=8",
    "env.image_size=16", f"run.eval_every={STEPS}", "run.video_every=48",
]


def cli(*args, timeout=900):
    result = subprocess.run([sys.executable, "-m", "experiments.cli", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    sets = [arg for item in (*TINY, f"run.compile_cache={root / 'cache'}") for arg in ("--set", item)]
    cli("train", "--suite", "dmc_vision", "--task", "cartpole_balance", "--size", "debug", "--seed", "1",
        "--steps", STEPS, "--logdir", root / "run", *sets)
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
    (final,) = [r for r in map(json.loads, (trained / "eval.jsonl").read_text().splitlines()) if r["step"] == STEPS]
    result = json.loads(cli("eval", trained, "--video").stdout.strip().splitlines()[-1])
    assert result["step"] == STEPS and result["mode"] == "greedy"
    assert [e["score"] for e in result["episodes"]] == [final["score"]]  # same seeds, same keys: same score
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
    assert any(n.startswith("actor/") for n in names) and not any(n.startswith(("critic", "slow")) for n in names)

    from agent import load_policy
    from suites import get_suite

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
    from experiments.cli import main

    for argv in (["eval", str(tmp_path)], ["export", str(tmp_path), str(tmp_path / "p.npz")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"LOGDIR='{tmp_path}' is not allowed; allowed: a run directory" in err
    assert not (tmp_path / "p.npz").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tmp_path), "--mode", "max"])
    assert exit_info.value.code == 2
    assert "--mode='max' is not allowed; allowed: greedy, sample" in capsys.readouterr().err
