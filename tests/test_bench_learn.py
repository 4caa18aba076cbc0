"""The learning benchmark's curve arithmetic (bench/learn.py)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bench.learn import (
    CHECK,
    PROTOCOLS,
    bin_means,
    published_bins,
    read_jsonl,
    summarise_check,
    train_command,
)

BASELINES = Path(__file__).resolve().parents[2] / "shared" / "baselines" / "dreamerv3"


def test_bin_means_put_each_episode_in_the_bin_that_ends_at_or_after_it():
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    frames = np.array([5.0, 10.0, 10.5, 20.0, 20.0])
    scores = np.array([1.0, 3.0, 10.0, 4.0, 8.0])
    np.testing.assert_allclose(
        bin_means(frames, scores, edges), [2.0, 22 / 3, np.nan]
    )  # (0,10], (10,20], (20,30]


@pytest.mark.skipif(not BASELINES.exists(), reason="needs ../shared/baselines")
def test_published_bins_are_the_per_seed_values_of_the_file():
    pub = published_bins("dmc_proprio", "cartpole_swingup", 30_000, BASELINES)
    assert pub["x_frames"] == [10_000, 20_000, 30_000]
    seeds = np.asarray(pub["seeds"])
    assert seeds.shape == (5, 3)
    # The published seed-0 curve starts 58.2, 213.2, 291.9 (file values, rounded to 0.1).
    np.testing.assert_allclose(seeds[0], [58.2, 213.2, 291.9], atol=0.05)
    np.testing.assert_allclose(pub["mean"], seeds.mean(0))
    np.testing.assert_allclose(pub["min"], seeds.min(0))


def test_cpu_protocol_trains_the_suite_settings_with_train_ratio_128():
    command = train_command(PROTOCOLS["cpu"], "cartpole_swingup", 0, Path("/tmp/x"))
    assert command[command.index("--steps") + 1] == "60000"  # dmc_proprio: action repeat 1
    assert "agent.train_ratio=128" in command and "--seeds-per-process" not in command
    packed = train_command(PROTOCOLS["gpu"], "cartpole_swingup", 0, Path("/tmp/x"))
    assert packed[packed.index("--seeds-per-process") + 1] == "4"


def _catch_episodes(scores: list[float]) -> list[dict]:
    """Catch-like episode records: 10 agent steps each, bsuite's cumulative regret (1 - return)."""
    regret = np.cumsum([1.0 - s for s in scores])
    return [
        {"index": i, "step": 10 * (i + 1), "score": s, "length": 9, "bsuite_total_regret": r}
        for i, (s, r) in enumerate(zip(scores, regret))
    ]


def test_check_summary_gives_return_by_step_bsuite_scores_and_the_verdict(tmp_path):
    check = dataclasses.replace(CHECK, window=5, bin_steps=50)
    random = [1.0, -1.0, -1.0, -1.0, -1.0] * 2  # mean -0.6: bsuite's catch baseline regret 1.6
    path = tmp_path / "episodes.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _catch_episodes(random + [1.0] * 10)))
    summary = summarise_check(read_jsonl(path), check)
    assert [(r["steps_from"], r["steps_to"], r["episodes"]) for r in summary["table"]] == [
        (0, 50, 5),
        (50, 100, 5),
        (100, 150, 5),
        (150, 200, 5),
    ]
    assert [r["mean_return"] for r in summary["table"]] == [-0.6, -0.6, 1.0, 1.0]
    assert summary["first"]["mean_return"] == -0.6 and summary["first"]["bsuite_score"] == 0.0
    # The last window's regret counts from its start: 0 regret there is bsuite's score 1.
    assert summary["last"]["mean_return"] == 1.0 and summary["last"]["bsuite_score"] == 1.0
    assert summary["last"]["steps"] == [160, 200]
    # Whole run: regret 16 over 20 episodes, (1.6 - 0.8) / 1.6.
    assert summary["bsuite_score"] == 0.5
    assert summary["gain"] == 1.6 and summary["learned"] is True

    # A resume restarts bsuite's regret counter; the summary sums it across the restart.
    resumed = _catch_episodes(random) + _catch_episodes(random + [1.0] * 10)[10:]
    for record, before in zip(resumed[10:], _catch_episodes(random)[-1:] * 10):
        record["bsuite_total_regret"] -= before["bsuite_total_regret"]
    assert resumed[10]["bsuite_total_regret"] < resumed[9]["bsuite_total_regret"]
    assert summarise_check(resumed, check) == summary

    flat = summarise_check(_catch_episodes(random * 2), check)
    assert flat["gain"] == 0.0 and flat["learned"] is False and flat["bsuite_score"] == 0.0
    with pytest.raises(ValueError, match="2 x window = 10"):
        summarise_check(_catch_episodes(random[:9]), check)


def test_check_trains_catch_with_the_stated_settings():
    protocol = CHECK.protocol
    command = train_command(protocol, protocol.tasks[0], protocol.seeds[0], Path("/tmp/x"))
    assert command[command.index("--task") + 1] == "catch_0"
    assert command[command.index("--size") + 1] == "debug"
    assert {"agent.train_ratio=512", "agent.batch_length=16", "run.envs=1"} <= set(command)


# --- bench.learn side: both loggers' records on one update axis -------------------------------

# Records as the two loggers write them (real runs at bench.side.CATCH's settings, keys trimmed):
# ours stamps a train record with the update count at its window's end, the reference with the
# agent step, its window's replay/updates (B x T = 256 per update) and the optimiser counter's
# mean over the window (train/opt/updates).
OURS_RECORDS = [
    {"kind": "fps", "step": 272},
    {"kind": "train", "step": 272, "updates": 2, "imag/entropy": 1.0986, "loss/dyn": 6.0},
    {"kind": "fps", "step": 272},
    {"kind": "train", "step": 273, "updates": 4, "imag/entropy": 1.0984, "loss/dyn": 5.0},
    {"kind": "train", "step": 283, "updates": 24, "imag/entropy": 1.0, "loss/dyn": 4.0},
]
REFERENCE_RECORDS = [
    {"step": 270, "episode/score": -1.0, "replay/updates": 0.0},
    {
        "step": 280,
        "train/ent/action": 1.0986,
        "train/loss/dyn": 6.0,
        "train/opt/updates": 8.5,
        "replay/updates": 4096.0,
    },
    {
        "step": 290,
        "train/ent/action": 1.0,
        "train/loss/dyn": 5.0,
        "train/opt/updates": 26.5,
        "replay/updates": 5120.0,
    },
]


def test_side_places_every_record_at_its_windows_middle_in_updates():
    from bench.side import ours_windows, reference_windows

    ours = ours_windows(OURS_RECORDS)
    np.testing.assert_array_equal(ours.hi, [2, 4, 24])
    np.testing.assert_array_equal(ours.mid, [1.5, 3.5, 14.5])
    np.testing.assert_array_equal(ours.values["loss_dyn"], [6.0, 5.0, 4.0])
    reference = reference_windows(REFERENCE_RECORDS, batch_size=16, batch_length=16)
    np.testing.assert_array_equal(reference.hi, [16, 36])
    np.testing.assert_array_equal(reference.step, [280, 290])
    # The reference's own window mean of its optimiser counter is the same middle.
    np.testing.assert_array_equal(
        reference.mid, [r["train/opt/updates"] for r in REFERENCE_RECORDS[1:]]
    )
    np.testing.assert_array_equal(reference.values["actor_entropy"], [1.0986, 1.0])


def test_side_bins_weight_records_by_their_window_length():
    from bench.side import binned, ours_windows, returns_by_update

    ours = ours_windows(OURS_RECORDS)
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    # Windows of 2, 2 and 20 updates with middles 1.5, 3.5, 14.5: (0, 10] holds the first two.
    np.testing.assert_allclose(binned(ours, "loss_dyn", edges), [5.5, 4.0, np.nan])
    steps = np.array([200.0, 273.0, 278.0, 283.0])
    scores = np.array([1.0, -1.0, 1.0, 1.0])
    # At steps 273, 278, 283 the run had done 4, 14 and 24 updates; step 200 came before any.
    np.testing.assert_allclose(returns_by_update(steps, scores, ours, edges), [-1.0, 1.0, 1.0])


def test_side_gives_the_reference_our_debug_widths_and_the_same_schedule():
    from bench.side import CATCH, reference_flags

    flags = reference_flags(CATCH, 3, Path("/tmp/x"))
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["--task"] == "bsuite_catch/0" and pairs["--seed"] == "3"
    assert (pairs["--agent.dyn.rssm.deter"], pairs["--agent.policy.units"]) == ("64", "32")
    assert (pairs["--run.train_ratio"], pairs["--batch_length"], pairs["--run.envs"]) == (
        "512",
        "16",
        "1",
    )
    assert (pairs["--run.steps"], pairs["--jax.compute_dtype"]) == ("772", "float32")


def test_side_skips_finished_runs(tmp_path):
    from bench.side import CATCH, rundir, train_all

    for arm in ("ours", "reference"):
        rundir(tmp_path, arm, 0).mkdir(parents=True)
        (rundir(tmp_path, arm, 0) / "side-done.json").write_text("{}")
    assert train_all(tmp_path, CATCH, ["ours", "reference"], [0], jobs=2) == []


def test_exact_twohot_mean_of_uniform_logits_is_zero_compiled_alone():
    import jax
    import jax.numpy as jnp

    from bench.side_reference import exact_twohot_mean

    for k in (255, 256):  # the reference's odd and even bins: symexp of a half, mirrored
        half = jnp.linspace(-20, 0, (k - 1) // 2 + 1 if k % 2 else k // 2, dtype=jnp.float32)
        half = jnp.sign(half) * (jnp.exp(jnp.abs(half)) - 1)
        bins = jnp.concatenate([half, -half[:-1][::-1]] if k % 2 else [half, -half[::-1]])
        probs = jax.nn.softmax(jnp.zeros((4, k), jnp.float32))
        assert jax.jit(exact_twohot_mean)(probs, bins).tolist() == [0.0] * 4
        other = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(0), (4, k)))
        np.testing.assert_allclose(
            exact_twohot_mean(other, bins), (other * bins).sum(-1), rtol=1e-4
        )


def test_side_counts_a_run_done_only_once_it_reached_the_last_step(tmp_path):
    from bench.side import reached

    (tmp_path / "summary.json").write_text(json.dumps({"steps": 272, "finished": False}))
    assert not reached("ours", tmp_path, 772)  # a SIGINT stops our trainer early, exit 0
    (tmp_path / "summary.json").write_text(json.dumps({"steps": 772, "finished": True}))
    assert reached("ours", tmp_path, 772)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(REFERENCE_RECORDS[-1]) + "\n")
    assert not reached("reference", tmp_path, 772)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 780}) + "\n")
    assert reached("reference", tmp_path, 772)


def test_side_says_where_ours_lies_within_each_reference_arms_seed_range():
    from bench.side import METRICS, compare

    edges = [0.0, 50.0, 100.0]
    arms = {
        "ours": [[1.0, 5.0], [3.0, 7.0]],  # seed mean [2, 6]
        "reference": [[1.5, 1.0], [2.5, 2.0]],  # range [1.5, 2.5], [1, 2]
        "reference-exact": [[0.0, 6.0], [1.0, 6.5]],  # range [0, 1], [6, 6.5]
    }
    result = {
        "edges": edges,
        "return_edges": edges,
        "arms": {
            a: {"seeds": [0, 1], **{n: v for n in (*METRICS, "return")}} for a, v in arms.items()
        },
    }
    row = compare(result)["loss_dyn"]
    assert row["marks"] == [100]
    assert row["ours"] == {"mean": [6.0], "min": [5.0], "max": [7.0]}
    assert row["ours_within_reference"] == {"fraction_of_bins": 0.5, "at_marks": [False]}
    assert row["ours_within_reference-exact"] == {"fraction_of_bins": 0.5, "at_marks": [True]}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "272"], "--steps 272: allowed are integers > run.train_start = 272"),
        (["--jobs", "0"], "--jobs 0: allowed are integers >= 1"),
    ],
)
def test_side_refuses_a_bad_flag_in_one_line_before_creating_anything(
    tmp_path, capsys, flags, message
):
    from bench.learn import main

    with pytest.raises(SystemExit) as exit_info:
        main(["side", "--out", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"bench.learn side: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_side_sums_the_references_per_key_decoder_losses_as_ours_does():
    from bench.side import reference_windows

    record = {
        "step": 2080,
        "replay/updates": 4 * 16 * 64,
        "train/loss/dyn": 2.0,
        "train/loss/rep": 2.0,
        "train/loss/rew": 5.5,
        "train/loss/con": 0.6,
        "train/loss/policy": 0.1,
        "train/loss/value": 1.0,
        "train/loss/repval": 9.0,
        "train/loss/position": 1.25,  # DMC proprio: one decoder loss per observation key
        "train/loss/velocity": 0.5,
    }
    windows = reference_windows([record], batch_size=16, batch_length=64)
    assert windows.hi.tolist() == [4.0]
    assert windows.values["loss_dec"].tolist() == [1.75]
    assert windows.values["loss_rew"].tolist() == [5.5]
