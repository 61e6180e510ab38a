"""``noisyseg review export``: the reviewed dataset, written in its source layout and geometry.

Every case keeps its given mask except those whose pseudo-label a reviewer accepted; cases
sent back for re-annotation keep their given mask and are listed. The folder trains as it
is: ``noisyseg train --data FIXED`` (``nnunet:FIXED`` for an nnU-Net source, which nnU-Net
trains on too). The records (``decisions.csv``, ``reannotate.csv``, ``review.json``) go where
``noisyseg corrupt`` keeps its own: ``noisyseg/`` inside an nnU-Net or Decathlon folder, the
top of a folder dataset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data import CaseDataset, SegDataset, source_path, write_folder
from noisyseg.data.layouts import CaseWriter
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

    ``data`` names the audited dataset when it has moved since the audit. Nothing is
    written when anything fails (a temporary folder is renamed at the end). Returns what
    ``review.json`` holds.

    Raises
    ------
    DataError
        Not an audit folder, its dataset or a pseudo-label unreadable.
    ConfigError
        A non-empty ``out`` without ``overwrite``; an ``out`` that is, contains or lies inside
        the audit folder or its dataset (refused whatever ``overwrite`` says).
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
    record = {"audit": str(Path(folder).resolve()), "data": view.data, "layout": _layout(ds),
              "n_cases": len(ds), "n_reviewed": int(len(dec)),
              "n_accepted": int(counts.get("accept", 0)), "n_kept": int(counts.get("keep", 0)),
              "n_reannotate": int(counts.get("reannotate", 0)),
              "exported": datetime.now(UTC).isoformat(timespec="seconds"),
              "labels": "given masks; the reviewer-accepted pseudo-labels in their place"}
    pos = {s: i for i, s in enumerate(ds.sample_ids)}
    accepted_idx = sorted(pos[s] for s in accepted)

    def records(dst: Path) -> None:
        dec.to_csv(dst / "decisions.csv", index=False)
        re.to_csv(dst / "reannotate.csv", index=False)
        (dst / "review.json").write_text(json.dumps(record, indent=2))

    manifest = pd.DataFrame({"sample_id": list(ds.sample_ids), "split": ds.split})
    manifest["label"] = np.where(manifest["sample_id"].isin(list(accepted)), "pseudo-label", "given")
    if isinstance(ds, SegDataset):
        masks = ds.masks.copy()
        for i in accepted_idx:
            masks[i] = view.read_pseudo(i, ds.masks[i])
        write_folder(replace(ds, masks=masks), out, manifest=manifest, extra=records,
                     overwrite=overwrite, inputs=inputs)
        return record
    assert isinstance(ds, CaseDataset)
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        writer = CaseWriter(ds, tmp, unchanged="given", clean=ds.has_clean_labels)
        take = set(accepted_idx)
        for i in range(len(ds)):
            image = ds.read_image(i)[0] if ds.generator is not None else None
            if i in take:
                given, geom = ds.read_label(i)
                writer.write(i, view.read_pseudo(i, given), geom, image)
            else:
                writer.write(i, None, ds.label_geometry(i), image)
        writer.finish(manifest, {})
        records(writer.records)
    return record


def _layout(ds: SegDataset | CaseDataset) -> str:
    return ds.layout if isinstance(ds, CaseDataset) else "folder"
