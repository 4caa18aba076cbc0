"""Loading episodes into one tidy table: our MLflow runs and the published score files.

Both loaders return a DataFrame with one row per episode (or per bin of a binned
file) and the columns of :data:`COLUMNS`, plus ``achievement_<name>`` (Crafter) or
``milestone_<name>`` (Minecraft) columns when runs logged them:

- ``step``: agent steps; ``frames``: environment frames = ``step x action_repeat``.
- ``layout``: ``episode`` (one row per finished episode) or ``binned`` (one row per
  bin of a uniform grid, ``score`` the mean of the bin's episodes, NaN where a bin had
  no episode: kept, so that gaps stay visible).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.references import SuiteReference, get_suite
from experiments.tracking import TAG, Tracker, group_by_key, runs_by_key

COLUMNS = ("method", "suite", "task", "seed", "run_key", "step", "frames", "score", "layout")
RUN_FIELDS = ("task", "method", "seed", "xs", "ys")
EPISODE_PREFIX = "episode/"
DEFAULT_METHOD = "dreamerbench"


# --- published files ---------------------------------------------------------------


def _fetch(source: str, filename: str, cache_dir: str | os.PathLike | None) -> Path:
    """Local path of ``source/filename``; URLs are downloaded once into ``cache_dir``."""
    if urllib.parse.urlparse(source).scheme not in ("http", "https"):
        path = Path(source) / filename
        if not path.exists():
            raise FileNotFoundError(f"published file {path} does not exist")
        return path
    cache = Path(cache_dir or Path.home() / ".cache" / "dreamerbench" / "published")
    # One cache folder per source URL, so two sources never shadow each other.
    path = cache / hashlib.sha256(source.encode()).hexdigest()[:16] / filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        with urllib.request.urlopen(f"{source.rstrip('/')}/{filename}") as response:
            with open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        partial.replace(path)  # atomic: a failed download never poisons the cache
    return path


def available_methods(suite: str, source: str) -> list[str]:
    """Methods with a ``SUITE-METHOD.json.gz`` file in directory ``source``."""
    return sorted(p.name[len(suite) + 1 : -len(".json.gz")] for p in Path(source).glob(f"{suite}-*.json.gz"))


def _check_record(record, index: int, path: Path) -> None:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: entry {index} is a {type(record).__name__}; expected an object with fields {', '.join(RUN_FIELDS)}")
    missing = [f for f in RUN_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{path}: entry {index} lacks field {missing[0]!r}; required fields: {', '.join(RUN_FIELDS)}")
    if not isinstance(record["xs"], list) or not isinstance(record["ys"], list) or len(record["xs"]) != len(record["ys"]):
        raise ValueError(f"{path}: entry {index}: 'xs' and 'ys' must be lists of equal length")


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


def load_published(
    suite: str,
    method: str,
    source: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Episodes of ``method`` on ``suite`` from a published ``SUITE-METHOD.json.gz``.

    ``source`` is a directory or an http(s) URL of one (downloaded once into
    ``cache_dir``). The file is a gzip JSON list of ``{task, method, seed, xs, ys}``
    with ``xs`` in environment frames; task names lose their suite prefix
    (``atari_pong`` -> ``pong``) and ``step = frames / action_repeat`` of our suite.
    """
    ref = get_suite(suite)
    source = str(source)
    filename = f"{suite}-{method}.json.gz"
    if urllib.parse.urlparse(source).scheme not in ("http", "https") and not (Path(source) / filename).exists():
        allowed = available_methods(suite, source)
        raise ValueError(f"method={method!r} has no published file for suite {suite!r} in {source}; allowed: {', '.join(allowed) or '(none)'}")
    path = _fetch(source, filename, cache_dir)
    try:
        with gzip.open(path, "rt") as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a gzip JSON file ({error})") from error
    if not isinstance(records, list):
        raise ValueError(f"{path}: top level is a {type(records).__name__}; expected a list of runs")
    if not records:
        raise ValueError(f"{path}: the file holds no runs")
    runs = [_published_run(r, i, path, ref) for i, r in enumerate(records)]
    out = pd.concat(runs, ignore_index=True)
    out["layout"] = _file_layout(runs)
    return out


def _published_run(record, index: int, path: Path, ref: SuiteReference) -> pd.DataFrame:
    _check_record(record, index, path)
    task = str(record["task"])
    if task.startswith(ref.published_prefix):
        task = task[len(ref.published_prefix) :]
    xs = np.asarray(record["xs"], dtype=np.float64)
    ys = np.asarray([np.nan if y is None else y for y in record["ys"]], dtype=np.float64)
    seed = int(record["seed"])
    return pd.DataFrame(
        {
            "method": str(record["method"]),
            "suite": ref.name,
            "task": task,
            "seed": seed,
            "run_key": f"published/{ref.name}/{record['method']}/{task}/{seed}",
            "step": xs / ref.action_repeat,
            "frames": xs,
            "score": ys,
        }
    )


# --- MLflow runs ---------------------------------------------------------------------


def _run_row(run) -> dict:
    tags, params = run.data.tags, run.data.params
    missing = [k for k in ("suite", "task", "seed") if TAG + k not in tags]
    if missing:
        raise ValueError(f"run {run.info.run_id} lacks tag {TAG + missing[0]!r}; every run needs tags {TAG}suite, {TAG}task, {TAG}seed")
    if "protocol.action_repeat" not in params:
        raise ValueError(f"run {run.info.run_id} lacks param 'protocol.action_repeat'")
    return {
        "run_id": run.info.run_id,
        "method": tags.get(TAG + "method", DEFAULT_METHOD),
        "suite": tags[TAG + "suite"],
        "task": tags[TAG + "task"],
        "seed": int(tags[TAG + "seed"]),
        "run_key": tags.get(TAG + "run_key", run.info.run_id),
        "action_repeat": int(params["protocol.action_repeat"]),
    }


def load_runs(tracking_uri: str | None, experiment: str, notes: list[str] | None = None) -> pd.DataFrame:
    """Episodes of every run of MLflow experiment ``experiment`` (one per sweep).

    Reads the run tags ``dreamerbench.{suite,task,seed,method,run_key}``, the param
    ``protocol.action_repeat`` and the metric histories ``episode/score`` and
    ``episode/achievement_*`` / ``episode/milestone_*`` (MLflow ``step`` = agent steps),
    as ``experiments/tracking.py`` records them. A run key with several MLflow runs
    counts once (its FINISHED run, else its newest); each such key adds a line to `notes`.
    """
    tracker = Tracker(tracking_uri, create=False)
    runs = tracker.runs(tracker.find_experiment(experiment).experiment_id)
    if not runs:
        raise ValueError(f"experiment={experiment!r} has no runs")
    for key, group in group_by_key(runs).items():
        if len(group) > 1 and notes is not None:
            others = ", ".join(f"{r.info.run_id} ({r.info.status})" for r in group[:-1])
            notes.append(f"run key {key} has {len(group)} MLflow runs; using {group[-1].info.run_id} "
                         f"({group[-1].info.status}), not {others}")
    counted = {run.info.run_id for run in runs_by_key(runs).values()}
    runs = [r for r in runs if r.info.run_id in counted or TAG + "run_key" not in r.data.tags]
    meta = pd.DataFrame([_run_row(r) for r in runs])
    keys = sorted({k for r in runs for k in r.data.metrics if k.startswith(EPISODE_PREFIX)})
    if EPISODE_PREFIX + "score" not in keys:
        raise ValueError(f"experiment={experiment!r}: no run logged metric 'episode/score'")
    keys = [k for k in keys if k == "episode/score" or k.startswith(("episode/achievement_", "episode/milestone_"))]
    hist = pd.DataFrame(tracker.histories(meta["run_id"].tolist(), keys),
                        columns=["run_id", "key", "step", "timestamp", "value"])
    # One episode record = (run, step, timestamp): its fields share the timestamp and no
    # two records of a run share one (experiments/tracking.py), so episodes that end at
    # one step in parallel envs stay apart and each score pairs with its own achievements.
    # The count within is a tie-break for stores written without that identity.
    hist["episode"] = hist.groupby(["run_id", "key", "step", "timestamp"]).cumcount()
    wide = hist.pivot(index=["run_id", "step", "timestamp", "episode"], columns="key", values="value").reset_index()
    wide.columns.name = None
    wide = wide.drop(columns=["timestamp", "episode"]).rename(columns={k: k[len(EPISODE_PREFIX) :] for k in keys})
    out = meta.merge(wide, on="run_id", how="left")
    out["frames"] = out["step"] * out["action_repeat"]
    out["layout"] = "episode"
    extra = sorted(c for c in out.columns if c.startswith(("achievement_", "milestone_")))
    out = out[list(COLUMNS) + extra].sort_values(["method", "task", "seed", "step"], kind="stable")
    return out.reset_index(drop=True)
