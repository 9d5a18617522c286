"""Logging for the workflow's scripts: everything, tracebacks included, goes to the rule's log file."""

from __future__ import annotations

import logging
import sys


def to_file(path: str) -> logging.Logger:
    logging.basicConfig(filename=path, filemode="w", level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    previous_hook = sys.excepthook

    def log_uncaught(kind, value, traceback):
        logging.getLogger("imbalance_study").critical("failed", exc_info=(kind, value, traceback))
        previous_hook(kind, value, traceback)

    sys.excepthook = log_uncaught
    return logging.getLogger("imbalance_study")
