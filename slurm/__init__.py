"""Slurm: cluster profiles (profiles/*.yaml) and a real single-node cluster on localhost
(local/)."""
