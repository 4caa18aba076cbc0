"""`dreamerbench suites`: listing, details, errors naming the valid suites."""

import argparse

import pytest

from dreamerbench.suites import SUITES, cli


def _run(argv):
    parser = argparse.ArgumentParser(prog="dreamerbench")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_lists_every_suite(capsys):
    assert _run(["suites"]) == 0
    out = capsys.readouterr().out
    for name in SUITES:
        assert name in out
    assert "400,000 frames" in out


def test_shows_tasks_protocol_budget(capsys):
    _run(["suites", "atari100k"])
    out = capsys.readouterr().out
    assert "tasks (26): alien, amidar" in out
    assert '"sticky_prob": 0.0' in out and "100,000 agent steps = 400,000 frames" in out


def test_minecraft_says_not_verified_and_how_to_install(capsys):
    _run(["suites", "minecraft_diamond"])
    out = capsys.readouterr().out
    assert "NOT VERIFIED" in out and "pip install -e '.[minecraft]'" in out


def test_unknown_suite_lists_valid_names():
    with pytest.raises(ValueError, match="suite='atari' is unknown; allowed: atari100k, atari57"):
        _run(["suites", "atari"])


def test_dreamerbench_main_reports_the_error(capsys):
    experiments_cli = pytest.importorskip("dreamerbench.experiments.cli")
    pytest.importorskip(
        "dreamerbench.experiments.train_cli", reason="the train subcommand is not on this branch"
    )
    assert experiments_cli.main(["suites", "nope"]) == 2
    assert "allowed: atari100k" in capsys.readouterr().err
