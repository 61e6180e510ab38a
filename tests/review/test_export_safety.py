"""``review export`` never writes over what it reads: the audit folder or its dataset."""

import json

import pytest

from noisyseg.errors import ConfigError
from noisyseg.review import export_review
from noisyseg.review.store import DecisionStore

from ..conftest import run_cli


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["audit", "inside-audit", "dataset", "inside-dataset", "parent"])
def test_export_refuses_an_out_that_overlaps_an_input(audit_2d, where):
    aud, src, _, _ = audit_2d
    sid = json.loads((aud / "rank.json").read_text())["prediction_files"]
    first = sorted(sid)[0]
    store = DecisionStore(aud / "review.sqlite", cases=set(sid))
    store.add(first, "accept", reviewer="ann")
    store.close()
    out = {"audit": aud, "inside-audit": aud / "fixed", "dataset": src,
           "inside-dataset": src / "fixed", "parent": aud.parent}[where]
    before_aud, before_src = _snapshot(aud), _snapshot(src)
    code = run_cli(["review", "export", str(aud), "--out", str(out), "--overwrite"])
    assert code == 2
    assert _snapshot(aud) == before_aud and _snapshot(src) == before_src
    with pytest.raises(ConfigError, match="the input"):
        export_review(aud, out, overwrite=True)
    assert _snapshot(aud) == before_aud and _snapshot(src) == before_src
    assert not (aud / "fixed").exists() and not (src / "fixed").exists()


def test_export_message_names_the_input(audit_2d, capsys):
    aud, _, _, _ = audit_2d
    assert run_cli(["review", "export", str(aud), "--out", str(aud), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--out" in err and "is the input" in err and str(aud) in err
