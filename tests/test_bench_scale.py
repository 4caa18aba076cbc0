"""The paper-scale replay benchmark (bench/scale.py) at a toy size: what a save writes is flat."""

import json

from bench.scale import extrapolate, main, step_bytes


def test_a_save_writes_at_most_one_chunk_however_large_the_replay(tmp_path, capsys):
    main(["--steps", "2400", "--save-every", "400", "--seconds", "0.05", "--dir", str(tmp_path)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    saves = [r for r in records if r["kind"] == "save"]
    assert len(saves) == 12 and {r["storage"] for r in saves} == {"memory", "disk"}
    chunk = 1024 * step_bytes()
    for record in saves:
        assert record["save_bytes"] < chunk + 10_000, record  # the tail, never the replay
        assert record["save_alloc_bytes"] < 2 * chunk, record
    assert {r["cache"] for r in records if r["kind"] == "sample"} == {"ram", "cold", "warm"}
    assert not list(tmp_path.iterdir())  # the benchmark removes what it wrote


def test_extrapolation_counts_each_step_once_where_whole_replay_saves_grew_quadratically():
    crafter = extrapolate("crafter", {"ram": 100.0}, batch=16, length=65)
    b = crafter["step_bytes"]
    assert crafter["budget"] == 1_000_000 and crafter["saves"] == 100
    assert crafter["run_bytes_before"] == sum(i * 10_000 for i in range(1, 101)) * b  # ~1.45 TB
    assert crafter["run_bytes"] == 1_000_000 * b + 100 * 1024 * b // 2
    assert crafter["sample_hours"] == {"ram": round(1_000_000 * 512 / 1024 / 100 / 3600, 2)}
