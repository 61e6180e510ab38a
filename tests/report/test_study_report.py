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
