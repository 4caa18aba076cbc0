"""The built wheel: one top-level package with its data, working where a lab keeps its own code.

The wheel is built from a copy of the sources (pyproject's package-dir folders) with a version of
its own, ``<version>+wheeltest``, and installed into a fresh venv that also sees this
environment's packages (JAX, MLflow, ...), the editable install of the checkout among them. The
commands then run from a directory holding its own ``agent/``, ``analysis/``, ``experiments/``
and ``suites/`` packages (each raises if imported) that is also on PYTHONPATH: a lab's folders
must not shadow ours. The wheel's version, and module files under the venv, prove that the
wheel's code runs rather than the checkout's.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_PACKAGES = ("agent", "analysis", "experiments", "suites")


def _check(argv: list[str]) -> str:
    """Runs a setup step; its stdout, or a failure showing its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


def _build_wheel(out: Path) -> tuple[Path, str]:
    """Builds the wheel from a copy of the sources in ``out``; returns it and its version."""
    pyproject = (REPO / "pyproject.toml").read_text()
    project = tomllib.loads(pyproject)
    version = project["project"]["version"] + "+wheeltest"
    source = out / "source"
    source.mkdir()
    # setuptools writes build/ and *.egg-info next to pyproject.toml: never into the checkout.
    for folder in project["tool"]["setuptools"]["package-dir"].values():
        shutil.copytree(  # a subpackage's folder may lie inside one copied already
            REPO / folder,
            source / folder,
            ignore=shutil.ignore_patterns("__pycache__"),
            dirs_exist_ok=True,
        )
    shutil.copy(REPO / project["project"]["readme"], source)
    (source / "pyproject.toml").write_text(
        re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject, count=1)
    )
    _check(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(out / "wheels"), str(source)]
    )
    (wheel,) = (out / "wheels").glob("dreamerbench-*.whl")
    return wheel, version


def _make_venv(path: Path) -> Path:
    """A venv at ``path`` that sees the packages of the Python running the tests; its python."""
    _check([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)])
    python = path / "bin" / "python"
    purelib = _check(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).strip()
    # --system-site-packages reaches the base interpreter's packages only; when the tests run in
    # a venv, its site-packages (with their .pth files) come after the new venv's own.
    ours = [p for p in site.getsitepackages() if not p.startswith(sys.base_prefix)]
    lines = [f"import site; site.addsitedir({p!r})\n" for p in ours]
    Path(purelib, "zz_parent_site.pth").write_text("".join(lines))
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    wheel, version = _build_wheel(out)
    python = _make_venv(out / "venv")
    _check([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    lab = out / "lab"
    for name in LAB_PACKAGES:
        (lab / name).mkdir(parents=True)
        (lab / name / "__init__.py").write_text(
            f"raise ImportError('the lab\\'s own {name}/ was imported instead of dreamerbench')\n"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env.update(
        PATH=f"{python.parent}{os.pathsep}{env['PATH']}",
        VIRTUAL_ENV=str(out / "venv"),
        PYTHONPATH=str(lab),
    )
    return SimpleNamespace(
        wheel=wheel, version=version, venv=out / "venv", python=python, lab=lab, env=env, out=out
    )


def run(installed, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs ``argv`` from the lab directory with the venv first on PATH."""
    return subprocess.run(
        argv, cwd=installed.lab, env=installed.env, capture_output=True, text=True, timeout=timeout
    )


def test_the_wheel_holds_one_package_with_its_specs_and_profiles(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        (record,) = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
        files = [line.split(",")[0] for line in wheel.read(record).decode().splitlines()]
    dist_info = f"dreamerbench-{installed.version}.dist-info"
    assert {f.split("/")[0] for f in files} == {"dreamerbench", dist_info}
    for folder, pattern in (("experiments", "*.yaml"), ("slurm/profiles", "*.yaml")):
        expected = {f"dreamerbench/{folder}/{p.name}" for p in (REPO / folder).glob(pattern)}
        assert expected and expected <= set(files), folder
    for room in ("core", "suites", "agent", "experiments", "analysis", "slurm"):
        assert f"dreamerbench/{room}/__init__.py" in files


def test_version_and_suites_run_beside_a_labs_own_packages(installed):
    command = shutil.which("dreamerbench", path=installed.env["PATH"])
    assert command == str(installed.python.parent / "dreamerbench")
    done = run(installed, "dreamerbench", "--version")
    assert (done.returncode, done.stdout) == (0, f"dreamerbench {installed.version}\n"), done.stderr
    done = run(installed, "dreamerbench", "suites")
    assert done.returncode == 0, done.stderr
    assert re.search(r"(?m)^atari100k +26 tasks", done.stdout)


def _notebook_imports() -> list[str]:
    notebook = json.loads((REPO / "notebooks" / "analysis.ipynb").read_text())
    imports = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    imports.append(ast.unparse(node))
    return imports


def test_the_notebooks_imports_come_from_the_wheel(installed):
    imports = _notebook_imports()
    assert any("dreamerbench" in line for line in imports), imports
    # The lab's own packages are on the path and would break any import that reaches them.
    trap = run(installed, str(installed.python), "-c", "import experiments")
    assert "the lab's own experiments/ was imported" in trap.stderr
    script = "\n".join(
        [
            *imports,
            "import json, sys",
            "files = {n: getattr(m, '__file__', None) for n, m in sys.modules.items()",
            "         if n == 'dreamerbench' or n.startswith('dreamerbench.')}",
            "print(json.dumps(files))",
        ]
    )
    done = run(installed, str(installed.python), "-c", script)
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)
    assert "dreamerbench.analysis" in files
    venv = installed.venv.resolve()
    elsewhere = {n: f for n, f in files.items() if f and venv not in Path(f).resolve().parents}
    assert not elsewhere, f"imported from outside the venv: {elsewhere}"


def test_sweep_finds_the_packaged_example_spec(installed):
    store = f"sqlite:///{installed.out / 'sweep.db'}"
    done = run(
        installed, "dreamerbench", "sweep", "atari100k", "--dry-run", "--tracking-uri", store
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sweep atari100k: 130 runs (atari100k)"), done.stdout[:300]
    assert "dry run: nothing created or submitted" in done.stdout
    assert sorted(p.name for p in installed.lab.iterdir()) == sorted(LAB_PACKAGES)


def test_a_train_run_records_the_installed_version(installed):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{installed.out / 'train.db'}"
    done = run(
        installed,
        "dreamerbench",
        "train",
        "--suite",
        "dmc_proprio",
        "--task",
        "cartpole_balance",
        "--size",
        "debug",
        "--steps",
        "64",
        "--logdir",
        str(installed.out / "run"),
        "--tracking-uri",
        store,
        # Nothing is trained in 64 steps; the run is recorded with its tags all the same.
        "--set",
        "run.envs=1",
        "--set",
        f"run.compile_cache={installed.out / 'jax-cache'}",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(store)
    (run_,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run_.data.tags["dreamerbench.version"] == installed.version
