"""A wall clock stepped back mid-run (NTP, a VM resume) leaves durations and record identity
intact: 117 of 159 episodes recorded ``wall_s`` down to -7178.8 s."""

from __future__ import annotations

import json
import time

from test_rundir import EPISODE, train

from dreamerbench.agent.rundir import RunDir


def test_durations_and_time_ms_survive_a_wall_clock_stepped_back(tmp_path, monkeypatch):
    real_time, back_s = time.time, 7200.0
    record_episode = RunDir.record_episode
    stepped = []

    def record_then_step_back(self, record):
        record_episode(self, record)
        stepped.append(True)  # from the first episode on, the wall clock is two hours behind

    monkeypatch.setattr(RunDir, "record_episode", record_then_step_back)
    monkeypatch.setattr(time, "time", lambda: real_time() - (back_s if stepped else 0.0))
    train(tmp_path, 4 * EPISODE)

    episodes = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 4
    walls = [episode["wall_s"] for episode in episodes]
    assert walls == sorted(walls) and walls[0] >= 0, walls
    assert walls[-1] < 600, walls  # seconds of this run, not the clock's step
    for name in ("episodes", "metrics"):
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        times = [json.loads(line)["time_ms"] for line in lines]
        assert len(times) > 1 and all(a < b for a, b in zip(times, times[1:])), (name, times)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    speeds = [m for m in metrics if "env_steps_per_s" in m and m["step"] > EPISODE]
    assert speeds  # measured over the step back
    for speed in speeds:
        assert 0 < speed["env_steps_per_s"] < 1e6 and 0 < speed["updates_per_s"] < 1e6, speed
    (startup,) = [m for m in metrics if "time_to_first_update_s" in m]
    assert 0 <= startup["time_to_first_update_s"] < 600
