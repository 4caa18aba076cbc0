"""dreamerbench: analysis.

Load runs (:func:`load_runs`, from MLflow) and published scores (:func:`load_published`),
reduce them to final scores (dreamerbench.analysis.scores), aggregate with stratified-bootstrap
CIs (dreamerbench.analysis.metrics), and show them (dreamerbench.analysis.tables,
dreamerbench.analysis.plots; ``dreamerbench table`` / ``dreamerbench plot``).
"""

from dreamerbench.analysis.data import load_published, load_runs

__all__ = ["load_published", "load_runs"]
