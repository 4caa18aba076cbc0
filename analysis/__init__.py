"""dreamerbench: analysis.

Load runs (:func:`load_runs`, from MLflow) and published scores
(:func:`load_published`), reduce them to final scores (analysis.scores), aggregate with
stratified-bootstrap CIs (analysis.metrics), and show them (analysis.tables,
analysis.plots; ``dreamerbench table`` / ``dreamerbench plot``).
"""

from analysis.data import load_published, load_runs

__all__ = ["load_published", "load_runs"]
