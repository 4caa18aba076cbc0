"""The bad-input probes: each one CLI call that must exit 2 with one stderr line naming the
flag or field and the value, and create or change nothing (`refuse`), or, for paths with spaces
and odd characters, must simply work (`work`).

Placeholders in a case's arguments: ``{S}`` its own empty sandbox (also the working directory),
``{F}`` the shared fixture (:func:`prepare`: a trained run in ``{F}/odd ?%# ü/run a``, recorded
in ``{F}/m.db`` as experiment ``train``), ``{L}`` that run's logdir.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
import time
import typing
from pathlib import Path

from tools.fault_round.common import (
    Outcome,
    ProbeFailed,
    changed,
    check,
    run_cli,
    snapshot,
    train_args,
)
from tools.fault_round.common import (
    chosen as is_chosen,
)

ODD = "odd ?%# ü"
SECRET = "s3cretPW"


@dataclasses.dataclass
class Bad:
    """One case: `args` (placeholders filled), the texts the error line must contain (`names`),
    files to make in the sandbox first (`files`: name -> text or bytes, a name ending in / a
    folder), the exit codes allowed and, for `work`, the path that must exist afterwards."""

    id: str
    args: list[str]
    names: list[str] = dataclasses.field(default_factory=list)
    files: dict = dataclasses.field(default_factory=dict)
    expect: str = "refuse"
    codes: tuple = (2,)
    made: str = ""
    within_s: float = 60.0


T = ["--suite", "dmc_proprio", "--task", "cartpole_balance", "--size", "debug", "--steps", "100"]


def train(*extra: str, logdir: str = "{S}/run", names=(), **kw) -> Bad:
    return Bad("", ["train", *T, "--logdir", logdir, *extra], list(names), **kw)


def set_case(value: str, *names: str, **kw) -> Bad:
    return train("--set", value, names=names, **kw)


SPEC = "name: bad\nsuite: dmc_proprio\ntasks: [cartpole_balance]\nseeds: 1\nsteps: 100\n"
SQLITE = ["--tracking-uri", "sqlite:///{S}/m.db"]  # a new store in the sandbox
STORE = ["--tracking-uri", "sqlite:///{F}/m.db"]  # the fixture's store
NOT_DB = ["--tracking-uri", "sqlite:///{S}/afile"]
CREDENTIALS = ["--tracking-uri", f"http://u:{SECRET}@127.0.0.1:1"]
WORK = ["--workdir", "{S}/work"]
SWEEP_FLAGS = [*WORK, *SQLITE]
SLURM_DRY = ["--executor", "slurm", "--dry-run", *SWEEP_FLAGS, "--profile"]
TABLE = ["table", "--suite", "dmc_proprio"]
PLOT = ["plot", "--suite", "dmc_proprio"]
RUNS = ["--runs", "train", *STORE, "--reps", "100"]
DREAMERV3 = ["--baseline", "dreamerv3"]
CURVES = ["--kind", "curves", "--out", "{S}/p.png"]
GARBLED_COPY = {"copy/": "{L}", "copy/config.yaml": "agent: [\n"}


def cli(*args: str, names=(), **kw) -> Bad:
    return Bad("", list(args), list(names), **kw)


def table(*extra: str, **kw) -> Bad:
    return cli(*TABLE, *extra, **kw)


def plot(*extra: str, **kw) -> Bad:
    return cli(*PLOT, *extra, **kw)


CONFIG = ["config", "--suite", "dmc_proprio", "--task", "cartpole_balance"]


def config(*extra: str, **kw) -> Bad:
    return cli(*CONFIG, *extra, **kw)


def sweep(*extra: str, spec: str = "{S}/spec.yaml", files=None, **kw) -> Bad:
    """`sweep SPEC EXTRA` with the good SPEC in the sandbox (and `files`)."""
    return cli("sweep", spec, *extra, files={"spec.yaml": SPEC, **(files or {})}, **kw)


def works(made: str, *args: str, files=None) -> Bad:
    """A case that must succeed (and write `made`, when given)."""
    return cli(*args, expect="work", codes=(0,), made=made, files=files or {})


def spec_case(text: str, *names: str, dry: bool = True, head: str = SPEC) -> Bad:
    args = ["sweep", "{S}/spec.yaml", *SWEEP_FLAGS] + (["--dry-run"] if dry else [])
    return Bad("", args, list(names), files={"spec.yaml": head + text})


def spec_with(old: str, new: str, *names: str) -> Bad:
    """The good spec with `old` replaced by `new`."""
    return spec_case("", *names, head=SPEC.replace(old, new))


def published(runs, *names: str, raw: bytes | None = None) -> Bad:
    data = raw if raw is not None else gzip.compress(json.dumps(runs).encode())
    args = ["table", "--suite", "dmc_proprio", "--baseline", "dreamerv3"]
    args += ["--published-dir", "{S}/pub", "--reps", "100"]
    return Bad("", args, list(names), files={"pub/dmc_proprio-dreamerv3.json.gz": data})


def _run(seed=0, **change):
    run = {"task": "dmc_cartpole_balance", "method": "dreamerv3", "seed": seed}
    return {**run, "xs": [1000, 500000], "ys": [100.0, 800.0], **change}


def generated_sets() -> list[Bad]:
    """Per config field, values of the wrong type and out of every range (NaN, inf, huge)."""
    from dreamerbench.agent.config import Config

    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            if dataclasses.is_dataclass(kind):
                yield from walk(kind, f"{prefix}{f.name}.")
            elif f.name not in ("suite", "task", "compile_cache"):
                yield f"{prefix}{f.name}", kind

    values = {int: ["1.5", "1e30"], float: [".nan", "1e400"], bool: ["2"]}
    shown = {"1e400": "inf", ".nan": "nan", "1e30": "1e+30"}
    cases = []
    for key, kind in walk(Config):
        for value in values.get(kind, ["abc"]):
            case = set_case(f"{key}={value}", key, shown.get(value, value))
            cases.append(dataclasses.replace(case, id=f"set:{key}={value}"))
    return cases


def _file(name="afile"):
    return {name: "not a folder\n"}


def hand_cases() -> list[Bad]:
    long = "x" * 300
    c: dict[str, Bad] = {
        # --- train flags and --set forms
        "train:size-huge": Bad(
            "", ["train", *T[:4], "--size", "huge", "--logdir", "{S}/r"], ["--size", "huge"]
        ),
        "train:steps-0": train("--steps", "0", names=["0"]),
        "train:steps-abc": train("--steps", "abc", names=["--steps", "abc"]),
        "train:steps-1e30": train("--steps", "1e30", names=["--steps", "1e+30"]),
        "train:seed-1.5": train("--seed", "1.5", names=["--seed", "1.5"]),
        "train:seed--1": train("--seed", "-1", names=["-1"]),
        "train:seed-huge": train("--seed", "99999999999999999999", names=["99999999999999999999"]),
        "train:suite-nope": Bad(
            "", ["train", "--suite", "nope", "--task", "x", "--logdir", "{S}/r"], ["nope"]
        ),
        "train:task-nope": Bad(
            "", ["train", "--suite", "dmc_proprio", "--task", "nope", "--logdir", "{S}/r"], ["nope"]
        ),
        "train:spp-0": train("--seeds-per-process", "0", names=["--seeds-per-process", "0"]),
        "train:spp-huge": train("--seeds-per-process", "100000", names=["100000"]),
        "train:output-nope": train("--output", "nope", names=["nope"]),
        "train:experiment-empty": train(
            "--tracking-uri", "sqlite:///{S}/m.db", "--experiment", "", names=["--experiment"]
        ),
        "set:no-equals": set_case("agent.batch_size", "agent.batch_size"),
        "set:unknown-key": set_case("agent.nope=1", "agent.nope"),
        "set:unknown-section": set_case("nope.x=1", "nope"),
        "set:too-deep": set_case("agent.opt.lr.x=1", "agent.opt.lr"),
        "set:empty-key": set_case("=1", "''"),
        "set:empty-value": set_case("agent.batch_size=", "agent.batch_size"),
        "set:yaml-tag-scalar": set_case("agent.batch_size=!!str 4", "agent.batch_size"),
        "set:yaml-tag-python": set_case(
            "agent.batch_size=!!python/object:os.system x", "agent.batch_size"
        ),
        "set:yaml-tag-seq": set_case("agent.cnn_mults=!!python/tuple [1, 2]", "agent.cnn_mults"),
        "set:yaml-tag-map": set_case("env=!!map {a: 1}", "env"),
        "set:nesting-5000": set_case("env=" + "[" * 5000 + "]" * 5000, "env"),
        "set:alias": set_case("env={a: &x [1], b: *x}", "env"),
        "set:section-as-value": set_case("agent=3", "agent"),
        "set:batch-huge": set_case("agent.batch_size=100000", "agent.batch_size", "100000"),
        "set:envs-huge": set_case("run.envs=100000", "run.envs", "100000"),
        "set:capacity-huge": set_case("replay.capacity=1e15", "replay.capacity"),
        "set:size-via-set": set_case("agent.size=huge", "agent.size", "huge"),
        "set:min-over-max-std": set_case("agent.min_std=2", "agent.min_std"),
        "set:retnorm-low-high": set_case("agent.retnorm_low=99", "agent.retnorm_low"),
        "set:lam-over-1": set_case("agent.lam=1.5", "agent.lam", "1.5"),
        "set:beta1-1": set_case("agent.opt.beta1=1", "agent.opt.beta1"),
        "set:eval-mode-empty": set_case("run.eval_mode=''", "run.eval_mode"),
        "set:outputs-nope": set_case("run.outputs=[nope]", "run.outputs", "nope"),
        "set:env-unknown": set_case("env.nope=1", "env.nope"),
        "set:twice": train(
            "--set", "agent.batch_size=2", "--set", "agent.batch_size=3", names=["agent.batch_size"]
        ),
        # Digits grouped with _ read as a number, as in Python and ruamel.yaml (README: values).
        "work:underscore-int": works("", *CONFIG, "--set", "run.steps=1_000"),
        # --- paths given to train
        "path:logdir-empty": train(logdir="", names=["--logdir"]),
        "path:logdir-sys": train(logdir="/sys/dreamerbench-probe/run", names=["--logdir", "/sys"]),
        "path:logdir-proc": train(logdir="/proc/nope/run", names=["--logdir", "/proc/nope"]),
        "path:logdir-readonly": train(logdir="/sys/kernel/dbprobe", names=["--logdir", "/sys"]),
        "path:logdir-a-file": train(logdir="{S}/afile", names=["--logdir", "afile"], files=_file()),
        "path:logdir-under-a-file": train(
            logdir="{S}/afile/run", names=["--logdir", "afile"], files=_file()
        ),
        "path:logdir-300-char": train(logdir="{S}/" + long, names=["--logdir"]),
        "work:train-control-char-logdir": train(
            logdir="{S}/a\x01b", expect="work", codes=(0,), made="{S}/a\x01b/summary.json"
        ),
        "uri:credentials": train(
            "--tracking-uri",
            f"http://user:{SECRET}@127.0.0.1:1",
            names=["--tracking-uri"],
            codes=(1, 2),
            within_s=60,
        ),
        "uri:sqlite-not-db": train(
            "--tracking-uri", "sqlite:///{S}/afile", names=["afile"], files=_file(), codes=(1, 2)
        ),
        "uri:unreachable": train(
            "--tracking-uri", "http://127.0.0.1:1", names=["127.0.0.1:1"], codes=(1, 2), within_s=60
        ),
        "uri:scheme-nope": train("--tracking-uri", "nope://x", names=["nope://x"]),
        "uri:sqlite-dir-missing": train(
            "--tracking-uri", "sqlite:///{S}/no/such/m.db", names=["no/such"], codes=(1, 2)
        ),
        # --- sweep, spec files
        "spec:bad-yaml": spec_case("overrides: {a: [\n", "spec.yaml"),
        "spec:not-a-mapping": spec_case("", "spec.yaml", head="- a\n- b\n"),
        "spec:seeds-abc": spec_with("seeds: 1", "seeds: abc", "seeds", "abc"),
        "spec:seeds-1.5": spec_with("seeds: 1", "seeds: 1.5", "seeds", "1.5"),
        "spec:seeds-0": spec_with("seeds: 1", "seeds: 0", "seeds", "0"),
        "spec:seeds-huge": spec_with("seeds: 1", "seeds: 1e9", "seeds"),
        "spec:seed-list-str": spec_with("seeds: 1", "seeds: [a]", "seeds"),
        "spec:steps-neg": spec_with("steps: 100", "steps: -5", "steps", "-5"),
        "spec:suite-nope": spec_with("dmc_proprio", "nope", "nope"),
        "spec:task-nope": spec_with("[cartpole_balance]", "[nope]", "nope"),
        "spec:tasks-empty": spec_with("[cartpole_balance]", "[]", "tasks"),
        "spec:name-300": spec_with("name: bad", "name: " + long, "name"),
        "spec:name-slash": spec_with("name: bad", "name: a/b", "name"),
        "spec:name-empty": spec_with("name: bad", "name: ''", "name"),
        "spec:unknown-key": spec_case("nope: 1\n", "nope"),
        "spec:override-unknown": spec_case("overrides: {agent.nope: 1}\n", "agent.nope"),
        "spec:override-type": spec_case(
            "overrides: {agent.batch_size: abc}\n", "agent.batch_size", "abc"
        ),
        "spec:override-nan": spec_case("overrides: {agent.opt.lr: .nan}\n", "agent.opt.lr"),
        "spec:grid-not-list": spec_case("grid: {agent.train_ratio: 5}\n", "grid"),
        "spec:grid-unknown": spec_case("grid: {agent.nope: [1, 2]}\n", "agent.nope"),
        "spec:grid-empty": spec_case("grid: {agent.train_ratio: []}\n", "agent.train_ratio"),
        "spec:yaml-tag": spec_case(
            "overrides: !!python/object/apply:os.system [ls]\n", "overrides"
        ),
        "spec:executor-nope": spec_case("executor: nope\n", "executor", "nope"),
        "spec:parallel-0": spec_case("parallel: 0\n", "parallel", "0"),
        "spec:duplicate-key": spec_case("seeds: 2\n", "seeds"),
        "spec:alias-bomb": spec_case(
            "x: &a [1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "z: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n",
            "spec.yaml",
        ),
        "spec:deep": spec_case("overrides: " + "[" * 3000 + "]" * 3000 + "\n", "overrides"),
        "spec:not-dry-bad-override": spec_case(
            "overrides: {agent.batch_size: 0}\n", "agent.batch_size", "0", dry=False
        ),
        "spec:missing-file": sweep(
            "--dry-run", *SWEEP_FLAGS, spec="{S}/nope.yaml", names=["nope.yaml"]
        ),
        "spec:a-folder": sweep(
            "--dry-run", *SWEEP_FLAGS, spec="{S}/adir", names=["adir"], files={"adir/": ""}
        ),
        "spec:binary": sweep(
            "--dry-run", *SWEEP_FLAGS, names=["spec.yaml"], files={"spec.yaml": b"\xff\xfe\x00bin"}
        ),
        "sweep:workdir-a-file": sweep(
            "--workdir", "{S}/afile", *SQLITE, names=["--workdir", "afile"], files=_file()
        ),
        "sweep:workdir-empty": sweep("--workdir", "", *SQLITE, names=["--workdir"]),
        "sweep:workdir-proc": sweep(
            "--workdir", "/proc/nope/w", *SQLITE, names=["--workdir", "/proc/nope"]
        ),
        "sweep:parallel-0": sweep("--parallel", "0", *SWEEP_FLAGS, names=["--parallel", "0"]),
        "sweep:spp-abc": sweep(
            "--seeds-per-process", "abc", *SWEEP_FLAGS, names=["--seeds-per-process", "abc"]
        ),
        "sweep:profile-nope": sweep(*SLURM_DRY, "nope", names=["--profile", "nope"]),
        "sweep:profile-bad-yaml": sweep(
            *SLURM_DRY, "{S}/p.yaml", names=["p.yaml"], files={"p.yaml": "a: [\n"}
        ),
        "sweep:profile-unknown-key": sweep(
            *SLURM_DRY, "{S}/p.yaml", names=["nope"], files={"p.yaml": "nope: 1\n"}
        ),
        "sweep:credentials": sweep(*WORK, *CREDENTIALS, names=["--tracking-uri"], codes=(1, 2)),
        "sweep:unreachable": sweep(
            *WORK, "--tracking-uri", "http://127.0.0.1:1", names=["127.0.0.1:1"], codes=(1, 2)
        ),
        "sweep:sqlite-not-db": sweep(*WORK, *NOT_DB, names=["afile"], files=_file(), codes=(1, 2)),
        # --- status
        "status:no-store": cli("status", "nope", *SQLITE, names=["m.db"], codes=(1, 2)),
        "status:unknown-sweep": cli("status", "nope", *STORE, names=["nope"], codes=(1, 2)),
        "status:spec-bad": cli(
            "status",
            "{S}/spec.yaml",
            *STORE,
            names=["seeds"],
            files={"spec.yaml": SPEC.replace("seeds: 1", "seeds: x")},
        ),
        "status:credentials": cli(
            "status", "x", *CREDENTIALS, names=["--tracking-uri"], codes=(1, 2)
        ),
        "status:sqlite-not-db": cli(
            "status", "x", *NOT_DB, names=["afile"], files=_file(), codes=(1, 2)
        ),
        # --- table / plot
        "table:suite-nope": cli("table", "--suite", "nope", names=["--suite", "nope"]),
        "table:reps-5": table("--reps", "5", names=["--reps", "5"]),
        "table:reps-huge": table("--reps", "1000000000", names=["--reps", "1000000000"]),
        "table:budget-0": table("--budget-frames", "0", names=["--budget-frames", "0"]),
        "table:budget-inf": table("--budget-frames", "inf", names=["--budget-frames", "inf"]),
        "table:window-neg": table("--window-frames", "-1", names=["--window-frames", "-1"]),
        "table:window-over-budget": table(
            "--budget-frames", "1000", "--window-frames", "5000", names=["--window-frames", "5000"]
        ),
        "table:episodes-nope": table("--episodes", "nope", names=["--episodes", "nope"]),
        "table:baseline-nope": table(
            "--baseline", "nope", "--published-dir", "{S}/pub", names=["nope"], files={"pub/": ""}
        ),
        "table:runs-nope": table("--runs", "nope", *STORE, names=["nope"]),
        "table:runs-no-store": table("--runs", "x", *SQLITE, names=["m.db"]),
        "table:out-a-folder": table(
            *RUNS, "--out", "{S}/adir", names=["--out", "adir"], files={"adir/": ""}
        ),
        "table:out-under-a-file": table(
            *RUNS, "--out", "{S}/afile/t.md", names=["--out", "afile"], files=_file()
        ),
        "table:out-proc": table(*RUNS, "--out", "/proc/nope/t.md", names=["--out", "/proc/nope"]),
        "table:out-empty": table(*RUNS, "--out", "", names=["--out"]),
        "table:cache-dir-a-file": table(
            *DREAMERV3, "--cache-dir", "{S}/afile", names=["--cache-dir", "afile"], files=_file()
        ),
        "table:published-missing": table(*DREAMERV3, "--published-dir", "{S}/nope", names=["nope"]),
        "table:published-a-file": table(
            *DREAMERV3, "--published-dir", "{S}/afile", names=["afile"], files=_file()
        ),
        "table:credentials": table(
            "--runs", "x", *CREDENTIALS, names=["--tracking-uri"], codes=(1, 2)
        ),
        "plot:bins-0": plot(*CURVES, "--bins", "0", names=["--bins", "0"]),
        "plot:ylim-bad": plot(*CURVES, "--ylim", "5", names=["--ylim", "5"]),
        "plot:ylim-reversed": plot(*CURVES, "--ylim", "10,0", names=["--ylim"]),
        "plot:ylim-nan": plot(*CURVES, "--ylim", "nan,1", names=["--ylim"]),
        "plot:ylim-profile": plot(
            "--kind", "profile", "--ylim", "0,1", "--out", "{S}/p.png", names=["--ylim"]
        ),
        "plot:out-a-folder": plot(
            *RUNS[:-2],
            "--kind",
            "curves",
            "--out",
            "{S}/adir",
            names=["--out", "adir"],
            files={"adir/": ""},
        ),
        "plot:out-sys": plot(
            *RUNS[:-2], "--kind", "curves", "--out", "/sys/dbprobe/p.png", names=["--out", "/sys"]
        ),
        "plot:kind-nope": plot("--kind", "nope", "--out", "{S}/p.png", names=["--kind", "nope"]),
        # --- published files
        "pub:seed-str": published([_run(seed="x")], "seed", "x"),
        "pub:seed-float": published([_run(seed=1.5)], "seed", "1.5"),
        "pub:ys-inf": published([_run(ys=[100.0, float("inf")])], "ys"),
        "pub:ys-nan": published([_run(ys=[100.0, float("nan")])], "ys"),
        "pub:ys-str": published([_run(ys=[100.0, "a"])], "ys"),
        "pub:xs-neg": published([_run(xs=[-5, 10])], "xs"),
        "pub:xs-ys-lengths": published([_run(xs=[1, 2, 3])], "xs"),
        "pub:missing-task": published([{k: v for k, v in _run().items() if k != "task"}], "task"),
        "pub:missing-ys": published([{k: v for k, v in _run().items() if k != "ys"}], "ys"),
        "pub:not-a-list": published({"a": 1}, "dmc_proprio-dreamerv3"),
        "pub:not-gzip": published(None, "dmc_proprio-dreamerv3", raw=b"not gzip"),
        "pub:bad-json": published(None, "dmc_proprio-dreamerv3", raw=gzip.compress(b"[{")),
        "pub:task-unknown": published([_run(task="dmc_nope")], "dmc_nope"),
        # --- export / eval / config / suites
        "export:no-logdir": cli("export", "{S}/nope", "{S}/p.npz", names=["nope"]),
        "export:logdir-a-file": cli(
            "export", "{S}/afile", "{S}/p.npz", names=["afile"], files=_file()
        ),
        "export:out-a-folder": cli(
            "export", "{L}", "{S}/adir", names=["adir"], files={"adir/": ""}
        ),
        "export:out-proc": cli("export", "{L}", "/proc/nope/p.npz", names=["/proc/nope"]),
        "export:out-empty": cli("export", "{L}", "", names=["OUT"]),
        "export:garbled-config": cli(
            "export", "{S}/copy", "{S}/p.npz", names=["config.yaml"], files=GARBLED_COPY
        ),
        "export:no-checkpoint": cli(
            "export",
            "{S}/copy",
            "{S}/p.npz",
            names=["checkpoint"],
            files={"copy/": "{L}", "copy/checkpoint": None},
        ),
        "eval:no-logdir": cli("eval", "{S}/nope", names=["nope"]),
        "eval:episodes-0": cli("eval", "{L}", "--episodes", "0", names=["--episodes", "0"]),
        "eval:episodes-abc": cli("eval", "{L}", "--episodes", "abc", names=["--episodes", "abc"]),
        "eval:episodes-huge": cli("eval", "{L}", "--episodes", "1e12", names=["--episodes"]),
        "eval:mode-nope": cli("eval", "{L}", "--mode", "nope", names=["--mode", "nope"]),
        "eval:garbled-config": cli("eval", "{S}/copy", names=["config.yaml"], files=GARBLED_COPY),
        "config:unknown-key": config("--set", "nope=1", names=["nope"]),
        "config:bad-value": config("--set", "run.envs=0", names=["run.envs", "0"]),
        "config:suite-nope": cli("config", "--suite", "nope", "--task", "x", names=["nope"]),
        "config:task-nope": cli(
            "config", "--suite", "dmc_proprio", "--task", "nope", names=["nope"]
        ),
        "suites:nope": cli("suites", "nope", names=["nope"]),
        # --- paths with spaces and odd characters must work
        "work:export-odd-out": works(
            f"{{S}}/{ODD}/p a.npz", "export", "{L}", f"{{S}}/{ODD}/p a.npz"
        ),
        "work:table-odd-out": works(
            f"{{S}}/{ODD}/t a.md", *TABLE, *RUNS, "--out", f"{{S}}/{ODD}/t a.md"
        ),
        "work:plot-odd-out": works(
            f"{{S}}/{ODD}/c a.png",
            *PLOT,
            *RUNS,
            "--kind",
            "curves",
            "--out",
            f"{{S}}/{ODD}/c a.png",
        ),
        "work:sweep-dry-odd-workdir": works(
            "",
            "sweep",
            "{S}/spec.yaml",
            "--dry-run",
            "--workdir",
            f"{{S}}/{ODD}",
            *SQLITE,
            files={"spec.yaml": SPEC},
        ),
        "work:status-odd-spec": works(
            "",
            "status",
            f"{{S}}/{ODD}.yaml",
            *STORE,
            files={f"{ODD}.yaml": SPEC.replace("bad", "train")},
        ),
    }
    return [dataclasses.replace(case, id=key) for key, case in c.items()]


def cases() -> list[Bad]:
    return hand_cases() + generated_sets()


QUICK = [
    "set:nesting-5000",
    "set:yaml-tag-seq",
    "path:logdir-empty",
    "path:logdir-sys",
    "uri:credentials",
    "sweep:workdir-a-file",
    "pub:seed-str",
    "table:cache-dir-a-file",
    "export:garbled-config",
    "work:table-odd-out",
    "set:agent.batch_size=1e30",
]


def prepare(root: Path) -> None:
    """The shared fixture: a 300-step run in a logdir with spaces and odd characters, recorded in
    {F}/m.db (that it trains is itself checked: ProbeFailed if not)."""
    logdir = root / ODD / "run a"
    root.mkdir(parents=True)
    done = run_cli(*train_args(logdir, 300, uri=f"sqlite:///{root / 'm.db'}"), cwd=root)
    if done.returncode != 0:
        raise ProbeFailed(f"the fixture run in {logdir!s} failed: {done.stderr.strip()[-300:]}")


def _fill(text: str, sandbox: Path, fixture: Path) -> str:
    logdir = fixture / ODD / "run a"
    return (
        text.replace("{S}", str(sandbox)).replace("{F}", str(fixture)).replace("{L}", str(logdir))
    )


def _make(sandbox: Path, fixture: Path, files: dict) -> None:
    for name, content in files.items():
        path = sandbox / name
        if content is None:
            shutil.rmtree(path)
        elif name.endswith("/"):
            source = _fill(content, sandbox, fixture) if content else ""
            if source:
                shutil.copytree(source, path)
            else:
                path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)


def _names(line: str, name: str) -> bool:
    """Whether `line` names `name`; a flag also counts when named in words (--tracking-uri as
    "tracking URI", --cache-dir as "cache_dir")."""
    if name in line:
        return True
    if not name.startswith("--"):
        return False
    word = name[2:].lower()
    return any(w in line.lower() for w in (word, word.replace("-", " "), word.replace("-", "_")))


def probe(case: Bad, sandbox: Path, fixture: Path) -> None:
    """Run one case; ProbeFailed with the reason when it is not clear (or, for `work`, fails)."""
    sandbox.mkdir(parents=True)
    _make(sandbox, fixture, case.files)
    args = [_fill(a, sandbox, fixture) for a in case.args]
    named = [Path(a) for a in args if a.startswith(("/sys/", "/proc/"))]
    before = snapshot(sandbox, fixture)
    start = time.monotonic()
    done = run_cli(*args, cwd=sandbox, timeout=max(case.within_s, 60))
    took = time.monotonic() - start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    last = lines[-1][:160] if lines else "(no stderr)"
    if case.expect == "work":
        check(done.returncode == 0, f"exit {done.returncode}: {last}")
        made = _fill(case.made, sandbox, fixture)
        check(not made or Path(made).exists(), f"{made} was not written")
        return
    check(done.returncode != -9, f"no answer in {took:.0f} s")
    check("Traceback" not in done.stderr, f"a traceback ({last})")
    check(done.returncode in case.codes, f"exit {done.returncode} (wanted 2): {last}")
    check(len(lines) == 1, f"{len(lines)} stderr lines: {' | '.join(lines)[:200]}")
    for name in case.names:
        check(_names(lines[0], _fill(name, sandbox, fixture)), f"does not name {name!r}: {last}")
    check(took <= case.within_s, f"took {took:.0f} s")
    check(SECRET not in done.stdout + done.stderr, "the password is printed")
    created = changed(before, snapshot(sandbox, fixture))
    check(not created, f"created or changed {created[:1]} ({len(created)} paths)")
    for path in named:
        check(not path.exists(), f"{path} exists")
    leaked = [p for p in sandbox.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    check(not leaked, f"the password is stored in {leaked[:1]}")


def run(out: Path, only: list[str] | None, quick: bool, log, jobs: int = 1) -> list[Outcome]:
    """Every case (or those of `only`, or the QUICK set) in its own sandbox under `out`, one at a
    time (`jobs` is for the faults)."""
    chosen = [c for c in cases() if is_chosen(c.id, only, quick, QUICK)]
    fixture = out / "fixture"
    outcomes: list[Outcome] = []
    if any("{F}" in a or "{L}" in a or "{L}" in str(c.files) for c in chosen for a in c.args):
        start = time.monotonic()
        try:
            prepare(fixture)
            outcome = Outcome("work:train-odd-logdir", True, "", time.monotonic() - start)
        except ProbeFailed as failed:
            outcome = Outcome("work:train-odd-logdir", False, str(failed))
        log(outcome)
        outcomes.append(outcome)
    for number, case in enumerate(chosen):
        start = time.monotonic()
        try:
            probe(case, out / "cases" / f"{number:03d}", fixture)
            outcome = Outcome(case.id, True, "", time.monotonic() - start)
        except ProbeFailed as failed:
            outcome = Outcome(case.id, False, str(failed), time.monotonic() - start)
        log(outcome)
        outcomes.append(outcome)
    return outcomes
