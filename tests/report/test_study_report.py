import re

import pandas as pd

from noisyseg.report import Document, write_study_report
from noisyseg.study import StudyRunner, load_spec


def test_study_report_has_every_section_and_is_self_contained(tiny_spec, tmp_path):
    out = tmp_path / "study"
    StudyRunner(load_spec(tiny_spec), out, progress=False).run()
    md_path, html_path = write_study_report(out)
    md = md_path.read_text()
    for heading in ("Simulated label errors", "Test Dice by error condition", "Detection",
                    "Refurbishment"):
        assert f"## {heading}" in md, heading
    assert "Wilcoxon p" in md and "t-test p" in md
    # every linked figure exists
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert {"report_files/dice_vs_label_dice.png", "report_files/precision_recall.png",
            "report_files/suspects.png"} <= set(links)
    assert all((out / link).is_file() for link in links)
    html = html_path.read_text()
    assert "report_files/" not in html  # self-contained
    assert html.count("data:image/png;base64,") == len(links)
    # the effect table has one row per condition, with mean ± sd over the two seeds
    df = pd.read_parquet(out / "results.parquet")
    control = df[(df.error_model == "none")]["dice_mean"]
    assert f"{control.mean():.3f} ± {control.std(ddof=1):.3f} (2)" in md


def test_document_escapes_html_and_renders_markdown():
    doc = Document("t <1>")
    doc.heading("a & b")
    doc.text("`code` and **bold**")
    doc.table(pd.DataFrame({"x": ["<y>"], "n": [1]}), "cap")
    md, files = doc.markdown("f")
    assert "| x | n |" in md and "| <y> | 1 |" in md and not files
    html = doc.html()
    assert "t &lt;1&gt;" in html and "a &amp; b" in html and "&lt;y&gt;" in html
    assert "<code>code</code>" in html and "<b>bold</b>" in html


def test_a_grid_field_without_a_column_makes_separate_arms(tiny_spec, tmp_path):
    text = tiny_spec.read_text().replace("    audit.refurbish: [false, true]\n",
                                         "    audit.refurbish: [false, true]\n"
                                         "    audit.pseudo_from: [current, best]\n")
    tiny_spec.write_text(text)
    out = tmp_path / "study"
    StudyRunner(load_spec(tiny_spec), out, progress=False).run()
    md = write_study_report(out)[0].read_text()
    refurb = md.split("## Refurbishment")[1]
    assert "unet [audit.pseudo_from=best]" in refurb
    assert "unet [audit.pseudo_from=current]" in refurb


def test_detection_matrix_marks_the_best_detector_and_the_cells_below_chance():
    """Two error types x two seeds scored by two detectors; hand-made AP/AUROC."""
    from noisyseg.report.study import _matrix_section, _prepare

    rows = []
    for model, ap_loss, ap_vog, au_vog in (("natural", (0.9, 1.0), (0.3, 0.5), (0.4, 0.5)),
                                           ("dilate", (0.5, 0.7), (0.8, 0.8), (0.7, 0.9))):
        for seed in (0, 1):
            rows.append({"trial_id": f"{model}{seed}", "status": "ok", "name": model, "arch": "unet",
                         "error_model": model, "target_dice": float("nan"), "strength": 2.0,
                         "error_level": 0.3, "detector": "loss+vog", "refurbish": False,
                         "seed": seed, "ap_loss": ap_loss[seed], "ap_vog": ap_vog[seed],
                         "auroc_loss": 0.9, "auroc_vog": au_vog[seed]})
    doc = Document("t")
    _matrix_section(doc, _prepare(pd.DataFrame(rows)))
    tables = {v[1]: v[0] for k, v in doc.blocks if k == "table"}
    ap = tables["AP per error condition and detector."].set_index("condition")
    assert ap.loc["natural s=2 on 30%", "loss"] == "**0.950 ± 0.071**"
    assert ap.loc["natural s=2 on 30%", "vog"] == "0.400 ± 0.141"
    assert ap.loc["dilate s=2 on 30%", "vog"] == "**0.800 ± 0.000**"
    assert ap.loc["dilate s=2 on 30%", "chance"] == "0.30"
    best = tables["Best detector per error type (AP averaged over its error levels)."]
    assert dict(zip(best["error type"], best["best detector"], strict=True)) == {
        "natural": "loss", "dilate": "vog"}
    below = [v[0] for k, v in doc.blocks if k == "table" and "below chance" in v[1]][0]
    assert below[["condition", "detector", "AUROC"]].values.tolist() == [
        ["natural s=2 on 30%", "vog", "0.450"]]
    assert any(k == "figure" for k, _ in doc.blocks)


def test_the_noisy_baseline_may_be_a_run_of_other_detectors(tiny_spec, tmp_path):
    """The demo's part B: one arm of detectors watching, one refurbishing with another
    detector and no run without detectors. The refurbishment row still has its noisy
    baseline, and the refurbishing detector its detection row and PR curve."""
    text = tiny_spec.read_text()
    part_b = text[text.index("  - corrupt: [{model: dilate"):]
    tiny_spec.write_text(text.replace(part_b, """\
  - corrupt: [{model: dilate, strength: 2, fraction: 0.5, classes: [lv_cavity]}]
    audit.detectors: [[loss]]
    seed: [0, 1]
  - corrupt: [{model: dilate, strength: 2, fraction: 0.5, classes: [lv_cavity]}]
    audit.detectors: [[disagree]]
    audit.refurbish: [true]
    seed: [0, 1]
"""))
    out = tmp_path / "study"
    StudyRunner(load_spec(tiny_spec), out, progress=False).run()
    md = write_study_report(out)[0].read_text()
    df = pd.read_parquet(out / "results.parquet")
    noisy = df[(df.error_model == "dilate") & ~df.refurbish.astype(bool)]["dice_mean"].mean()
    row = next(ln for ln in md.split("## Refurbishment")[1].splitlines() if "| disagree |" in ln)
    assert f"| {noisy:.3f} |" in row  # the loss-watching runs are the noisy baseline
    detection = md.split("## Detection")[1].split("## Refurbishment")[0]
    assert "| disagree |" in detection and "| loss |" in detection
