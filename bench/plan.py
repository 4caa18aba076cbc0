"""The resource plan (``dreamerbench.experiments.plan``) of one run at every suite's defaults,
with the replay in RAM and on disk (``replay.storage``): one JSON object per suite and storage,
e.g. ``{"suite": "crafter", "storage": "memory", "host_gib": 33.6, ...}``. Needs no GPU (the
plan counts the GPU's train step from shapes) and makes one env per suite (minecraft_diamond
needs MineRL and is left out).

    python -m bench.plan   (from the repository root)
"""

from __future__ import annotations

import json

from dreamerbench.agent.config import resolve_config
from dreamerbench.experiments import plan

TASKS = {
    "atari100k": "pong",
    "atari57": "pong",
    "dmc_vision": "walker_walk",
    "crafter": "reward",
    "dmc_proprio": "walker_walk",
}


def main() -> None:
    on_gpu = True  # the suites' defaults are GPU runs (bfloat16 train step)
    planner = plan.planner(on_gpu)
    for suite, task in TASKS.items():
        for storage in ("memory", "disk"):
            config = resolve_config(suite, task, 0, [f"replay.storage={storage}"])
            run = planner(config, task)
            job = plan.plan_jobs([[(config, task)]], 1, planner, on_gpu)[0]
            gib = lambda n: round(n / plan.GIB, 1)  # noqa: E731
            print(json.dumps({
                "suite": suite, "task": task, "storage": storage, "size": config.agent.size,
                "steps": config.run.steps, "envs": config.run.envs,
                "step_bytes": run.replay.step_bytes, "replay_ram_gib": gib(run.replay.resident),
                "state_x2_gib": gib(2 * run.state), "host_gib": gib(job.host),
                "gpu_gib": gib(run.step), "logdir_disk_gib": gib(run.disk),
            }))  # fmt: skip


if __name__ == "__main__":
    main()
