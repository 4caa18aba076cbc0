"""The learning benchmark's curve arithmetic (bench/learn.py)."""

from pathlib import Path

import numpy as np
import pytest

from bench.learn import PROTOCOLS, bin_means, published_bins, train_command

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
