"""Review: go through an audit's suspects in the browser, decide, export a corrected dataset.

Public API: :func:`open_audit` (an audit folder as the review sees it), :class:`DecisionStore`
(the append-only decision log), :func:`make_app` (the web app), :func:`serve` (run it on a
local port), :func:`export_review` (the corrected dataset in its source layout).
"""

from noisyseg.review.app import TOKEN_HEADER, make_app
from noisyseg.review.audit import AuditView, open_audit
from noisyseg.review.export import DECISION_LOG, export_review
from noisyseg.review.server import ReviewServer, serve
from noisyseg.review.store import DECISIONS, Decision, DecisionStore

__all__ = ["DECISIONS", "DECISION_LOG", "TOKEN_HEADER", "AuditView", "Decision", "DecisionStore",
           "ReviewServer", "export_review", "make_app", "open_audit", "serve"]
