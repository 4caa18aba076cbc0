"""Loading episodes into one tidy table: our MLflow runs and the published score files.

Both loaders return a DataFrame with one row per episode (or per bin of a binned
file) and the columns of :data:`COLUMNS`, plus ``achievement_<name>`` (Crafter) or
``milestone_<name>`` (Minecraft) columns where the runs or files hold them:

- ``method``: what a table row or plot line is. For our runs it is the method tag
  plus, when runs of one sweep differ in their resolved config (a grid), the values
  that differ: ``dreamerbench (agent.train_ratio=32.0)``. Runs of different configs
  are never averaged together.
- ``step``: agent steps; ``frames``: environment frames = ``step x action_repeat``.
- ``layout``: ``episode`` (one row per finished episode) or ``binned`` (one row per
  bin of a uniform grid, ``score`` the mean of the bin's episodes, NaN where a bin had
  no episode: kept, so that gaps stay visible).
- ``budget_frames``: the budget the run was asked for (our runs: ``run.steps x
  action_repeat`` as recorded in MLflow; published files: the suite's budget).

Our runs (:func:`load_runs`) also carry :data:`RUN_STATE`: ``status`` (the MLflow run
status: FINISHED, or FAILED, RUNNING, SCHEDULED, KILLED for a run that did not
finish), ``steps_done`` (agent steps the run reached: the ``dreamerbench.steps_done``
tag, else its last recorded step, else 0) and ``budget_steps`` (``run.steps`` it was
asked for, NaN if not recorded). Published files have none of them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from dreamerbench import suites
from dreamerbench.core.reader import refuse
from dreamerbench.experiments.spec import BOOKKEEPING
from dreamerbench.experiments.tracking import (
    STEPS_TAG,
    TAG,
    Tracker,
    budget_steps,
    group_by_key,
    runs_by_key,
)
from dreamerbench.suites import Suite

COLUMNS = (
    "method",
    "suite",
    "task",
    "seed",
    "run_key",
    "step",
    "frames",
    "score",
    "layout",
    "budget_frames",
)
CURVE_FIELDS = ("task", "method", "seed", "xs", "ys")
EPISODE_FIELDS = ("task", "method", "seed", "xs", "reward")
EPISODE_PREFIX = "episode/"
DEFAULT_METHOD = "dreamerbench"
DEFAULT_CACHE = Path.home() / ".cache" / "dreamerbench" / "published"
METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RUN_STATE = ("status", "steps_done", "budget_steps")
"""Columns of :func:`load_runs` that say how far each run got (see the module doc)."""
IDENTITY_PARAMS = ("suite", "task", "seed")
"""Config params that say which run of a method this is, not which method."""


# --- published files ---------------------------------------------------------------


def published_source(suite: Suite, given: str | os.PathLike | None) -> str:
    """``given`` (a folder or an http(s) URL), else the suite's pinned published folder."""
    if given:
        return str(given)
    if suite.published is None:
        raise ValueError(
            f"suite {suite.name!r} has no published scores; give --published-dir DIR with "
            "SUITE-METHOD.json.gz files"
        )
    return suite.published.url


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _file_names(suite: Suite, method: str) -> list[str]:
    """Names ``method``'s file may have: the published name (or ``SUITE-METHOD.json.gz``),
    gzipped or not (Crafter publishes plain JSON; copies may be gzipped)."""
    if not METHOD_NAME.match(method):
        raise ValueError(
            f"baseline={method!r} is not a method name; allowed: letters, digits and _.- "
            "(no path), e.g. "
            + ", ".join(list(suite.published.files)[:3] if suite.published else ["dreamerv3"])
        )
    name = (
        suite.published.files.get(method) if suite.published else None
    ) or f"{suite.name}-{method}.json.gz"
    return [name, name[: -len(".gz")] if name.endswith(".gz") else name + ".gz"]


def available_methods(suite: Suite, source: str) -> list[str]:
    """Methods published for ``suite`` (at the pinned commit) plus those with a file in the
    folder ``source``."""
    known = list(suite.published.files) if suite.published else []
    if _is_url(source):
        return sorted(known)
    names = {p.name for p in Path(source).glob("*.json*")}
    found = {m for m in known if any(name in names for name in _file_names(suite, m))}
    found |= {
        n[len(suite.name) + 1 :].split(".json")[0] for n in names if n.startswith(f"{suite.name}-")
    }
    return sorted(found)


def _cache_path(cache: Path, source: str, name: str) -> Path:
    # One folder per source URL, so that two sources never shadow each other.
    folder = (cache / hashlib.sha256(source.encode()).hexdigest()[:16]).resolve()
    path = (folder / name).resolve()
    if path.parent != folder:  # _file_names admits no path; this guards the rule itself
        raise ValueError(f"published file name {name!r} would leave the cache folder {folder}")
    return path


def _download(url: str, path: Path) -> None:
    """``url`` to ``path`` through ``path.part``: a failed download never poisons the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    partial.replace(path)


def fetch_published(
    suite: Suite, method: str, source: str, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Local path of ``method``'s published file for ``suite`` in folder or URL ``source``.

    URLs are downloaded once into ``cache_dir`` (default ``~/.cache/dreamerbench/published``).
    Raises ValueError naming the method and what is allowed, or why the source cannot be read.
    """
    names = _file_names(suite, method)
    if not _is_url(source):
        for name in names:
            if (Path(source) / name).is_file():
                return Path(source) / name
        allowed = available_methods(suite, source)
        raise ValueError(
            f"baseline={method!r} has no published file for suite {suite.name!r} in {source}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    for name in names:
        path = _cache_path(cache, source, name)
        if path.exists():
            return path
    for name in names:
        url = f"{source.rstrip('/')}/{name}"
        path = _cache_path(cache, source, name)
        try:
            _download(url, path)
            return path
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise ValueError(
                    f"published scores: {url} answered HTTP {error.code} {error.reason}"
                ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ValueError(
                f"published scores at {source} cannot be reached ({reason}); "
                "give --published-dir DIR with a local copy of the files"
            ) from None
    allowed = available_methods(suite, source)
    raise ValueError(
        f"baseline={method!r} has no published file for suite {suite.name!r} at {source} "
        f"(HTTP 404 for {' and '.join(names)}); allowed: {', '.join(allowed) or '(see the source)'}"
    )


def _check_record(record, index: int, path: Path) -> str:
    """The record's kind: ``curve`` ({task, method, seed, xs, ys}) or ``episodes`` (Crafter: xs,
    reward, achievement_*)."""
    if not isinstance(record, dict):
        raise ValueError(
            f"{path}: entry {index} is a {type(record).__name__}; expected an object with fields "
            f"{', '.join(CURVE_FIELDS)}"
        )
    kind, fields, ys = (
        ("curve", CURVE_FIELDS, "ys")
        if "reward" not in record
        else ("episodes", EPISODE_FIELDS, "reward")
    )
    missing = [f for f in fields if f not in record]
    if missing:
        raise ValueError(
            f"{path}: entry {index} lacks field {missing[0]!r}; required fields: "
            f"{', '.join(fields)}"
        )
    if (
        not isinstance(record["xs"], list)
        or not isinstance(record[ys], list)
        or len(record["xs"]) != len(record[ys])
    ):
        raise ValueError(f"{path}: entry {index}: 'xs' and {ys!r} must be lists of equal length")
    seed = record["seed"]
    if not (
        (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0)
        or (isinstance(seed, str) and seed.isascii() and seed.isdigit())
    ):
        raise ValueError(
            f"{path}: entry {index}: "
            f"{refuse('seed', seed, 'an integer >= 0, or its digits as a string')}"
        )
    for name, values, allowed, ok in (
        (
            "xs",
            record["xs"],
            "a finite number >= 0 (frames)",
            lambda v: _finite(v, False) and v >= 0,
        ),
        (ys, record[ys], "a finite number, or null (no score)", lambda v: _finite(v, True)),
    ):
        at = next((i for i, v in enumerate(values) if not ok(v)), None)
        if at is not None:
            raise ValueError(
                f"{path}: entry {index}: {refuse(f'{name}[{at}]', values[at], allowed)}"
            )
    return kind


def _finite(value, null: bool) -> bool:
    """Is `value` (a JSON value) a finite number, or None where `null` is allowed?"""
    if value is None:
        return null
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _on_grid(xs: np.ndarray) -> bool:
    steps = np.diff(xs)
    return len(steps) < 2 or bool(np.allclose(steps, steps[0]))


def _file_layout(runs: list[pd.DataFrame]) -> str:
    """``binned`` if some bin is null or every run lies on a uniform grid.

    Decided per file, not per run: a per-episode run can look uniform by chance
    (Freeway episodes all last 2048 steps), but not every run of a file.
    """
    if any(r["score"].isna().any() for r in runs):
        return "binned"
    return "binned" if all(_on_grid(r["frames"].to_numpy()) for r in runs) else "episode"


def _read_json(path: Path):
    """A JSON file, gzipped or not (told apart by gzip's magic bytes, not the name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rt") if gzipped else open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a (gzip) JSON file ({error})") from None


def load_published(
    suite: str,
    method: str,
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    tasks: list[str] | None = None,
) -> pd.DataFrame:
    """Episodes of ``method`` on ``suite`` from its published per-run file.

    ``source`` is a folder or an http(s) URL of one (default: the suite's files at a
    pinned commit, :attr:`dreamerbench.suites.base.Suite.published`; URLs are downloaded once into
    ``cache_dir``). Two layouts are read: score curves, a gzip JSON list of
    ``{task, method, seed, xs, ys}`` with ``xs`` in environment frames (danijar/dreamerv3),
    and per-episode records ``{task, method, seed, xs, reward, achievement_<name>...}``
    (danijar/crafter, ``xs`` = steps at each episode end, achievement counts per
    episode). Task names lose their suite prefix (``atari_pong`` -> ``pong``) and
    ``step = frames / action_repeat`` of our suite. A method that never sees the reward
    (``Suite.published.reward_free``, e.g. Crafter's random policy) stands for every
    task in ``tasks`` (default: every task of the suite).
    """
    ref = suites.get_suite(suite)
    path = fetch_published(ref, method, published_source(ref, source), cache_dir)
    records = _read_json(path)
    if not isinstance(records, list):
        raise ValueError(
            f"{path}: top level is a {type(records).__name__}; expected a list of runs"
        )
    if not records:
        raise ValueError(f"{path}: the file holds no runs")
    runs = [_published_run(r, i, path, ref) for i, r in enumerate(records)]
    layout = _file_layout(runs)
    out = pd.concat(runs, ignore_index=True)
    out["layout"] = layout
    if ref.published and method in ref.published.reward_free:
        out = pd.concat(
            [out.assign(task=t, run_key=out["run_key"] + f"/as/{t}") for t in (tasks or ref.tasks)],
            ignore_index=True,
        )
    return out


def _published_run(record, index: int, path: Path, ref: Suite) -> pd.DataFrame:
    kind = _check_record(record, index, path)
    task = ref.task_of_published(str(record["task"]))
    xs = np.asarray(record["xs"], dtype=np.float64)
    ys = record["ys"] if kind == "curve" else record["reward"]
    seed = int(record["seed"])
    columns = {
        "method": str(record["method"]),
        "suite": ref.name,
        "task": task,
        "seed": seed,
        "run_key": f"published/{ref.name}/{record['method']}/{task}/{seed}",
        "step": xs / ref.action_repeat,
        "frames": xs,
        "score": np.asarray([np.nan if y is None else y for y in ys], dtype=np.float64),
        "budget_frames": float(ref.budget_frames),
    }
    for key, values in record.items():
        if key.startswith("achievement_"):
            columns[key] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(columns)


# --- MLflow runs ---------------------------------------------------------------------


def _run_row(run) -> dict:
    tags, params = run.data.tags, run.data.params
    missing = [k for k in ("suite", "task", "seed") if TAG + k not in tags]
    if missing:
        raise ValueError(
            f"run {run.info.run_id} lacks tag {TAG + missing[0]!r}; every run needs tags "
            f"{TAG}suite, {TAG}task, {TAG}seed"
        )
    if "protocol.action_repeat" not in params:
        raise ValueError(f"run {run.info.run_id} lacks param 'protocol.action_repeat'")
    repeat = int(params["protocol.action_repeat"])
    steps = budget_steps(run)
    done = tags.get(STEPS_TAG)
    return {
        "run_id": run.info.run_id,
        "method": tags.get(TAG + "method", DEFAULT_METHOD),
        "suite": tags[TAG + "suite"],
        "task": tags[TAG + "task"],
        "seed": int(tags[TAG + "seed"]),
        "run_key": tags.get(TAG + "run_key", run.info.run_id),
        "action_repeat": repeat,
        "budget_frames": float(steps) * repeat if steps is not None else np.nan,
        "status": run.info.status,
        "steps_done": float(done) if done else np.nan,
        "budget_steps": float(steps) if steps is not None else np.nan,
    }


def _natural(text: str) -> tuple:
    """Sort key that orders numbers by value: ``ratio=32`` before ``ratio=512``."""
    return tuple(float(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+(?:\.\d+)?)", text)))


def variant_labels(methods: list[str], params: list[dict[str, str]]) -> list[str]:
    """One label per run: its method, plus ``key=value`` for every config param that
    differs between that method's runs (other than suite, task and seed).

    ``methods[i]`` and ``params[i]`` (MLflow params: the flattened resolved config)
    describe run i. Runs with the same label have the same config, bookkeeping
    (``dreamerbench.experiments.spec.BOOKKEEPING``: budget, logging, saving) aside.
    """
    labels = list(methods)
    for method in dict.fromkeys(methods):
        rows = [i for i, m in enumerate(methods) if m == method]
        keys = sorted(
            {k for i in rows for k in params[i]} - set(IDENTITY_PARAMS) - set(BOOKKEEPING)
        )
        differ = [k for k in keys if len({params[i].get(k) for i in rows}) > 1]
        if differ:
            for i in rows:
                point = ", ".join(f"{k}={params[i].get(k, '-')}" for k in differ)
                labels[i] = f"{method} ({point})"
    return labels


def recorded_budget(runs: pd.DataFrame, experiment: str) -> float | None:
    """The one budget (frames) the runs of ``experiment`` were asked for, from the
    ``budget_frames`` column of :func:`load_runs`; None where none was recorded. Runs with
    different budgets are a ValueError naming the runs (task and seed) of each budget
    (their final windows would differ): ``--budget-frames`` then decides."""
    recorded = runs.dropna(subset=["budget_frames"])
    names = recorded["task"] + " seed " + recorded["seed"].astype(str)
    budgets = names.groupby(recorded["budget_frames"])
    if budgets.ngroups > 1:
        differ = "; ".join(
            f"{budget:,.0f} frames: {_some(sorted(set(runs)))}" for budget, runs in budgets
        )
        raise ValueError(
            f"runs of experiment={experiment!r} have different budgets ({differ}); "
            "pass --budget-frames to score every run at one budget"
        )
    return next(iter(budgets.groups), None)


def _some(names: list[str], shown: int = 3) -> str:
    """The first `shown` of `names`, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


EXTRA_PREFIXES = ("achievement_", "milestone_", "bsuite_")
"""Episode values :func:`load_runs` reads beside ``score`` and ``length``: Crafter's
achievements, Minecraft's milestones, bsuite's scoring counters (``bsuite_<key>``, which
``dreamerbench.analysis.bsuite`` scores)."""


def _extra(name: str) -> bool:
    return name.startswith(EXTRA_PREFIXES)


EPISODE_PREFIXES = {"train": EPISODE_PREFIX, "eval": "eval/"}
"""Which episodes of our runs: training episodes (``episode/*``) or evaluation episodes
(``eval/*``)."""


def load_runs(
    tracking_uri: str | None,
    experiment: str,
    notes: list[str] | None = None,
    episodes: str = "train",
) -> pd.DataFrame:
    """Episodes of every run of MLflow experiment ``experiment`` (one per sweep).

    Reads the run tags ``dreamerbench.{suite,task,seed,method,run_key}``, the params
    (``protocol.action_repeat``, ``run.steps`` and the rest of the resolved config,
    see :func:`variant_labels`) and the metric histories ``episode/score``, ``episode/length``
    and ``episode/<prefix>*`` of :data:`EXTRA_PREFIXES` (MLflow ``step`` = agent steps),
    as ``experiments/tracking.py`` records them. A run key with several MLflow runs
    counts once (its FINISHED run, else its newest); each such key adds a line to `notes`.
    Each row also carries its run's :data:`RUN_STATE` (MLflow status, steps reached, budget).
    ``episodes="eval"`` reads the evaluation episodes (``eval/score``, ``run.eval_every``)
    instead of the training episodes, in the same columns.
    A missing sqlite store is a FileNotFoundError (nothing is created), a server that
    does not answer a one-line error naming the URI.
    """
    tracker = Tracker(tracking_uri, create=False)
    runs = tracker.runs(tracker.find_experiment(experiment).experiment_id)
    if not runs:
        raise ValueError(f"experiment={experiment!r} has no runs")
    for key, group in group_by_key(runs).items():
        if len(group) > 1 and notes is not None:
            others = ", ".join(f"{r.info.run_id} ({r.info.status})" for r in group[:-1])
            notes.append(
                f"run key {key} has {len(group)} MLflow runs; using {group[-1].info.run_id} "
                f"({group[-1].info.status}), not {others}"
            )
    counted = {run.info.run_id for run in runs_by_key(runs).values()}
    runs = [r for r in runs if r.info.run_id in counted or TAG + "run_key" not in r.data.tags]
    meta = pd.DataFrame([_run_row(r) for r in runs])
    meta["method"] = variant_labels(meta["method"].tolist(), [dict(r.data.params) for r in runs])
    if episodes not in EPISODE_PREFIXES:
        raise ValueError(
            f"episodes={episodes!r} is not allowed; allowed: {', '.join(EPISODE_PREFIXES)}"
        )
    prefix = EPISODE_PREFIXES[episodes]
    keys = sorted({k for r in runs for k in r.data.metrics if k.startswith(prefix)})
    if prefix + "score" not in keys:
        hint = "; record them with run.eval_every > 0" if episodes == "eval" else ""
        raise ValueError(f"experiment={experiment!r}: no run logged metric '{prefix}score'{hint}")
    keys = [
        k for k in keys if k in (prefix + "score", prefix + "length") or _extra(k[len(prefix) :])
    ]
    hist = pd.DataFrame(
        tracker.histories(meta["run_id"].tolist(), keys),
        columns=["run_id", "key", "step", "timestamp", "value"],
    )
    # One episode record = (run, step, timestamp): its fields share the timestamp and no
    # two records of a run share one (experiments/tracking.py), so episodes that end at
    # one step in parallel envs stay apart and each score pairs with its own achievements.
    # The count within is a tie-break for stores written without that identity.
    hist["episode"] = hist.groupby(["run_id", "key", "step", "timestamp"]).cumcount()
    wide = hist.pivot(
        index=["run_id", "step", "timestamp", "episode"], columns="key", values="value"
    ).reset_index()
    wide.columns.name = None
    wide = wide.drop(columns=["timestamp", "episode"]).rename(
        columns={k: k[len(prefix) :] for k in keys}
    )
    out = meta.merge(wide, on="run_id", how="left")  # a run without an episode keeps one empty row
    out["frames"] = out["step"] * out["action_repeat"]
    out["layout"] = "episode"
    reached = out.groupby("run_id")["step"].transform("max").fillna(0)
    out["steps_done"] = out["steps_done"].fillna(reached)
    extra = list(RUN_STATE) + sorted(c for c in out.columns if c == "length" or _extra(c))
    rank = {m: i for i, m in enumerate(sorted(set(out["method"]), key=_natural))}
    out = out[list(COLUMNS) + extra].assign(_rank=out["method"].map(rank))
    out = out.sort_values(["_rank", "task", "seed", "step"], kind="stable").drop(columns="_rank")
    return out.reset_index(drop=True)
