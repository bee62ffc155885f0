"""Clinician review: people see what the model said, overrule judges, write better answers and pick
the better of two, and their decisions feed the next alignment cycle.

The pieces: ``models`` (SQLAlchemy schema; Alembic migrations in ``migrations/``), ``db``
(engines, sessions, migrations), ``auth`` (Argon2id passwords, sessions, CSRF, login limits),
``accounts`` (users, roles, groups), ``importing`` (run directories and JSONL into queues),
``queue`` (priorities, claims), ``reviewing`` (reviews, pairwise choices, adjudication with
version checks), ``audit``, ``agreement``, ``exports`` (labels, DPO, KTO, judge rows, audit),
``feedback`` (:func:`load_human_feedback` for the alignment loop) and ``web`` (the FastAPI app).

::

    from carealign.review import load_human_feedback
    feedback = load_human_feedback("review.db")      # or a URL, an export directory or export files
    rows, n_overridden = feedback.apply(judged_rows)

The web app (``carealign.review.web.create_app``) needs FastAPI; importing this package does not.
"""

from carealign.review.db import open_database
from carealign.review.exports import EXPORT_KINDS, export_rows, export_to_file
from carealign.review.feedback import HumanFeedback, HumanLabel, load_human_feedback
from carealign.review.importing import ImportReport, import_paths

__all__ = [
    "EXPORT_KINDS",
    "HumanFeedback",
    "HumanLabel",
    "ImportReport",
    "export_rows",
    "export_to_file",
    "import_paths",
    "load_human_feedback",
    "open_database",
]
