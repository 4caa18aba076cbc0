"""Bad input through every entry point: exit 2, one line naming the field, the value and
what is allowed, and nothing created (issue 13).

Most cases call the CLI's ``main`` in this process (fast); a few run it as a real
subprocess, as a user would. ``CASES`` is the table.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
from test_docs_hygiene import default_sigint

from dreamerbench.agent import config as config_lib
from dreamerbench.agent.config import Config, apply_overrides, flatten, from_dict, to_dict, validate
from dreamerbench.core import reader
from dreamerbench.experiments import profiles
from dreamerbench.experiments.cli import main
from dreamerbench.experiments.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent

TRAIN = ["train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug"]

# Line 1 onwards of every spec case; the case's own lines follow (line 6 is the first).
SPEC_HEAD = """\
name: bad
suite: dmc_proprio
tasks: [cartpole_balance]
seeds: 1
steps: 100
"""
SPEC_TINY = {
    "agent.size": "debug",
    "agent.batch_size": 2,
    "agent.batch_length": 8,
    "run.progress": False,
}

ALIAS_BOMB = (
    SPEC_HEAD
    + "overrides:\n  env: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"  l{i}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
)

# (entry point, what is given, expected text: field=value ... allowed ...)
# "set": train --set VALUE; "flag": train FLAGS; "spec": sweep --dry-run on SPEC_HEAD + text;
# "profile": sweep --dry-run --executor slurm --profile FILE with the text; "sweep": sweep
# flags on a good spec; "table"/"plot": analysis flags.
CASES = [
    # --- train --set: every case the issue names, and each rule kind
    (
        "set",
        "agent.train_ratio=.inf",
        "agent.train_ratio=inf is not allowed; allowed: a finite number > 0",
    ),
    (
        "set",
        "agent.train_ratio=0",
        "agent.train_ratio=0 is not allowed; allowed: a finite number > 0",
    ),
    ("set", "agent.opt.lr=.nan", "agent.opt.lr=nan is not allowed; allowed: a finite number > 0"),
    ("set", "agent.opt.lr=.inf", "agent.opt.lr=inf is not allowed; allowed: a finite number > 0"),
    ("set", "agent.opt.lr=nan", "agent.opt.lr='nan' is not allowed; allowed: a finite number > 0"),
    (
        "set",
        "agent.opt.lr=-1e-4",
        "agent.opt.lr=-0.0001 is not allowed; allowed: a finite number > 0",
    ),
    ("set", "env.action_repeat=0", "env.action_repeat=0 is not allowed; allowed: an integer >= 1"),
    ("set", "run.save_every=0", "run.save_every=0 is not allowed; allowed: an integer >= 1"),
    ("set", "run.save_every=-5", "run.save_every=-5 is not allowed; allowed: an integer >= 1"),
    (
        "set",
        "run.train_start=-1",
        "run.train_start=-1 is not allowed; allowed: an integer >= 0, or null",
    ),
    ("set", "run.log_every=-1", "run.log_every=-1 is not allowed; allowed: a finite number >= 0"),
    (
        "set",
        "run.log_every=.inf",
        "run.log_every=inf is not allowed; allowed: a finite number >= 0",
    ),
    ("set", "run.progress=yes", "run.progress='yes' is not allowed; allowed: true or false"),
    ("set", "run.steps=1:30", "run.steps='1:30' is not allowed; allowed: an integer >= 1"),
    ("set", "run.envs=1e30", "run.envs=1e+30 is not allowed; allowed: an integer in [1, 1000]"),
    # --- upper bounds on sizes (issue "Nothing lost", 4): a typo is refused, not run out of memory
    (
        "set",
        "run.envs=1001",
        "run.envs=1001 is not allowed; allowed: an integer in [1, 1000] (one process steps them",
    ),
    (
        "set",
        "agent.batch_size=100000",
        "agent.batch_size=100000 is not allowed; allowed: an integer in [1, 1024]",
    ),
    (
        "set",
        "agent.batch_length=5000",
        "agent.batch_length=5000 is not allowed; allowed: an integer in [2, 1024]",
    ),
    (
        "set",
        "agent.stoch=100000",
        "agent.stoch=100000 is not allowed; allowed: an integer in [1, 1024]",
    ),
    (
        "set",
        "agent.imag_length=5000",
        "agent.imag_length=5000 is not allowed; allowed: an integer in [1, 1024]",
    ),
    (
        "set",
        "agent.mlp_layers=1000",
        "agent.mlp_layers=1000 is not allowed; allowed: an integer in [1, 32]",
    ),
    (
        "set",
        "agent.decoder_blocks=4096",
        "agent.decoder_blocks=4096 is not allowed; allowed: an integer in [1, 1024]",
    ),
    (
        "set",
        "agent.bins=100000",
        "agent.bins=100000 is not allowed; allowed: an integer in [2, 4096]",
    ),
    (
        "set",
        "agent.cnn_kernel=999",
        "agent.cnn_kernel=999 is not allowed; allowed: an integer in [1, 64]",
    ),
    (
        "set",
        "agent.cnn_mults=[2, 3, 1000]",
        "agent.cnn_mults=[2, 3, 1000] is not allowed; allowed: a list of 1 to 8 items, each an "
        "integer in [1, 64]",
    ),
    ("set", "agent.unimix=1", "agent.unimix=1 is not allowed; allowed: a finite number in [0, 1)"),
    ("set", "agent.lam=1.5", "agent.lam=1.5 is not allowed; allowed: a finite number in [0, 1]"),
    (
        "set",
        "agent.cnn_mults=[]",
        "agent.cnn_mults=[] is not allowed; allowed: a list of 1 to 8 items, each an integer in "
        "[1, 64]",
    ),
    (
        "set",
        "agent.batch_length=1",
        "agent.batch_length=1 is not allowed; allowed: an integer in [2, 1024]",
    ),
    (
        "set",
        "agent.compute_dtype=float16",
        "agent.compute_dtype='float16' is not allowed; allowed: auto, float32, bfloat16",
    ),
    (
        "set",
        "agent.blocks=3",
        "agent.blocks=3 is not allowed; allowed: a divisor of the size's deter=64",
    ),
    (
        "set",
        "agent.min_std=2",
        "agent.min_std=2.0 is not allowed; allowed: a finite number > 0 and <= agent.max_std=1.0",
    ),
    (
        "set",
        "replay.capacity=8",
        "replay.capacity=8 is not allowed; allowed: an integer >= agent.batch_length + 1 = 65",
    ),
    ("set", "seed=-1", "seed=-1 is not allowed; allowed: an integer in [0, 2147483647]"),
    ("set", "agent.size=1m", "agent.size is given twice (agent.size='debug' and agent.size='1m')"),
    (
        "set",
        "env.frame_skip=2",
        "env.frame_skip is not a protocol field of suite 'dmc_proprio'; allowed: action_repeat",
    ),
    (
        "set",
        "agent.train_rate=64",
        "unknown field 'agent.train_rate'; allowed fields at agent: size, stoch",
    ),
    (
        "set",
        "run.outputs=[tb]",
        "run.outputs=['tb'] is not allowed; allowed: a list, each tensorboard, wandb",
    ),
    ("set", "run.eval_mode=max", "run.eval_mode='max' is not allowed; allowed: greedy, sample"),
    (
        "set",
        "run.eval_episodes=0",
        "run.eval_episodes=0 is not allowed; allowed: an integer in [1, 100000]",
    ),
    (
        "set",
        "run.eval_episodes=1000000",
        "run.eval_episodes=1000000 is not allowed; allowed: an integer in [1, 100000]",
    ),
    (
        "set",
        "replay.capacity=1e15",
        "replay.capacity=1000000000000000.0 is not allowed; allowed: an integer in [1, 1000000000]",
    ),
    ("set", "run.video_every=-1", "run.video_every=-1 is not allowed; allowed: an integer >= 0"),
    # --- train flags
    (
        "flag",
        ["--output", "tensorboard,mlflow"],
        "--output='tensorboard,mlflow' is not allowed; allowed: tensorboard, wandb, or both "
        "comma-separated",
    ),
    ("flag", ["--seed", "-1"], "--seed=-1 is not allowed; allowed: an integer in [0, 2147483647]"),
    (
        "flag",
        ["--seed", "99999999999999999999"],
        "--seed=99999999999999999999 is not allowed; allowed: an integer in [0, 2147483647]",
    ),
    (
        "flag",
        ["--seed", "one"],
        "--seed='one' is not allowed; allowed: an integer in [0, 2147483647]",
    ),
    ("flag", ["--steps", "0"], "--steps=0 is not allowed; allowed: an integer >= 1"),
    ("flag", ["--steps", "-3"], "--steps=-3 is not allowed; allowed: an integer >= 1"),
    (
        "flag",
        ["--seeds-per-process", "0"],
        "--seeds-per-process=0 is not allowed; allowed: an integer in [1, 256] "
        "(one vmapped train step trains them)",
    ),
    (
        "flag",
        ["--seeds-per-process", "100000"],
        "--seeds-per-process=100000 is not allowed; allowed: an integer in [1, 256] "
        "(one vmapped train step trains them)",
    ),
    (
        "flag",
        ["--seed", "2147483647", "--seeds-per-process", "2"],
        "--seeds-per-process=2 is not allowed; allowed: an integer in [1, 1] from "
        "--seed=2147483647",
    ),
    ("flag", ["--size", "huge"], "--size='huge' is not allowed; allowed: debug, 1m, 12m, 25m"),
    (
        "flag",
        ["--logdir", "{file}"],
        "--logdir='{file}' is not allowed; allowed: a directory, new or existing ({file} is a "
        "file)",
    ),
    (
        "flag",
        ["--logdir", "{file}/run"],
        "--logdir='{file}/run' is not allowed; allowed: a directory, new or existing ({file}/run "
        "lies under the file {file})",
    ),
    # An empty --logdir trained into the current folder; a long name and /sys were tracebacks.
    (
        "flag",
        ["--logdir", ""],
        "--logdir='' is not allowed; allowed: a directory, new or existing ('' names no directory",
    ),
    (
        "flag",
        ["--logdir", "{long}"],
        "--logdir='{long}' is not allowed; allowed: a directory, new or existing (a name in it has "
        "300 bytes; at most 255 allowed)",
    ),
    (
        "flag",
        ["--logdir", "/sys/dreamerbench-run"],
        "--logdir='/sys/dreamerbench-run' is not allowed; allowed: a directory, new or existing "
        "(/sys is on the kernel's sysfs file system, not a disk)",
    ),
    # --- sweep specs (sweep --dry-run): the line is the case's first line, 6, unless noted
    (
        "spec",
        "overrides:\n  agent.train_ratio: .inf\n",
        "{spec}:7: agent.train_ratio=inf is not allowed; allowed: a finite number > 0",
    ),
    (
        "spec",
        "overrides:\n  agent.opt.lr: .nan\n",
        "{spec}:7: agent.opt.lr=nan is not allowed; allowed: a finite number > 0",
    ),
    (
        "spec",
        "overrides:\n  env.action_repeat: 0\n",
        "{spec}:7: run cartpole_balance/seed0: env.action_repeat=0 is not allowed; allowed: an "
        "integer >= 1",
    ),
    (
        "spec",
        "overrides:\n  run.save_every: 0\n",
        "{spec}:7: run.save_every=0 is not allowed; allowed: an integer >= 1",
    ),
    (
        "spec",
        "overrides:\n  run.train_start: -1\n",
        "{spec}:7: run.train_start=-1 is not allowed; allowed: an integer >= 0, or null",
    ),
    (
        "spec",
        "overrides:\n  run.log_every: -1\n",
        "{spec}:7: run.log_every=-1 is not allowed; allowed: a finite number >= 0",
    ),
    (
        "spec",
        "overrides:\n  replay.capacity: 8\n",
        "{spec}:7: run cartpole_balance/seed0: replay.capacity=8 is not allowed; allowed: an "
        "integer >= agent.batch_length + 1",
    ),
    (
        "spec",
        "overrides:\n  run.progress: yes\n",
        "{spec}:7: run.progress='yes' is not allowed; allowed: true or false",
    ),
    (
        "spec",
        "overrides:\n  agent:\n    size: debug\n  agent.size: 1m\n",
        "{spec}:9: overrides.agent.size is given twice (once nested, once as a dotted key)",
    ),
    (
        "spec",
        "overrides:\n  seed: 3\n",
        "{spec}:7: overrides.seed is not allowed; allowed: the spec's own field 'seeds'",
    ),
    (
        "spec",
        "grid:\n  agent.opt.lr: [1.0e-4, .nan]\n",
        "{spec}:7: agent.opt.lr=nan is not allowed; allowed: a finite number > 0",
    ),
    (
        "spec",
        "grid:\n  env.action_repeat: [1, 0]\n",
        "{spec}:7: run cartpole_balance/seed0: env.action_repeat=0 is not allowed",
    ),
    (
        "spec",
        "grid:\n  agent.lam: 0.9\n",
        "{spec}:7: grid.agent.lam=0.9 is not allowed; allowed: a non-empty list of values",
    ),
    (
        "spec",
        "executor: cloud\n",
        "{spec}:6: executor='cloud' is not allowed; allowed: local, slurm",
    ),
    ("spec", "parallel: 0\n", "{spec}:6: parallel=0 is not allowed; allowed: an integer >= 1"),
    ("spec", "description: [a]\n", "{spec}:6: description=['a'] is not allowed; allowed: a string"),
    ("spec", "name: b\n", "{spec}:6: name is given twice"),
    ("spec", ALIAS_BOMB[len(SPEC_HEAD) :], "{spec}:8: *a is a YAML alias; allowed: plain values"),
    # Tags on every kind of node (a tagged list was a traceback; a tagged mapping passed).
    (
        "spec",
        "overrides:\n  agent.cnn_mults: !!set [2, 3]\n",
        "{spec}:7: overrides.agent.cnn_mults: the YAML tag !!set is not allowed; allowed: plain "
        "values",
    ),
    (
        "spec",
        "overrides: !custom\n  run.envs: 2\n",
        "{spec}:6: overrides: the YAML tag !custom is not allowed; allowed: plain values",
    ),
    (
        "spec",
        "parallel: !!int 2\n",
        "{spec}:6: parallel: the YAML tag !!int is not allowed; allowed: plain values",
    ),
    (
        "spec",
        "grid:\n  run.envs: [1, !!python/tuple [2]]\n",
        "{spec}:7: grid.run.envs[1]: the YAML tag !!python/tuple is not allowed; allowed: ",
    ),
    (
        "profile",
        "setup: !!omap [a: b]\n",
        "{profile}:1: setup: the YAML tag !!omap is not allowed; allowed: plain values",
    ),
    (
        "spec",
        "grid:\n  env.action_repeat: " + "[" * 31 + "1" + "]" * 31 + "\n",
        "{spec}:7: grid.env.action_repeat" + "[0]" * 30 + ": lists and mappings nested 33 deep "
        "are not allowed; allowed: at most 32 levels",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("seeds: 1", "seeds: 10000000"),
        "{spec}:4: seeds=10000000 is not allowed; allowed: an integer in [1, 10000], or a list",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("seeds: 1", "seeds: [1, 1]"),
        "{spec}:4: seeds=[1, 1] is not allowed; allowed: ",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("seeds: 1", "seeds: [-1]"),
        "{spec}:4: seeds=[-1] is not allowed; allowed: ",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("dmc_proprio", "gym").replace("[cartpole_balance]", "[Blackjack-v1]"),
        "{spec}:3: tasks[0]: task='Blackjack-v1': observation space Tuple(Discrete(32), "
        "Discrete(11), Discrete(2)) is not supported",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("steps: 100", "steps: 0"),
        "{spec}:5: steps=0 is not allowed; allowed: an integer >= 1",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("steps: 100", "steps: 1:30"),
        "{spec}:5: steps='1:30' is not allowed; allowed: an integer >= 1",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("[cartpole_balance]", "[cartpole_balance, cartpole_balance]"),
        "{spec}:3: tasks=['cartpole_balance', 'cartpole_balance'] is not allowed; allowed: 'all' "
        "or a list of distinct task names",
    ),
    (
        "spec_whole",
        SPEC_HEAD.replace("[cartpole_balance]", "all").replace("seeds: 1", "seeds: 600"),
        "{spec}:4: this sweep has 10,800 runs (18 tasks x 1 grid points x 600 seeds); allowed: at "
        "most 10,000 runs per sweep",
    ),
    # --- Slurm profiles (sweep --dry-run --executor slurm --profile FILE)
    (
        "profile",
        "timeout_min: 10\n",
        "{profile}:1: timeout_min=10 is not allowed; allowed: an integer > 10 (submitit",
    ),
    (
        "profile",
        "mem_gb: .nan\n",
        "{profile}:1: mem_gb=nan is not allowed; allowed: a finite number > 0",
    ),
    (
        "profile",
        "cpus_per_task: 0\n",
        "{profile}:1: cpus_per_task=0 is not allowed; allowed: an integer >= 1",
    ),
    (
        "profile",
        "gpus_per_node: -1\n",
        "{profile}:1: gpus_per_node=-1 is not allowed; allowed: an integer >= 0",
    ),
    (
        "profile",
        "runs_per_job: yes\n",
        "{profile}:1: runs_per_job='yes' is not allowed; allowed: an integer >= 1",
    ),
    (
        "profile",
        'partition: "gpu\\nrm -rf /"\n',
        "{profile}:1: partition='gpu\\nrm -rf /' is not allowed; allowed: a string of one line, "
        "or null",
    ),
    ("profile", "gpus: 2\n", "{profile}:1: unknown field 'gpus'; allowed fields: name, partition"),
    ("profile", "mem_gb: 3\nmem_gb: 4\n", "{profile}:2: mem_gb is given twice"),
    (
        "profile",
        "setup: &s [a]\nworkdir: *s\n",
        "{profile}:2: *s is a YAML alias; allowed: plain values",
    ),
    # --- sweep flags (on a good spec)
    ("sweep", ["--parallel", "0"], "--parallel=0 is not allowed; allowed: an integer >= 1"),
    (
        "sweep",
        ["--seeds-per-process", "-2"],
        "--seeds-per-process=-2 is not allowed; allowed: an integer in [1, 256] "
        "(one vmapped train step trains them)",
    ),
    (
        "sweep",
        ["--seeds-per-process", "100000"],
        "--seeds-per-process=100000 is not allowed; allowed: an integer in [1, 256] "
        "(one vmapped train step trains them)",
    ),
    (
        "sweep",
        ["--workdir", ""],
        "--workdir='' is not allowed; allowed: a directory, new or existing ('' names no "
        "directory; give one, e.g. runs/first (. for this folder))",
    ),
    # --- analysis flags
    ("table", ["--reps", "0"], "--reps=0 is not allowed; allowed: an integer in [100, 200000]"),
    (
        "table",
        ["--episodes", "best"],
        "--episodes='best' is not allowed; allowed: suite, train, eval",
    ),
    ("table", ["--seed", "-1"], "--seed=-1 is not allowed; allowed: an integer >= 0"),
    (
        "table",
        ["--budget-frames", ".inf"],
        "--budget-frames=inf is not allowed; allowed: an integer in [1, 1000000000000]",
    ),
    (
        "table",
        ["--window-frames", "-1"],
        "--window-frames=-1 is not allowed; allowed: an integer in [1, 1000000000000]",
    ),
    ("plot", ["--bins", "0"], "--bins=0 is not allowed; allowed: an integer in [1, 1000]"),
    # --- issue 23, item 9: names, folders and stores the file system or MLflow cannot take
    (
        "spec_whole",
        SPEC_HEAD.replace("name: bad", "name: " + "n" * 300),
        "{spec}:1: name='" + "n" * 300 + "' is not allowed; allowed: 1 to 100 letters, digits "
        "and _.- (not first)",
    ),
    (
        "sweep",
        ["--workdir", "{file}"],
        "--workdir='{file}' is not allowed; allowed: a directory, new or existing ({file} is a "
        "file)",
    ),
    (
        "sweep",
        ["--dry-run", "--workdir", "{file}/work"],
        "--workdir='{file}/work' is not allowed; allowed: a directory, new or existing "
        "({file}/work lies under the file {file})",
    ),
    (
        "sweep",
        ["--tracking-uri", "sqlite:///{file}"],
        "tracking URI sqlite:///{file}: {file} is not a sqlite database (it begins b'not a di'); "
        "allowed: a sqlite database file, new or existing (e.g. sqlite:///mlflow.db)",
    ),
    (
        "table",
        ["--cache-dir", "{file}"],
        "--cache-dir='{file}' is not allowed; allowed: a directory, new or existing ({file} is a "
        "file)",
    ),
    (
        "table",
        ["--out", "{long}"],
        "--out='{long}' is not allowed; allowed: a file path, not a folder, whose nearest "
        "existing folder is writable (missing parent folders are created when the result is "
        "written); a name in it has 300 bytes; at most 255 allowed",
    ),
    (
        "plot",
        ["--out", "/sys/curves"],
        "--out='/sys/curves' is not allowed; allowed: a file path, not a folder, whose nearest "
        "existing folder is writable (missing parent folders are created when the result is "
        "written); /sys is on the kernel's sysfs file system, not a disk",
    ),
]


def call(argv, capsys):
    """``dreamerbench ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def argv_of(kind, given, tmp_path):
    """The command line of one case, and the names its expected text may use."""
    names = {
        "file": str(tmp_path / "a_file"),
        "spec": str(tmp_path / "bad.yaml"),
        "profile": str(tmp_path / "p.yaml"),
        "long": str(tmp_path / ("x" * 300)),
    }
    (tmp_path / "a_file").write_text("not a directory\n")
    db, work = tmp_path / "mlflow.db", tmp_path / "work"
    sweep = ["sweep", names["spec"], "--tracking-uri", f"sqlite:///{db}", "--workdir", str(work)]
    good_spec = (
        SPEC_HEAD
        + "overrides:\n"
        + "".join(f"  {k}: {str(v).lower()}\n" for k, v in SPEC_TINY.items())
    )
    if kind == "set":
        return [*TRAIN, "--logdir", str(tmp_path / "run"), "--set", given], names
    if kind == "flag":
        flags = [g.format(**names) for g in given]
        logdir = [] if "--logdir" in flags else ["--logdir", str(tmp_path / "run")]
        return [*TRAIN, *logdir, *flags], names
    if kind in ("spec", "spec_whole"):
        Path(names["spec"]).write_text(given if kind == "spec_whole" else SPEC_HEAD + given)
        return [*sweep, "--dry-run"], names
    if kind == "profile":
        Path(names["spec"]).write_text(good_spec)
        Path(names["profile"]).write_text(given)
        return [*sweep, "--dry-run", "--executor", "slurm", "--profile", names["profile"]], names
    if kind == "sweep":
        Path(names["spec"]).write_text(good_spec)
        return [*sweep, *(g.format(**names) for g in given)], names
    return [
        kind,
        "--suite",
        "atari100k",
        "--baseline",
        "dreamerv3",
        *(["--kind", "curves", "--out", str(tmp_path / "p")] if kind == "plot" else []),
        *(g.format(**names) for g in given),
    ], names


@pytest.mark.parametrize(
    "kind, given, expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_is_one_line_naming_field_value_and_allowed(
    kind, given, expected, tmp_path, capsys
):
    argv, names = argv_of(kind, given, tmp_path)
    if kind == "set" and given == "agent.size=1m":
        argv = [*argv, "--set", "agent.size=1m"]  # --size debug, then the same key again
        argv[argv.index("--set") + 1] = "run.envs=1"
    code, out, err = call(argv, capsys)
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert expected.format(**names) in lines[0], lines[0]
    assert "Traceback" not in err and not out
    # Nothing was created: no logdir, no MLflow store, no sweep work directory.
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "work").exists()


def test_a_long_path_is_named_whole_and_a_pasted_blob_is_cut(tmp_path, capsys):
    """A 250-character logdir (deep temporary folders) is shown whole; only blobs are cut."""
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.parent.mkdir(parents=True)
    deep.write_text("")
    assert len(str(deep)) > 250
    argv = ["train", "--suite", "dmc_proprio", "--task", "cartpole_balance", "--logdir", str(deep)]
    assert main(argv) == 2
    assert f"--logdir='{deep}' is not allowed" in capsys.readouterr().err
    blob = "x" * 5000
    assert (
        main(
            [
                "train",
                "--suite",
                "dmc_proprio",
                "--task",
                "cartpole_balance",
                "--logdir",
                str(tmp_path / "r"),
                "--set",
                f"agent.size={blob}",
            ]
        )
        == 2
    )
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and len(line) < 1000 and "xxx..." in line
    assert not (tmp_path / "r").exists()


def test_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 1000
    start = time.perf_counter()
    with pytest.raises(ValueError, match="is a YAML alias"):
        load_spec(path)
    assert time.perf_counter() - start < 1.0


def test_deep_nesting_is_refused_at_once(tmp_path):
    """5,000 nested lists were a RecursionError after 42.9 s; the nesting is bounded as it is
    read."""
    path = tmp_path / "deep.yaml"
    path.write_text(SPEC_HEAD + "overrides:\n  env: " + "[" * 5000 + "]" * 5000 + "\n")
    start = time.perf_counter()
    with pytest.raises(
        ValueError,
        match=r":7: overrides\.env(\[0\]){30}: lists and mappings nested 33 deep are not",
    ):
        load_spec(path)
    assert time.perf_counter() - start < 15.0  # ~2.5 s, all in ruamel's scanner of flow lists


def test_ctrl_c_before_the_command_takes_it_over_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the first second (imports, parsing) printed a 24-46-line traceback."""
    from dreamerbench.experiments import cli, train_cli

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run", interrupted)  # inside the command, before its handler
    assert call([*TRAIN, "--logdir", str(tmp_path / "run")], capsys) == (
        130,
        "",
        "dreamerbench: interrupted\n",
    )
    monkeypatch.setattr(cli, "build_parser", interrupted)  # while the subcommands import
    assert call(["suites"], capsys) == (130, "", "dreamerbench: interrupted\n")
    assert not (tmp_path / "run").exists()


def test_ctrl_c_in_the_first_second_of_a_real_process(tmp_path):
    """SIGINT while `dreamerbench train` imports (numpy is loaded: main has begun): exit 130, one
    line, no traceback."""
    import os
    import signal

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreamerbench.experiments.cli",
            *TRAIN,
            "--logdir",
            str(tmp_path / "r"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # as a terminal's job, even under a suite started with `&`
    )
    try:
        deadline = time.monotonic() + 60
        maps = Path(f"/proc/{process.pid}/maps")
        while "_multiarray_umath" not in maps.read_text() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err == "dreamerbench: interrupted\n" and not out
    assert not (tmp_path / "r").exists()


def test_yaml_12_reads_spec_and_set_alike():
    """YAML 1.2: 010 is ten and 0o10 eight in a spec and in --set alike; yes stays text."""
    spec = parse_spec(
        SPEC_HEAD.replace("steps: 100", "steps: 010") + "overrides:\n  run.envs: 0o10\n", "s.yaml"
    )
    assert spec.steps == 10 and spec.overrides["run.envs"] == 8
    config = apply_overrides(Config(), ["run.steps=010", "run.envs=0o10"])
    assert (config.run.steps, config.run.envs) == (10, 8)
    assert reader.parse_value("yes") == "yes" and reader.parse_value("1:30") == "1:30"
    assert reader.parse_value(".inf") == float("inf") and reader.parse_value("1e6") == 1e6
    assert reader.parse_value("1_000") == 1000  # grouped digits, as README says


BAD_JOB_CONFIGS = [
    {"agent.train_ratio": float("inf")},
    {"agent.opt.lr": float("nan")},
    {"env.action_repeat": 0},
    {"run.save_every": 0},
    {"run.train_start": -1},
    {"run.log_every": -1.0},
    {"replay.capacity": 8},
    {"agent.min_std": 2.0},
    {"agent.blocks": 3},
    {"seed": -1},
]


def _job_verdict(values, tmp_path):
    """What a job does with a config file holding ``values``: validate(from_dict(...)), then the
    Trainer; the refusal's text (or None) and whether anything was written to the logdir."""
    from dreamerbench.agent.trainer import Trainer

    good = apply_overrides(Config(), SPEC_TINY)
    tree = {**flatten(to_dict(good)), **values}
    logdir = tmp_path / "job-run"
    try:
        config = validate(from_dict(tree))
    except ValueError as error:
        return str(error), logdir.exists()
    Trainer(config, logdir)  # builds; run() would write the logdir
    return None, logdir.exists()


@pytest.mark.parametrize("values", BAD_JOB_CONFIGS, ids=lambda v: ",".join(v))
def test_dry_run_refuses_what_a_job_refuses(values, tmp_path, capsys):
    """The dry run's verdict on a spec equals the job's verdict on the same config, and
    the real sweep creates no MLflow store and no logdir for it."""
    spec = tmp_path / "s.yaml"
    overrides = {**SPEC_TINY, **{k: v for k, v in values.items() if k != "seed"}}
    text = (
        SPEC_HEAD.replace("seeds: 1", f"seeds: [{values.get('seed', 0)}]")
        + "overrides:\n"
        + "".join(
            f"  {k}: {'.nan' if v != v else '.inf' if v == float('inf') else str(v).lower()}\n"
            for k, v in overrides.items()
        )
    )
    spec.write_text(text)
    job_message, job_wrote = _job_verdict(values, tmp_path)
    assert job_message is not None and not job_wrote
    db, work = tmp_path / "mlflow.db", tmp_path / "work"
    for extra in (["--dry-run"], []):
        code, out, err = call(
            [
                "sweep",
                str(spec),
                "--tracking-uri",
                f"sqlite:///{db}",
                "--workdir",
                str(work),
                *extra,
            ],
            capsys,
        )
        assert code == 2 and len(err.splitlines()) == 1, err
        # The same rule refuses both; only the seed is named after the spec's own field there.
        assert (job_message.split("allowed: ")[1] if "seed" in values else job_message) in err, (
            job_message,
            err,
        )
        assert not db.exists() and not work.exists()


def test_good_job_config_passes_both(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        SPEC_HEAD
        + "overrides:\n"
        + "".join(f"  {k}: {str(v).lower()}\n" for k, v in SPEC_TINY.items())
    )
    code, out, err = call(
        ["sweep", str(spec), "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path / 'db'}"], capsys
    )
    assert code == 0, err
    assert _job_verdict({}, tmp_path)[0] is None


def test_refused_start_writes_nothing_so_the_fix_is_not_blocked(tmp_path, capsys):
    """A start refused for a protocol value leaves no config.yaml behind (issue 13)."""
    from dreamerbench.agent.config import resolve_config
    from dreamerbench.agent.trainer import Trainer

    logdir = tmp_path / "run"
    code, _, err = call([*TRAIN, "--logdir", str(logdir), "--set", "env.action_repeat=0"], capsys)
    assert code == 2 and "env.action_repeat=0" in err
    assert not logdir.exists()
    bad = dataclasses.replace(
        resolve_config("dmc_proprio", "cartpole_balance", 0, ["agent.size=debug"]),
        env={"action_repeat": 0},
    )
    with pytest.raises(ValueError, match="env.action_repeat=0 is not allowed"):
        Trainer(bad, logdir)
    assert not logdir.exists()


def test_a_start_whose_env_cannot_start_leaves_no_folder(tmp_path, monkeypatch):
    """suites22 (bsuite mnist offline): an env that fails to start left the new logdir with its
    lock file. The folders a start made go again when nothing but the lock was written; a
    folder that existed stays."""
    from dreamerbench.agent import trainer as trainer_lib
    from dreamerbench.agent.config import resolve_config

    def fails(*args, **kwargs):
        raise ValueError("task='mnist_0' needs MNIST")

    monkeypatch.setattr(trainer_lib, "make_vector_env", fails)
    config = resolve_config("dmc_proprio", "cartpole_balance", 0, ["agent.size=debug"])
    for logdir in (tmp_path / "a" / "b" / "run", tmp_path):
        with pytest.raises(ValueError, match="needs MNIST"):
            trainer_lib.Trainer(config, logdir).run()
        assert not (tmp_path / "a").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # it existed: it stays


def test_a_tracking_store_under_a_file_is_named_as_a_file(tmp_path):
    from dreamerbench.experiments.tracking import Tracker

    (tmp_path / "afile").write_text("not a directory\n")
    for create in (True, False):
        with pytest.raises(
            FileNotFoundError, match=f"{tmp_path / 'afile'} is a file, not a directory$"
        ):
            Tracker(f"sqlite:///{tmp_path / 'afile' / 'x.db'}", create=create)


def test_compile_cache_under_a_file_is_refused_before_anything_is_created(tmp_path, capsys):
    """run.compile_cache is checked with the config: before, jax only warned at every compile,
    after config.yaml."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    logdir = tmp_path / "run"
    code, out, err = call(
        [*TRAIN, "--logdir", str(logdir), "--set", f"run.compile_cache={blocker}/jax"], capsys
    )
    assert code == 2 and not out
    assert len(err.splitlines()) == 1 and err.rstrip().endswith(
        f"run.compile_cache='{blocker}/jax' is not allowed; allowed: '' (no cache) or a "
        f"directory, new or existing "
        f"({blocker} is a file)"
    ), err
    assert not logdir.exists() and blocker.read_text() == ""


def _class_docstrings(cls):
    """Field name -> docstring (the string literal after the field) of a dataclass."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            docs[node.target.id] = after.value.value
    return docs


def _rules(hint):
    base, rules = reader._split(hint)
    found = [r for r in rules if isinstance(r, (reader.Range, reader.Length))]
    for arg in typing.get_args(base):
        if arg is not Ellipsis and arg is not type(None):
            found += _rules(arg)
    return found


def _numeric(hint):
    base, _ = reader._split(hint)
    if base in (int, float):
        return True
    return any(
        _numeric(a) for a in typing.get_args(base) if a is not Ellipsis and a is not type(None)
    )


SCHEMAS = [
    config_lib.Config,
    config_lib.AgentConfig,
    config_lib.LossScales,
    config_lib.OptimizerConfig,
    config_lib.ReplayConfig,
    config_lib.RunConfig,
    profiles.SlurmProfile,
]


@pytest.mark.parametrize("cls", SCHEMAS, ids=lambda c: c.__name__)
def test_every_numeric_field_has_a_range_that_its_docstring_states(cls):
    docs = _class_docstrings(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if not _numeric(hint) or typing.get_origin(reader._split(hint)[0]) is typing.Literal:
            continue
        rules = _rules(hint)
        assert rules, f"{cls.__name__}.{field.name} has no range"
        stated = docs[field.name].split("Range: ", 1)
        assert len(stated) == 2, f"{cls.__name__}.{field.name}: the docstring states no range"
        for rule in rules:
            text = (
                dataclasses.replace(rule, note="").text
                if isinstance(rule, reader.Range)
                else rule.text
            )
            assert text in stated[1], f"{cls.__name__}.{field.name}: docstring lacks {text!r}"
        reader.read(getattr(cls(), field.name), hint, field.name)  # the default is allowed


def test_every_protocol_field_is_typed_and_its_default_allowed():
    from dreamerbench import suites

    for suite in suites.SUITES.values():
        for key, default in suite.default_protocol.items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                hint = suite.protocol_fields[key]
                assert _rules(hint) or typing.get_origin(hint) is typing.Literal, (suite.name, key)
        assert suite.resolve_protocol(suite.default_protocol) == dict(suite.default_protocol)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            [
                "train",
                "--suite",
                "dmc_proprio",
                "--task",
                "cartpole_balance",
                "--logdir",
                "{tmp}/run",
                "--set",
                "agent.train_ratio=.inf",
            ],
            "agent.train_ratio=inf is not allowed; allowed: a finite number > 0",
        ),
        (
            [
                "train",
                "--suite",
                "dmc_proprio",
                "--task",
                "cartpole_balance",
                "--logdir",
                "{tmp}/run",
                "--seed",
                "99999999999999999999",
            ],
            "--seed=99999999999999999999 is not allowed",
        ),
        (
            ["table", "--suite", "atari100k", "--reps", "0"],
            "--reps=0 is not allowed; allowed: an integer in [100, 200000]",
        ),
    ],
)
def test_bad_input_in_a_real_process(argv, expected, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    result = subprocess.run(
        [sys.executable, "-m", "dreamerbench.experiments.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


# --- issue 23, item 9: published files, stores and configs named in one line ---------------

GOOD_RUN = {"task": "CartPole-v1", "method": "mine", "seed": 0, "xs": [95000, 99000], "ys": [1, 2]}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"seed": 1.5}, "entry 1: seed=1.5 is not allowed; allowed: an integer >= 0, or its "),
        ({"seed": "one"}, "entry 1: seed='one' is not allowed; allowed: an integer >= 0, or its "),
        ({"seed": True}, "entry 1: seed=True is not allowed; allowed: an integer >= 0, or its "),
        (
            {"ys": [1, float("inf")]},
            "entry 1: ys[1]=inf is not allowed; allowed: a finite number, or null (no score)",
        ),
        ({"ys": [float("nan"), 2]}, "entry 1: ys[0]=nan is not allowed; allowed: a finite"),
        ({"xs": [95000, float("-inf")]}, "entry 1: xs[1]=-inf is not allowed; allowed: a finite"),
        (  # tools.fault_round pub:xs-neg: "has no final score", naming neither file nor field
            {"xs": [-5, 99000]},
            "entry 1: xs[0]=-5 is not allowed; allowed: a finite number >= 0 (frames)",
        ),
        ({"ys": [1, "2"]}, "entry 1: ys[1]='2' is not allowed; allowed: a finite number, or null"),
    ],
)
def test_a_bad_published_entry_is_named_with_its_file(change, expected, tmp_path, capsys):
    """Non-integer seeds and infinite or NaN scores (JSON's Infinity and NaN) were read as they
    came: a seed of 1.5 became run 1, an infinite score an infinite mean."""
    import gzip
    import json

    path = tmp_path / "gym-mine.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump([GOOD_RUN, {**GOOD_RUN, "seed": 1, **change}], f)
    argv = ["table", "--suite", "gym", "--baseline", "mine", "--published-dir", str(tmp_path)]
    code, out, err = call(argv, capsys)
    assert code == 2 and not out, err
    assert err.count("\n") == 1 and f"error: {path}: {expected}" in err, err


def test_a_sqlite_uri_on_a_file_that_is_no_database_creates_nothing(tmp_path, capsys):
    """Before: sqlalchemy's 'file is not a database' traceback, after a lock file beside it."""
    blob = tmp_path / "results.db"
    blob.write_bytes(b"PK\x03\x04 a zip, not a database")
    expected = (
        f"tracking URI sqlite:///{blob}: {blob} is not a sqlite database (it begins "
        "b'PK\\x03\\x04 a z'); allowed: a sqlite database file, new or existing"
    )
    for argv in (
        ["status", "anything", "--tracking-uri", f"sqlite:///{blob}"],
        ["table", "--suite", "gym", "--runs", "x", "--tracking-uri", f"sqlite:///{blob}"],
    ):
        code, out, err = call(argv, capsys)
        assert code == 2 and not out and err.count("\n") == 1 and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]


def test_a_config_the_schema_refuses_is_named_by_its_file_in_export(tmp_path, capsys):
    """`dreamerbench export` named the field of a garbled config.yaml but not the file."""
    logdir = tmp_path / "run"
    logdir.mkdir()
    for text, why in (
        ("agent:\n  sizee: 3\n", "unknown field 'agent.sizee'; allowed fields at agent: size"),
        ("agent:\n  train_ratio: .inf\n", "agent.train_ratio=inf is not allowed; allowed: a "),
        ("agent:\n  size: [\n", "is not a readable config (while parsing a flow node)"),
    ):
        (logdir / "config.yaml").write_text(text)
        code, out, err = call(["export", str(logdir), str(tmp_path / "p.npz")], capsys)
        assert code == 2 and not out and err.count("\n") == 1, err
        assert f"error: {logdir / 'config.yaml'}" in err and why in err, err
    assert not (tmp_path / "p.npz").exists()


def test_a_table_that_cannot_be_written_after_all_is_one_line(tmp_path, capsys, monkeypatch):
    """What --out's check cannot know in advance (a disk that fills meanwhile) is one line
    naming --out, not a traceback after the bootstrap."""
    import errno
    import gzip
    import json

    with gzip.open(tmp_path / "gym-mine.json.gz", "wt") as f:
        json.dump([GOOD_RUN], f)

    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "t.md"
    argv = ["table", "--suite", "gym", "--baseline", "mine", "--published-dir", str(tmp_path)]
    code, stdout, err = call([*argv, "--reps", "100", "--out", str(out)], capsys)
    assert code == 1 and not stdout, err
    assert err.endswith(
        f"error: --out {out}: the result could not be written (No space left on device); "
        "free space or give another --out, then run the command again\n"
    ), err


def test_eval_episodes_have_an_upper_bound(tmp_path, capsys):
    """tools.fault_round's eval:episodes-huge: ``eval --episodes 1e12`` gave no answer in 60 s."""
    code, out, err = call(["eval", str(tmp_path / "run"), "--episodes", "1e12"], capsys)
    assert code == 2 and not out, err
    assert err.splitlines() == [
        "dreamerbench eval: error: --episodes=1000000000000.0 is not allowed; allowed: an "
        "integer in [1, 100000] (see dreamerbench eval --help)"
    ]
    assert not (tmp_path / "run").exists()
