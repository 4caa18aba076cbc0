"""One run's logdir: the files a run owns, and the only code that writes them.

- ``config.yaml``     the resolved config; resuming needs the same one (``run.*`` may change)
- ``episodes.jsonl``  one record per finished episode: index, step, score, length, log/* maxima
- ``metrics.jsonl``   training means per log interval (``"kind": "train"``) and speeds
                      (``"fps"``)
- ``eval.jsonl``      one record per evaluation episode (``run.eval_every``): index, step,
                      score, length
- ``media/``          videos and plots (``episode-<step>.gif``, ``openloop-<step>.gif|png``;
                      ``run.video_every``), each named by the step it was made at and written
                      whole (rename into place)
- ``checkpoint/``     the last two checkpoints (``core/checkpoint.py``); each holds the
                      :class:`Counters`, the size of each JSONL file it covers and the config
                      it was made with (compared on resume, as ``config.yaml`` is)
- ``replay/``         the replay's chunks (``agent/replay.py``, ``core/chunks.py``), each written
                      once when full; a checkpoint names those it covers
- ``summary.json``    written when the run reaches its budget
- ``.checkpointed``   written once the run's first checkpoint is complete: from then on its
                      records may have been delivered, so no command empties the logdir
- ``.lock``           held (``flock``) by the one process that trains the run

Identity: every record carries ``step`` (agent steps) and ``time_ms`` (milliseconds since
the epoch, strictly increasing within its file even when the wall clock steps back: then
one more than the file's last); episode records also carry ``index``
(0, 1, ... over the run). So no two records of a run look alike to a store that merges
identical (name, value, step, time) rows, as MLflow does, and delivering one record twice
is a no-op there.

Exactly once: a resume cuts each JSONL file back to the size its checkpoint covers, and the
resumed run writes what came after again. A resume can fall back to the older of the two
checkpoints, so only what *that* one covers is final: :func:`deliverable` is that prefix
(the whole file once the run has finished). A failed run keeps only the checkpoint its
resume will take (:func:`settle_pack`), so what that one covers is final and deliverable at
once; what it wrote after its last checkpoint is not (the rerun writes that stretch anew). A
store that takes records only from there holds each record once, across kills, preemptions and
damaged checkpoints. Media files follow the same rule by their step: a resume deletes those
made after its checkpoint, and :func:`deliverable_media` lists those no resume can delete any
more.

Nothing lost: a logdir whose records a checkpoint once covered is never emptied. Starting
afresh over records is right only when no checkpoint ever covered them (the first save was cut
short: nothing was delivered); a damaged only checkpoint, a deleted ``checkpoint/`` or a
garbled record that every checkpoint covers is a one-line refusal (:func:`load_pack`) that names
the file and says what to do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dreamerbench.agent.config import Config, ConfigError, flatten, to_dict
from dreamerbench.agent.media import write_video
from dreamerbench.agent.replay import first_chunk
from dreamerbench.core import checkpoint
from dreamerbench.core.checkpoint import Checkpoint, CheckpointError
from dreamerbench.core.files import (
    FileLock,
    StorageError,
    atomic_write_bytes,
    atomic_write_text,
    writing,
)
from dreamerbench.core.records import LOGS, last_record, media_files, media_step, read_records

CHECKPOINTED = ".checkpointed"
"""A file in the logdir, written once a checkpoint of the run is complete (see the module doc)."""


class LogdirBusy(StorageError):
    """Another process trains the run in this logdir."""


@dataclass
class Counters:
    """Progress of the loop, shared by the runs of a pack; saved with every checkpoint."""

    steps: int = 0
    """Agent steps taken by each run (all its envs together)."""
    updates: int = 0
    """Train steps done."""
    policy_calls: int = 0
    """Policy steps done (each acts for every env)."""
    wall_s: float = 0.0
    """Seconds spent in the loop, over all sessions (the monotonic clock: a wall clock stepped
    back never makes it, or an episode's ``wall_s``, smaller)."""


def read_config(path: str | Path) -> dict[str, Any]:
    """The config mapping saved in a run's ``config.yaml`` at `path` (not validated).

    Raises ConfigError (one line naming the file) if it is not readable YAML of a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TypeError(f"a {type(data).__name__}, not a mapping")
        flatten(data)  # nested keys must be mappings of names too
    except (yaml.YAMLError, AttributeError, TypeError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path} is not a readable config ({reason}); restore it, or use a new logdir"
        ) from None
    return data


class RunDir:
    """The logdir of one run: lock, config check, JSONL records, checkpoints, summary.

    Use as a context manager: entering takes the logdir's lock (:class:`LogdirBusy`
    if another process holds it) and clears what killed saves left behind; leaving takes away
    the folders entering made if nothing but the lock was written in them (a start that failed,
    e.g. an env that could not start, leaves nothing behind). Full-disk errors come out as
    :class:`dreamerbench.core.files.DiskFull` naming the file.
    """

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir).expanduser()
        self.checkpoint_dir = self.logdir / "checkpoint"
        self.replay_dir = self.logdir / "replay"
        self.paths = {name: self.logdir / f"{name}.jsonl" for name in LOGS}
        self.media_dir = self.logdir / "media"
        self.episodes = 0
        self.evals = 0
        self._lock = FileLock(self.logdir / ".lock")
        self._files: dict[str, Any] = {}
        self._last_ms = {name: 0 for name in LOGS}
        self._saved: tuple[int, dict[str, int]] | None = None  # (step, sizes) of the last save
        self._config: dict[str, Any] | None = None  # written by write_config; saved in checkpoints
        self._made: Path | None = None  # the highest folder __enter__ made (see __exit__)

    def __enter__(self) -> RunDir:
        # The highest folder this start makes: if the run stops before it writes anything but
        # its lock (an env that cannot start), __exit__ takes the folders away again.
        self._made = next(
            (p for p in reversed([self.logdir, *self.logdir.parents]) if not p.exists()), None
        )
        with writing(self.logdir):
            self.logdir.mkdir(parents=True, exist_ok=True)
            if not self._lock.acquire():
                raise LogdirBusy(
                    f"logdir {self.logdir} is in use by {self._lock.holder()}; "
                    "wait until that process ends, or use another logdir"
                )
        held = checkpoint.complete(self.checkpoint_dir)
        first = self._marked_step()
        if (
            not held
            and first is not None
            and first in checkpoint.partial_steps(self.checkpoint_dir)
        ):
            # A kill cut the first save short after its marker: no checkpoint covered anything.
            (self.logdir / CHECKPOINTED).unlink()
        checkpoint.remove_partial(self.checkpoint_dir)  # we hold the lock: nobody else saves here
        if held:  # a logdir from before the marker existed
            self._mark_checkpointed(held[0].step)
        return self

    def __exit__(self, *exc) -> None:
        for file in self._files.values():
            try:
                file.close()
            except OSError:  # a full disk fails the close too; the checkpoint has what counts
                pass
        self._files = {}
        if self._made is not None and [p.name for p in self.logdir.iterdir()] == [".lock"]:
            (self.logdir / ".lock").unlink()  # still held: nobody else takes the new folder
            for folder in [self.logdir, *self.logdir.parents]:
                folder.rmdir()
                if folder == self._made:
                    break
        self._lock.release()

    # ------------------------------------------------------------------ config

    def check_config(self, config: Config) -> None:
        """Raise ConfigError if the logdir holds a run with another config (``run.*`` may differ).

        Compared with ``config.yaml`` and with the config each complete checkpoint was made
        with, so a deleted ``config.yaml`` does not let another config resume a checkpoint.
        A checkpoint whose counters cannot be read is left to :func:`load_pack` to report.
        """
        current = flatten(to_dict(config))
        path = self.logdir / "config.yaml"
        if path.exists():
            self._compare(flatten(read_config(path)), current, str(path))
        for ckpt in checkpoint.complete(self.checkpoint_dir):
            try:
                saved = checkpoint.read_counters(ckpt).get("config")
            except CheckpointError:
                continue
            if isinstance(saved, dict):  # checkpoints from before configs travelled: none
                self._compare(flatten(saved), current, f"checkpoint {ckpt.path}")

    def _compare(self, previous: dict[str, Any], current: dict[str, Any], source: str) -> None:
        changed = sorted(
            key
            for key in set(previous) | set(current)
            if previous.get(key) != current.get(key) and not key.startswith("run.")
        )
        if changed:
            raise ConfigError(
                f"logdir {self.logdir} holds a run with a different config in {source} "
                f"({', '.join(changed)}); use a new logdir, or the same settings to resume"
            )

    def write_config(self, config: Config) -> None:
        """Write ``config.yaml``; every later :meth:`save` of this session carries `config` too."""
        self._config = to_dict(config)
        atomic_write_text(
            self.logdir / "config.yaml", yaml.safe_dump(self._config, sort_keys=False)
        )

    def finished_summary(self, budget: int) -> dict[str, Any] | None:
        """The summary of a run that reached `budget` steps before; None otherwise."""
        path = self.logdir / "summary.json"
        if not path.exists():
            return None
        try:
            summary = json.loads(path.read_text())
            return summary if summary["steps"] >= budget else None
        except (ValueError, KeyError, TypeError):
            _warn(
                f"{path} is damaged; the run resumes from its last checkpoint and writes it again"
            )
            return None

    # ------------------------------------------------------------- checkpoints

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, newest first; warns about ``ckpt-*`` entries that are none."""
        for stray in checkpoint.strays(self.checkpoint_dir):
            _warn(f"{stray} is not a complete checkpoint (no manifest); it is ignored")
        return checkpoint.complete(self.checkpoint_dir)[::-1]

    def load(self, ckpt: Checkpoint) -> tuple[bytes, dict[str, np.ndarray], dict]:
        """(state bytes, replay arrays, saved counters) of `ckpt`, if it and the JSONL files it
        covers are whole.

        Raises CheckpointError naming the bad file: a damaged checkpoint file, a JSONL file
        shorter than the checkpoint says (records were lost), or a line of the part it covers
        that is not a whole JSON record (naming its byte offset).
        """
        state, replay, saved = checkpoint.load(ckpt)
        self._check_covered(ckpt, saved)
        return state, replay, saved

    def verify(self, ckpt: Checkpoint) -> tuple[None, None, dict]:
        """:meth:`load`'s checks without reading the arrays: (None, None, saved counters), or
        CheckpointError."""
        checkpoint.verify(ckpt)
        saved = checkpoint.read_counters(ckpt)
        self._check_covered(ckpt, saved)
        return None, None, saved

    def first_chunks(self) -> list[int]:
        """The first replay chunk each complete checkpoint names (those before all may go)."""
        return [
            first_chunk(c.path / "replay.npz") for c in checkpoint.complete(self.checkpoint_dir)
        ]

    def _check_covered(self, ckpt: Checkpoint, saved: Mapping[str, Any]) -> None:
        for name, path in self.paths.items():
            size = path.stat().st_size if path.exists() else 0
            covered = saved["file_sizes"].get(name, 0)  # files newer than the checkpoint: 0
            if size < covered:
                raise CheckpointError(
                    f"{path} has {size} bytes but checkpoint {ckpt.path.name} covers {covered}"
                )
            damage = _garbled(path, covered)
            if damage:
                raise CheckpointError(
                    f"{damage}, within the {covered} bytes that checkpoint {ckpt.path.name} covers"
                )

    def has_records(self) -> bool:
        """Whether a JSONL file of the run holds a byte, or ``media/`` a file."""
        return any(p.exists() and p.stat().st_size for p in self.paths.values()) or bool(
            media_files(self.media_dir)
        )

    def check_fresh_start(self) -> None:
        """Raise CheckpointError if starting afresh would erase records that a checkpoint covered
        (``.checkpointed`` is there but no complete checkpoint is: ``checkpoint/`` was deleted or
        emptied). Records written before the first save was complete are not: none was
        delivered, and the fresh start writes them anew."""
        if self.has_records() and (self.logdir / CHECKPOINTED).exists():
            raise CheckpointError(
                f"{self.checkpoint_dir} holds no complete checkpoint, but the records in "
                f"{self.logdir} were covered by one (see {self.logdir / CHECKPOINTED}); starting "
                f"afresh would erase them: restore the checkpoint, or move {self.logdir} aside "
                "(or pass a new --logdir) to start afresh"
            )

    def _mark_checkpointed(self, step: int) -> None:
        """Write ``.checkpointed`` (once: it names the run's first checkpoint's step). Called
        by :meth:`save` just before a checkpoint becomes complete, so no instant has a complete
        checkpoint without the marker; :meth:`__enter__` drops a marker whose first save a kill
        cut short (that save's temporary directory is still there)."""
        marker = self.logdir / CHECKPOINTED
        if not marker.exists():
            atomic_write_text(
                marker,
                f"first checkpoint: step {step}; the records a checkpoint covered are never "
                "erased\n",
            )

    def _marked_step(self) -> int | None:
        """The first checkpoint's step that ``.checkpointed`` names (None: no marker, or one
        written before the marker named it)."""
        marker = self.logdir / CHECKPOINTED
        if not marker.exists():
            return None
        found = re.match(r"first checkpoint: step (\d+);", marker.read_text())
        return int(found.group(1)) if found else None

    def resume(self, ckpt: Checkpoint, saved: Mapping[str, Any]) -> Counters:
        """Continue from `ckpt` (loaded by :meth:`load`): cut the JSONL files back to it,
        drop the checkpoints after it (they belong to the timeline being replaced),
        and open the files for appending. Returns the saved counters."""
        for later in checkpoint.complete(self.checkpoint_dir):
            if later > ckpt:
                checkpoint.remove(later)
        (self.logdir / "summary.json").unlink(missing_ok=True)  # a longer budget: not finished
        for name, path in self.paths.items():
            with open(path, "a+b") as file:  # load() checked that no file is shorter
                file.truncate(saved["file_sizes"].get(name, 0))
        for path in media_files(self.media_dir):
            if media_step(path) > ckpt.step:  # made in the timeline being replaced
                path.unlink()
        self.episodes = saved["episodes"]
        self.evals = saved.get("evals", 0)
        self._open()
        counters = dict(saved["counters"])
        counters.pop("update_credit", None)  # saved before the updates due followed the steps
        return Counters(**counters)

    def start(self) -> None:
        """Begin a run from scratch: empty JSONL files, and no checkpoint of an earlier start.

        Only after :func:`load_pack` found nothing to resume (and :meth:`check_fresh_start`
        allowed it)."""
        for old in checkpoint.complete(self.checkpoint_dir):
            checkpoint.remove(old)
        (self.logdir / CHECKPOINTED).unlink(missing_ok=True)
        for path in media_files(self.media_dir):
            path.unlink()
        with writing(self.logdir):
            for path in self.paths.values():
                path.write_bytes(b"")
        self._open()

    def _open(self) -> None:
        with writing(self.logdir):
            for name, path in self.paths.items():
                last = last_record(path)
                self._last_ms[name] = int(last.get("time_ms", 0)) if last else 0
                # line-buffered: readable while training
                self._files[name] = open(path, "a", buffering=1)

    def save(
        self,
        state: bytes,
        replay: Mapping[str, np.ndarray],
        counters: Counters,
        pack: Sequence[int],
    ) -> None:
        """Checkpoint the run: agent state (bytes), replay, counters, the JSONL sizes written so
        far (fsynced first) and the config of :meth:`write_config`; then ``.checkpointed``.

        Nothing is written if neither the step nor a file changed since this session's last save.
        """
        with writing(self.logdir):
            for file in self._files.values():
                file.flush()
                os.fsync(file.fileno())
        sizes = {name: self.paths[name].stat().st_size for name in LOGS}
        if self._saved == (counters.steps, sizes):
            return
        saved = {
            "counters": dataclasses.asdict(counters),
            "episodes": self.episodes,
            "evals": self.evals,
            "file_sizes": sizes,
            "pack": list(pack),
        }
        if self._config is not None:
            saved["config"] = self._config
        checkpoint.save(
            self.checkpoint_dir,
            counters.steps,
            state,
            replay,
            saved,
            before_commit=lambda: self._mark_checkpointed(counters.steps),
        )
        self._saved = (counters.steps, sizes)

    # ----------------------------------------------------------------- records

    def append(self, name: str, record: Mapping[str, Any]) -> None:
        """Write one record to ``<name>.jsonl`` with its ``time_ms`` identity (module doc)."""
        now = max(int(time.time() * 1000), self._last_ms[name] + 1)
        self._last_ms[name] = now
        with writing(self.paths[name]):
            self._files[name].write(json.dumps({**record, "time_ms": now}) + "\n")

    def record_episode(self, record: Mapping[str, Any]) -> None:
        """Append a finished episode with its index in the run."""
        self.append("episodes", {"index": self.episodes, **record})
        self.episodes += 1

    def record_eval(self, record: Mapping[str, Any]) -> None:
        """Append a finished evaluation episode with its index among the run's evaluations."""
        self.append("eval", {"index": self.evals, **record})
        self.evals += 1

    def write_media(self, kind: str, step: int, frames: np.ndarray, fps: float = 20.0) -> Path:
        """Write `frames` [T, H, W, 3] uint8 as ``media/<kind>-<step:012d>.gif`` (whole or not
        at all)."""
        return write_video(self.media_dir / f"{kind}-{step:012d}.gif", frames, fps)

    def write_plot(self, kind: str, step: int, png: bytes) -> Path:
        """Write PNG bytes as ``media/<kind>-<step:012d>.png`` (whole or not at all)."""
        path = self.media_dir / f"{kind}-{step:012d}.png"
        with writing(path):
            self.media_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, png)
        return path

    def summary(self, counters: Counters, finished: bool) -> dict[str, Any]:
        """The run's summary from every episode on disk (not only this session's); written if
        `finished`."""
        scores = [record["score"] for _, record in read_records(self.paths["episodes"])]
        summary = {
            "steps": counters.steps,
            "updates": counters.updates,
            "episodes": len(scores),
            "finished": finished,
            "last_score": scores[-1] if scores else None,
            "mean_score_last_10": float(np.mean(scores[-10:])) if scores else None,
        }
        if finished:
            atomic_write_text(self.logdir / "summary.json", json.dumps(summary, indent=1))
        return summary


def load_pack(
    dirs: Sequence[RunDir],
    seeds: Sequence[int],
    arrays: bool = True,
) -> list[tuple[Checkpoint, bytes, dict, dict]] | None:
    """The newest checkpoint step that every run of a pack holds and can read, loaded for each run
    as (checkpoint, state bytes, replay arrays, saved counters); None for a fresh start. With
    `arrays` False the checkpoints are only checked (:meth:`RunDir.verify`: state and replay None).

    A damaged checkpoint is skipped (an older one is tried), with a warning naming the bad file
    if an older one is then resumed. A step counts only if no run holds a later checkpoint saved
    without the others of this pack (it trained on apart: resuming the pack would throw that
    away). A fresh start happens only when the pack's first save was cut short: some run holds
    no checkpoint, every other holds one, saved by this very pack of `seeds`, and no run without
    one had a complete checkpoint before (:meth:`RunDir.check_fresh_start`). A damaged only
    checkpoint is no fresh start: a kill leaves a checkpoint whole or absent, never damaged.
    Raises CheckpointError if none can be read or a fresh start would erase covered records
    (each one line naming the file and what to do), ConfigError if the runs hold checkpoints
    at no common step (they trained apart).
    """
    held = [run.checkpoints() for run in dirs]  # newest first
    # A checkpoint saved by a pack without all of `seeds`: its run trained on apart from the others.
    apart = max(
        (c.step for h in held for c in h if not set(seeds) <= set(_pack(c) or seeds)), default=-1
    )
    problems: list[str] = []
    common = set.intersection(*({c.step for c in h} for h in held))
    for step in sorted((step for step in common if step >= apart), reverse=True):
        loaded = [
            load_newest(
                [c for c in h if c.step == step],
                run.load if arrays else run.verify,
                problems,
                warn=False,
            )
            for run, h in zip(dirs, held)
        ]
        if all(loaded):
            for problem in problems:
                _warn(f"{problem}; trying an older checkpoint")
            return loaded
    if _first_save_cut_short(held, seeds):
        for run, h in zip(dirs, held):
            if not h:
                run.check_fresh_start()
        return None
    if problems:
        where = dirs[0].logdir if len(dirs) == 1 else "the packed runs' logdirs"
        raise CheckpointError(
            f"no checkpoint can be resumed ({'; '.join(problems)}); restore what is damaged, "
            f"or move {where} aside (or pass a new --logdir) to start afresh"
        )
    found = ", ".join(
        f"{run.logdir}: {sorted(c.step for c in h) or 'none'}" for run, h in zip(dirs, held)
    )
    raise ConfigError(
        f"packed runs hold checkpoints at no common step ({found}); resume them one per process "
        "(--seeds-per-process 1) or use new logdirs"
    )


def load_newest(
    candidates: Sequence[Checkpoint],
    load: Callable[[Checkpoint], tuple],
    problems: list[str],
    warn: bool = True,
) -> tuple | None:
    """``(ckpt, *load(ckpt))`` for the first of `candidates` (newest first) that `load` reads;
    None if none.

    Each one that raises CheckpointError is skipped, its message appended to `problems`, with a
    warning naming the bad file (``eval`` and ``export``) unless `warn` is False
    (:func:`load_pack` warns only once it knows an older checkpoint is resumed).
    """
    for ckpt in candidates:
        try:
            return (ckpt, *load(ckpt))
        except CheckpointError as error:
            problems.append(str(error))
            if warn:
                _warn(f"{error}; trying an older checkpoint")
    return None


def settle_pack(dirs: Sequence[RunDir], seeds: Sequence[int]) -> int | None:
    """After a pack failed (its runs' locks still held): keep only the checkpoint a resume would
    take (:func:`load_pack`, checked without reading the arrays) in each run; returns its step.

    Why: :func:`deliverable` is what the *oldest* complete checkpoint covers, because a resume
    may fall back to it when the newest cannot be read. A failed run waits, perhaps for days,
    for ``--rerun-failed``; checked now and left alone, the newest is the one its resume takes,
    so dropping the older ones (and any newer one of a pack's save cut short, which that resume
    drops too) makes everything the newest covers deliverable now, and still final: the rerun
    cuts back only records written after it, which no store has taken. Those records (after the
    last checkpoint) are not delivered: the rerun trains that stretch again and records it anew.

    None, changing nothing, if the pack has no checkpoint it can resume from (a fresh start
    writes every record again); CheckpointError or ConfigError as :func:`load_pack`.
    """
    picked = load_pack(dirs, seeds, arrays=False)
    if picked is None:
        return None
    for run, (keep, *_) in zip(dirs, picked):
        for other in checkpoint.complete(run.checkpoint_dir):
            if other != keep:
                checkpoint.remove(other)
    return picked[0][0].step


def _first_save_cut_short(held: Sequence[Sequence[Checkpoint]], seeds: Sequence[int]) -> bool:
    """Some run holds no checkpoint, and every other one checkpoint, saved by this pack."""
    return (
        any(not h for h in held)
        and all(len(h) <= 1 for h in held)
        and all(_pack(h[0]) == list(seeds) for h in held if h)
    )


def _garbled(path: Path, size: int) -> str | None:
    """Why the first `size` bytes of JSONL file `path` are not whole JSON records, or None.

    Names the file and the byte offset of the first bad line (one that is not a JSON object,
    or the last one, if it does not end at `size` with a newline)."""
    start = 0
    try:
        for end, record in read_records(path, 0, size):
            if not isinstance(record, dict):
                break
            start = end
    except StorageError as error:  # the line does not parse; its message names the offset
        return str(error)
    if start == size:
        return None
    return f"{path} is damaged: the line at byte {start} is not a JSON record"


def _pack(ckpt: Checkpoint) -> list[int] | None:
    """Seeds of the pack that saved `ckpt`; None if its counters cannot be read."""
    try:
        return checkpoint.read_counters(ckpt).get("pack")
    except CheckpointError:
        return None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class EpisodeStats:
    """Per-env running score, length and maximum of each ``log/*`` value.

    :meth:`track` takes one observation of every env (arrays ``[envs, ...]``) and
    yields a record for each env whose episode ended at it.
    """

    def __init__(self, num_envs: int):
        self.score = np.zeros(num_envs)
        self.length = np.zeros(num_envs, np.int64)
        self.logs: list[dict[str, float]] = [{} for _ in range(num_envs)]

    def track(self, obs: Mapping[str, np.ndarray]) -> Iterator[dict[str, float]]:
        for i in range(len(self.score)):
            if obs["is_first"][i]:
                self.score[i], self.length[i], self.logs[i] = 0.0, 0, {}
            else:
                self.score[i] += float(obs["reward"][i])
                self.length[i] += 1
            for key in obs:
                if key.startswith("log/"):
                    name = key[4:]
                    self.logs[i][name] = max(self.logs[i].get(name, -np.inf), float(obs[key][i]))
            if obs["is_last"][i]:
                yield {"score": float(self.score[i]), "length": int(self.length[i]), **self.logs[i]}
