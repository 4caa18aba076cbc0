"""Session-wide test settings."""

import os

# Most test time is XLA compiling small graphs for the CPU; LLVM at -O0 halves
# it and changes nothing the tests check. XLA reads the flag when its backend
# starts, so it is set before any test imports jax (subprocesses inherit it).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

# submitit configures logging when first imported (logging.config.dictConfig), which
# closes every logging handler already installed; the one that importing orbax (through
# flax, agent.checkpoint) installs then closes the running test's captured stderr, and
# pytest dies ("lost sys.stderr"). Importing submitit here, before any test, avoids that.
import submitit  # noqa: E402,F401
