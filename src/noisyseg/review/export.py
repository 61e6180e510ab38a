"""``noisyseg review export``: the reviewed dataset, written in its source layout and geometry.

Every case keeps its given mask except those whose pseudo-label a reviewer accepted; cases
sent back for re-annotation keep their given mask and are listed. The folder trains as it
is: ``noisyseg train --data FIXED`` (``nnunet:FIXED`` for an nnU-Net source, which nnU-Net
trains on too). The records (``decisions.csv``, ``reannotate.csv``, ``review.json``) go where
``noisyseg corrupt`` keeps its own: ``noisyseg/`` inside an nnU-Net or Decathlon folder, the
top of a folder dataset.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data import source_path
from noisyseg.data.layouts import write_relabelled
from noisyseg.data.outdir import atomic_dir, check_out_dir
from noisyseg.review.audit import AuditView, open_audit
from noisyseg.review.store import DecisionStore

__all__ = ["DECISION_LOG", "export_review"]

log = logging.getLogger("noisyseg")

#: The decision log's file name inside the audit folder.
DECISION_LOG = "review.sqlite"


def _tables(view: AuditView, store: DecisionStore) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """(decisions.csv: one row per decided case in rank order, reannotate.csv, accepted ids)."""
    score = f"score_{view.primary}"
    latest = pd.DataFrame([d.to_dict() for d in store.latest().values()],
                          columns=["sample_id", "decision", "note", "reviewer", "time", "seq"])
    dec = latest.drop(columns="seq").merge(
        view.cases[["sample_id", "rank", score, "flagged", "corrupted"]], on="sample_id")
    dec = dec.sort_values("rank", ignore_index=True)
    dec["label_written"] = np.where(dec["decision"] == "accept", "pseudo-label", "given")
    if dec["corrupted"].isna().all():
        dec = dec.drop(columns="corrupted")
    re = dec.loc[dec["decision"] == "reannotate", ["sample_id", "note", "reviewer", "time"]]
    return dec, re.reset_index(drop=True), set(dec.loc[dec["decision"] == "accept", "sample_id"])


def export_review(folder: str | Path, out: str | Path, *, data: str | None = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write the reviewed dataset of audit ``folder`` to ``out`` (see module docstring).

    Nothing is written when anything fails (a temporary folder is renamed at the end).

    Parameters
    ----------
    folder : str or Path
        The audit folder (its decisions in ``review.sqlite``).
    out : str or Path
        The folder to write.
    data : str, optional
        The audited dataset's source when it has moved since the audit.
    overwrite : bool, default False
        Replace a non-empty ``out``.

    Returns
    -------
    dict of str to object
        What ``review.json`` holds (``n_cases``, ``n_accepted``, ``n_kept``, ...).

    Raises
    ------
    DataError
        Not an audit folder, its dataset or a pseudo-label unreadable.
    ConfigError
        A non-empty ``out`` without ``overwrite``; an ``out`` that is, contains or lies inside
        the audit folder or its dataset (refused whatever ``overwrite`` says).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.run import rank_run
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> (d / "probs").mkdir()
    >>> for sid, m in zip(ds.sample_ids, ds.masks):
    ...     np.save(d / "probs" / f"{sid}.npy", 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1)
    >>> _ = rank_run(data="synthetic-echo:n=4,size=32,seed=0", probs=[d / "probs"], out=d / "audit",
    ...              workers=1, n_suspects=2, pseudo_labels=True)
    >>> rec = export_review(d / "audit", d / "reviewed")
    >>> rec["n_cases"], rec["n_accepted"]
    (4, 0)
    >>> tmp.cleanup()
    """
    check_out_dir(out, overwrite=overwrite, inputs=[folder])
    view = open_audit(folder, data=data)
    inputs = [folder, source_path(view.data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    log_path = Path(folder) / DECISION_LOG
    if not log_path.is_file():
        log.warning("review: %s has no decisions yet (%s); exporting every given mask",
                    folder, DECISION_LOG)
    store = DecisionStore(log_path) if log_path.is_file() else None
    if store is None:
        dec = pd.DataFrame(columns=["sample_id", "decision", "note", "reviewer", "time"])
        re, accepted = dec[["sample_id", "note", "reviewer", "time"]], set()
    else:
        dec, re, accepted = _tables(view, store)
        store.close()
    ds = view.ds
    counts = dec["decision"].value_counts().to_dict() if len(dec) else {}
    record = {"audit": str(Path(folder).resolve()), "data": view.data, "layout": ds.layout,
              "n_cases": len(ds), "n_reviewed": int(len(dec)),
              "n_accepted": int(counts.get("accept", 0)), "n_kept": int(counts.get("keep", 0)),
              "n_reannotate": int(counts.get("reannotate", 0)),
              "exported": datetime.now(UTC).isoformat(timespec="seconds"),
              "labels": "given masks; the reviewer-accepted pseudo-labels in their place"}
    pos = {s: i for i, s in enumerate(ds.sample_ids)}
    accepted_idx = sorted(pos[s] for s in accepted)

    manifest = pd.DataFrame({"sample_id": list(ds.sample_ids), "split": ds.split})
    manifest["label"] = np.where(manifest["sample_id"].isin(list(accepted)), "pseudo-label", "given")
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        dst = write_relabelled(ds, tmp, np.asarray(accepted_idx, dtype=np.int64),
                               view.read_pseudo, manifest=manifest,
                               records={"review.json": record}, clean=ds.has_clean_labels)
        dec.to_csv(dst / "decisions.csv", index=False)
        re.to_csv(dst / "reannotate.csv", index=False)
    return record
