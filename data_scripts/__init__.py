"""Download scripts for the real datasets: ``python -m data_scripts.fetch NAME --root DIR``."""
