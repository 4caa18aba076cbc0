"""Session-wide test settings."""

import os

# Most test time is XLA compiling small graphs for the CPU; LLVM at -O0 halves
# it and changes nothing the tests check. XLA reads the flag when its backend
# starts, so it is set before any test imports jax (subprocesses inherit it).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# submitit configures logging when first imported (logging.config.dictConfig), which
# closes every logging handler already installed; the one that importing orbax (through
# flax, dreamerbench.core.checkpoint) installs then closes the running test's captured stderr, and
# pytest dies ("lost sys.stderr"). Importing submitit here, before any test, avoids that.
import submitit  # noqa: E402,F401

# dm_control picks its OpenGL backend from MUJOCO_GL when it is first imported. Test
# modules import tests/custom_envs.py (which imports dm_control) at collection, and xdist
# workers collect every file, so without this a worker renders with no headless backend
# and aborts. Users' modules get the same from dreamerbench.suites.gym.DmEnv, which sets it first.
from dreamerbench.suites.dmc import headless_gl  # noqa: E402

headless_gl()


# The longest test files start first, so that with two workers (`make test`: one file per
# worker at a time) no long file is left to run alone at the end. Order from the
# `--durations` report of a full run; files not listed follow in their usual order.
LONGEST_FIRST = (
    "test_sweep_slurm.py",
    "test_mlflow_server.py",
    "test_train_packed.py",
    "test_sweep_packed.py",
    "test_train_command.py",
    "test_eval_command.py",
    "test_sweep_continue.py",
    "test_suites_train.py",
    "test_analysis_data.py",
    "test_agent_model.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
