"""dreamerbench: DreamerV3 in JAX inside a benchmark and experiment-management suite.

One import name over the project's rooms (each a folder of the repository):
``dreamerbench.core`` (the ground floor), ``dreamerbench.suites``, ``dreamerbench.agent``,
``dreamerbench.experiments``, ``dreamerbench.analysis``; docs/architecture.md says who may
import whom. Importing this package is cheap (no JAX, no environment library).
"""

from importlib import metadata

try:
    __version__ = metadata.version("dreamerbench")
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
