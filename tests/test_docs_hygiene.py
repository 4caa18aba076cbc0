"""Issue "A lab's first week", item 13: the docs and the developer tools name no folder of the
development machine; the examples agree with each other; ``python -m bench.learn`` takes
``--frames`` and stops in one line on Ctrl-C and on a missing published directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.learn import main as learn_main

REPO = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|root|home)/")


def tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed]


def test_docs_and_tool_defaults_name_no_folder_of_the_development_machine():
    files = tracked("README.md", "docs/*.md", "tools/*", "bench/*")
    assert any(f.name == "compare_reference.py" for f in files)
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        if path.suffix in (".md", ".py", ".sh")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert found == []


def train_examples(path: Path) -> list[str]:
    """Each ``dreamerbench train`` command in `path`'s code blocks, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [
        " ".join(line.split())
        for line in text.splitlines()
        if "dreamerbench train " in line and "--logdir" in line and not line.startswith(("`", "|"))
    ]


def test_the_same_logdir_comes_with_the_same_train_command_in_readme_and_docs():
    """README and docs/custom_env.md trained gym's CartPole in runs/cartpole (the README's DMC
    cartpole logdir) at another size: following both, the second run was refused."""
    by_logdir: dict[str, set[str]] = {}
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for command in train_examples(path):
            logdir = re.search(r"--logdir (\S+)", command).group(1)
            by_logdir.setdefault(logdir, set()).add(command.removeprefix("PYTHONPATH=. "))
    assert "runs/cartpole_gym" in by_logdir
    assert {logdir: c for logdir, c in by_logdir.items() if len(c) > 1} == {}


def default_sigint() -> None:
    """In a child before it runs: SIGINT as a terminal gives it. A shell without job control
    starts `&` jobs with SIGINT ignored, and children inherit that, so a test suite started in
    the background would otherwise test nothing but the ignored signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def learn(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.learn", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize("command", ["curves", "plot"])
def test_bench_learn_refuses_a_missing_published_directory_in_one_line(tmp_path, command):
    missing = tmp_path / "no-such-folder"
    process = learn(command, "--out", str(tmp_path / "out"), "--published-dir", str(missing))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and out == ""
    assert err.splitlines() == [
        f"bench.learn: error: --published-dir {missing} is not a directory; give the folder of "
        "the published SUITE-dreamerv3.json.gz files"
    ]
    assert not (tmp_path / "out").exists()  # nothing trained before the check


def test_bench_learn_frames_sets_the_frames_of_each_run(tmp_path, monkeypatch):
    """``--frames`` becomes each run's ``--steps`` (frames / action repeat, 1 for dmc_proprio)."""
    started = []
    monkeypatch.setattr("bench.learn.check_published", lambda protocol, source: None)
    monkeypatch.setattr(
        "bench.learn.subprocess.Popen", lambda command, **kw: started.append(command) or 1 / 0
    )
    with pytest.raises(ZeroDivisionError):
        learn_main(["curves", "--out", str(tmp_path), "--frames", "3000", "--tasks", "x"])
    (command,) = started
    assert command[command.index("--steps") + 1] == "3000" and "x" in command


def test_bench_learn_stops_in_one_line_on_ctrl_c(tmp_path):
    """Ctrl-C reaches the terminal's whole process group: the benchmark and its training."""
    out, published = tmp_path / "out", tmp_path / "published"
    published.mkdir()
    (published / "dmc_proprio-dreamerv3.json.gz").touch()  # read only once the runs are done
    process = learn(
        *("curves", "--out", str(out), "--tasks", "cartpole_swingup", "--frames", "1000000"),
        *("--published-dir", str(published)),
        start_new_session=True,  # its own group, as a terminal's foreground job
        preexec_fn=default_sigint,  # as a terminal's job, even under a suite started with `&`
    )
    deadline = time.time() + 120
    while not (out / "train-cartpole_swingup-0.log").exists():  # the training process started
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1 and stdout == "", stderr
    assert stderr.splitlines() == [
        "bench.learn curves: interrupted; the same command resumes the runs from their checkpoints"
    ]
