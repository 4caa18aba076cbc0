"""Issue "A lab's first week", item 8: what ``dreamerbench train`` and ``export`` write gets the
mode the umask gives (umask 022: files 0644, folders 0755; 002: 0664 and 0775), as ``open`` and
``mkdir`` give it, so a lab's shared file system lets the group read results. Before, the
atomically written files (config, summary, exports, evaluations) were 0600 and checkpoint
folders 0700 (``tempfile``)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from test_rundir import EPISODE, dreamerbench_train
from test_train_command import train_command

from dreamerbench.core import checkpoint
from dreamerbench.core.files import current_umask


@contextlib.contextmanager
def umask(mask: int):
    """This process (and the commands it starts) with umask `mask`."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    """Every file and folder under `root` (itself included) whose mode is not the one `mask`
    gives: relative path -> its mode, in octal."""
    wrong = {}
    for path in (root, *root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o777 if path.is_dir() else 0o666) & ~mask:
            wrong[str(path.relative_to(root.parent))] = oct(mode)
    return wrong


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_train_writes_every_file_and_folder_with_the_mode_the_umask_gives(tmp_path, mask):
    """``dreamerbench train`` (the stub agent standing in for DreamerV3), one checkpoint per
    episode, so that config, checkpoints, records and summary are all there."""
    logdir = tmp_path / "run"
    with umask(mask):
        assert current_umask() == mask
        code, err, summaries = dreamerbench_train(logdir, 2 * EPISODE)
    assert code == 0 and summaries[0]["finished"], err
    assert checkpoint.complete(logdir / "checkpoint")
    assert {"config.yaml", "summary.json"} <= {p.name for p in logdir.iterdir()}
    assert wrong_modes(logdir, mask) == {}


@pytest.mark.slow
def test_a_real_train_and_its_export_get_the_mode_the_umask_gives(tmp_path):
    """A few real DreamerV3 steps under umask 002 (group-writable), then ``export`` under 002 and
    under 022 (the export needs a real agent's state)."""
    logdir, cache = tmp_path / "run", tmp_path / "cache"  # the compile cache is JAX's own
    done = subprocess.run(
        train_command(logdir, cache, steps=EPISODE), capture_output=True, text=True, umask=0o002
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert wrong_modes(logdir, 0o002) == {}
    for mask in (0o002, 0o022):
        out = tmp_path / f"policy-{mask:03o}" / "policy.npz"
        exported = subprocess.run(
            [*train_command(logdir, cache)[:3], "export", str(logdir), str(out)],
            capture_output=True,
            text=True,
            umask=mask,
        )
        assert exported.returncode == 0, exported.stderr[-3000:]
        assert json.loads(exported.stdout)["out"] == str(out)
        assert wrong_modes(out.parent, mask) == {}
