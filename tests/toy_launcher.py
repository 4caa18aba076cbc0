"""A toy launcher for tests/test_launchers.py, written as docs/launchers.md says a new launcher
is: one class on the interface (``dreamerbench.experiments.launchers.base.Launcher``) and,
by the test, one line in the registry. Each job is a subprocess of this machine running the
job module, all started at once; liveness is whether that process still exists."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dreamerbench.experiments.job import RunTask, SweepJob
from dreamerbench.experiments.launchers.base import Context, Launcher, Submitted

JOB_TAG = "toy_job_id"
"""Tag naming the process id of a run's job (``dreamerbench.toy_job_id``)."""


class ToyLauncher(Launcher):
    name = "toy"
    trains_here = True  # submit returns when the jobs ended

    def describe(self, packs: int, parallel: int) -> str:
        return f"toy, {packs} subprocess(es) at once"

    def submit(self, packs: Sequence[Sequence[RunTask]], context: Context) -> list[Submitted]:
        context.folder.mkdir(parents=True, exist_ok=True)
        started = []
        for index, pack in enumerate(packs):
            job_file = context.folder / f"job{index}.json"
            SweepJob([list(pack)], context.tracking_uri, context.experiment_id).save(job_file)
            log = context.folder / f"job{index}.log"
            command = [sys.executable, "-m", "dreamerbench.experiments.job", job_file, log]
            with open(log, "ab") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            for task in pack:
                context.tracker.tag(task.run_id, {JOB_TAG: process.pid})
            started.append((process, pack))
        return [
            Submitted(str(process.pid), tuple(pack), process.wait()) for process, pack in started
        ]

    @classmethod
    def is_alive(cls, status: str, tags: Mapping[str, str], snapshot: Any) -> bool | None:
        pid = tags.get("dreamerbench." + JOB_TAG)
        return bool(pid) and Path(f"/proc/{pid}").exists()

    @classmethod
    def job_tags(cls) -> dict[str, str]:
        return {}  # the job's process id is tagged by submit
