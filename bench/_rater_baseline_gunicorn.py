"""gunicorn config (-c) of bench_rater_http.py's baseline server: the same command line as the product's, and each
worker, once the Django application is loaded, swaps in the study-row-lock rater service (_rater_baseline)."""

import sys
from pathlib import Path


def post_worker_init(worker) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _rater_baseline import install

    install()
    worker.log.info("rater baseline (study row lock) installed")
