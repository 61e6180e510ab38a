"""The study report: tables, figures and paired tests from a study folder.

Sections appear when the results hold what they need:

- *Simulated label errors*: one example per error model (clean vs noisy contours).
- *Test Dice by error condition* (study A): mean +- sd test Dice per architecture x error
  condition, test Dice against the training labels' Dice (like Heller et al.'s Figure 3), and
  each condition against the control (paired across seeds).
- *Detection matrix* (several detectors on several error types, e.g. the
  ``detection-matrix`` spec): AP and AUROC per error condition and detector, a heat map,
  the best detector per error type and the cells below chance.
- *Detection* (study B): AP / AUROC / precision / recall / F1 per detector, error type and
  level; precision-recall curves; AP over epochs; example suspects.
- *Refurbishment* (study B): test Dice of refurbished vs noisy baseline per error type and
  level, the share of the Dice lost to errors that refurbishment recovers, paired tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from noisyseg.plot import CLASS_COLOURS, plot_contour_grid  # noqa: E402
from noisyseg.report.document import Document  # noqa: E402
from noisyseg.report.stats import interpolated_precision, paired_test  # noqa: E402

__all__ = ["study_report", "write_study_report"]

_COVERED = ("grid.seed", "grid.corrupt", "grid.train.model", "grid.audit.detectors",
            "grid.audit.refurbish")
_MODE_COLOURS = {"none": "#000000", "natural": "#E69F00", "choppy": "#56B4E9",
                 "random_flip": "#009E73", "boundary": "#CC79A7", "dilate": "#D55E00",
                 "erode": "#0072B2", "shift": "#F0E442", "merge": "#882255", "omit": "#999999"}


def _run_file(out: Path, trial_id: str, name: str) -> Path:
    """A file of a trial's run folder (``DIR/trials/<id>/run/<name>``)."""
    return out / "trials" / trial_id / "run" / name


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    return f"{x:.{nd}f}" if isinstance(x, float | np.floating) else str(x)


def _p(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _msd(v: pd.Series, nd: int = 3) -> str:
    v = v.dropna().astype(float)
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{nd}f}"
    return f"{v.mean():.{nd}f} ± {v.std(ddof=1):.{nd}f}"


def _condition(row: pd.Series) -> str:
    if row["error_model"] == "none":
        return "control"
    td = row.get("target_dice")
    name = str(row["error_model"])
    mode, like = row.get("error_mode"), row.get("like")
    if isinstance(mode, str) and mode:
        name += f" ({mode})"
    if isinstance(like, str) and like:
        name += f" like {like}"
    s = (f"{name} @ Dice {td:.2f}" if td is not None and np.isfinite(td)
         else f"{name} s={row['strength']:g}")
    lvl = row["error_level"]
    return s if lvl >= 1 else f"{s} on {lvl:.0%}"


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in ("target_dice", "strength", "error_level", "train_label_dice", "dice_mean"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df["strength_key"] = np.where(df["target_dice"].notna(), np.nan, df["strength"])
    df["condition"] = df.apply(_condition, axis=1)
    # grid fields that the standard columns do not show (e.g. audit.pseudo_from, lr) make
    # arms of their own: keep them apart in every table
    extra = [c for c in df.columns if c.startswith("grid.") and not c.startswith(_COVERED)]
    df["variant"] = df.apply(lambda r: ", ".join(
        f"{c[5:]}={r[c]}" for c in extra if pd.notna(r[c])), axis=1) if extra else ""
    df["arm"] = np.where(df["variant"] != "", df["arch"] + " [" + df["variant"] + "]",
                         df["arch"])
    # sort key: control first, then error model, then severity
    sev = np.where(df["target_dice"].notna(), 1 - df["target_dice"], df["strength"].fillna(0))
    df["_order"] = list(zip(df["error_model"] != "none", df["error_model"], df["error_level"],
                            sev, strict=True))
    return df


def _conditions(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df.sort_values("_order", kind="stable")["condition"]))


def _training_runs(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct training (no refurbishment; prefer runs without detectors)."""
    base = ok[~ok["refurbish"].astype(bool)]
    plain = base[base["detector"] == "none"]
    if not plain.empty:
        return plain
    return base.drop_duplicates(["arm", "condition", "seed"])


# ------------------------------------------------------------------ sections
def _errors_section(doc: Document, ok: pd.DataFrame, out: Path) -> None:
    picks = []
    for _model, g in ok[ok["error_model"] != "none"].groupby("error_model", sort=True):
        g = g.sort_values("_order").iloc[::-1]
        for _, r in g.iterrows():
            p = _run_file(out, r["trial_id"], "examples.npz")
            if p.is_file():
                picks.append((r, p))
                break
    if not picks:
        return
    imgs, clean, noisy, titles = [], [], [], []
    for r, p in picks:
        z = np.load(p)
        imgs.append(z["images"][0])
        clean.append(z["clean"][0])
        noisy.append(z["noisy"][0])
        titles.append(r["condition"])
    names = _class_names(out, picks[0][0]["trial_id"])
    fig = plot_contour_grid(np.stack(imgs), [np.stack(clean), np.stack(noisy)], titles=titles,
                            labels=("clean", "noisy"), class_names=names)
    doc.heading("Simulated label errors")
    doc.text("One corrupted training mask per error model, at the most severe setting in the "
             "study (solid: clean mask; dashed: the mask the network was trained on).")
    doc.figure(fig, "errors.png", "Clean vs simulated noisy training masks.")


def _class_names(out: Path, trial_id: str) -> list[str]:
    try:
        m = json.loads(_run_file(out, trial_id, "metrics.json").read_text())
        return list(m.get("class_names") or [])
    except (OSError, json.JSONDecodeError):
        return []


def _effect_section(doc: Document, ok: pd.DataFrame) -> None:
    runs = _training_runs(ok)
    conds = _conditions(runs)
    archs = list(dict.fromkeys(runs["arm"]))
    if len(conds) < 2 and len(archs) < 2:
        return
    doc.heading("Test Dice by error condition")
    doc.text("Networks trained on noisy training masks, scored on clean test masks. Cells: "
             "mean ± sd of the test mean foreground Dice over seeds (n per cell in "
             "brackets); *label Dice*: mean Dice of the training masks to the clean ones.")
    rows = []
    for c in conds:
        g = runs[runs["condition"] == c]
        row = {"condition": c, "label Dice": _msd(g["train_label_dice"])}
        for a in archs:
            ga = g[g["arm"] == a]["dice_mean"]
            row[a] = f"{_msd(ga)} ({ga.notna().sum()})" if len(ga) else ""
        rows.append(row)
    doc.table(pd.DataFrame(rows), "Test Dice (mean ± sd) per architecture and error condition.")

    # Dice vs training-label Dice (Heller et al. 2018, Figure 3)
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 4), squeeze=False,
                             sharey=True)
    lo = float(np.nanmin([runs["train_label_dice"].min(), runs["dice_mean"].min()]))
    lo = max(0.0, min(lo, 0.8) - 0.03)
    for ax, a in zip(axes[0], archs, strict=True):
        ga = runs[runs["arm"] == a]
        for model, gm in ga.groupby("error_model", sort=False):
            col = _MODE_COLOURS.get(model, "#444444")
            ax.scatter(gm["train_label_dice"], gm["dice_mean"], s=10, color=col, alpha=0.35)
            agg = gm.groupby("condition").agg(x=("train_label_dice", "mean"),
                                              y=("dice_mean", "mean"), sd=("dice_mean", "std"))
            ax.errorbar(agg["x"], agg["y"], yerr=agg["sd"].fillna(0), fmt="o", color=col,
                        label="control" if model == "none" else model, capsize=3, ms=6)
        ax.plot([lo, 1], [lo, 1], ls="--", color="grey", lw=0.8)
        ax.set_xlim(lo, 1.005)
        ax.set_title(a)
        ax.set_xlabel("training-label Dice (to clean)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test Dice (clean test masks)")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    doc.figure(fig, "dice_vs_label_dice.png",
               "Test Dice against the Dice of the training labels (dashed: equal). Points "
               "above the line: the network beats its own training labels.")

    # per class
    cls_cols = [c for c in runs.columns if c.startswith("dice_") and c != "dice_mean"]
    if cls_cols:
        per = runs.groupby(["arm", "condition"], sort=False)[cls_cols].mean().reset_index()
        per["_k"] = per["condition"].map({c: i for i, c in enumerate(conds)})
        per = per.sort_values(["arm", "_k"]).drop(columns="_k")
        per.columns = [c.removeprefix("dice_") for c in per.columns]
        doc.table(per.round(3), "Mean test Dice per class.")

    # paired tests against the control
    tests = []
    for a in archs:
        ga = runs[runs["arm"] == a]
        ctrl = ga[ga["condition"] == "control"].set_index("seed")["dice_mean"]
        if ctrl.empty:
            continue
        for c in conds:
            if c == "control":
                continue
            arm = ga[ga["condition"] == c].set_index("seed")["dice_mean"]
            seeds = sorted(set(ctrl.index) & set(arm.index))
            if not seeds:
                continue
            r = paired_test(ctrl.loc[seeds].to_numpy(), arm.loc[seeds].to_numpy())
            tests.append({"architecture": a, "condition": c, "pairs": r.n,
                          "control": _fmt(r.mean_a), "noisy": _fmt(r.mean_b),
                          "Δ Dice": _fmt(r.mean_diff), "t-test p": _p(r.t_p),
                          "Wilcoxon p": _p(r.wilcoxon_p)})
    if tests:
        doc.table(pd.DataFrame(tests), "Each error condition against the control, paired by "
                  "seed (two-sided paired t-test and Wilcoxon signed-rank test).")


def _detectors(ok: pd.DataFrame) -> list[str]:
    return [c.removeprefix("ap_") for c in ok.columns if c.startswith("ap_")]


def _detection_section(doc: Document, ok: pd.DataFrame, out: Path) -> None:
    dets = _detectors(ok)
    noisy = ok[ok["error_model"] != "none"]
    if not dets or noisy.empty:
        return
    doc.heading("Detection")
    doc.text("Each training sample gets one score per detector (higher = more suspect); the "
             "truth is which samples were corrupted. AP and AUROC rank the scores; precision, "
             "recall and F1 judge the flags of the flag rule. Chance AP equals the error level.")
    rows = []
    for det in dets:
        g = _watching(noisy, det)
        for (cond, arch), gc in g.groupby(["condition", "arm"], sort=False):
            rows.append({"condition": cond, "architecture": arch, "detector": det,
                         "chance AP": _fmt(float(gc["error_level"].iloc[0]), 2),
                         "AP": _msd(gc[f"ap_{det}"]), "AUROC": _msd(gc[f"auroc_{det}"]),
                         "precision": _msd(gc[f"precision_{det}"]),
                         "recall": _msd(gc[f"recall_{det}"]), "F1": _msd(gc[f"f1_{det}"]),
                         "runs": len(gc), "_o": gc["_order"].iloc[0]})
    table = pd.DataFrame(rows).sort_values(["_o", "detector"], kind="stable").drop(columns="_o")
    doc.table(table, "Detection quality (mean ± sd over runs).")
    _pr_figure(doc, noisy, dets, out)
    _epoch_figure(doc, noisy, dets, out)
    _suspects_figure(doc, noisy, dets, out)


def _matrix(noisy: pd.DataFrame, dets: list[str], metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean, sd) of ``metric`` per condition (rows, in study order) and detector (columns)."""
    conds = _conditions(noisy)
    mean = pd.DataFrame(index=conds, columns=dets, dtype=float)
    sd = mean.copy()
    for c in conds:
        g = noisy[noisy["condition"] == c]
        for d in dets:
            v = pd.to_numeric(g[f"{metric}_{d}"], errors="coerce").dropna()
            mean.loc[c, d] = v.mean() if len(v) else np.nan
            sd.loc[c, d] = v.std(ddof=1) if len(v) > 1 else np.nan
    return mean, sd


def _matrix_section(doc: Document, ok: pd.DataFrame) -> None:
    """Detectors x error conditions at a glance (when a study scores several detectors on
    several error types): AP and AUROC matrices, the best detector per error type, and the
    cells where a detector ranks the corrupted samples below chance."""
    dets = _detectors(ok)
    noisy = ok[(ok["error_model"] != "none") & ~ok["refurbish"].astype(bool)]
    noisy = noisy[noisy["error_level"] < 1]
    if len(dets) < 2 or noisy["error_model"].nunique() < 2:
        return
    doc.heading("Detection matrix")
    ap, ap_sd = _matrix(noisy, dets, "ap")
    au, au_sd = _matrix(noisy, dets, "auroc")
    chance = noisy.groupby("condition")["error_level"].first().reindex(ap.index)
    runs = noisy.groupby("condition")["seed"].nunique().reindex(ap.index)
    doc.text(f"Every cell: mean ± sd over {int(runs.min())}-{int(runs.max())} seeds; the best "
             "detector of each row in bold. Chance AP equals the error level (the share of "
             "corrupted training samples); chance AUROC is 0.5.")
    for mean, sd, name in ((ap, ap_sd, "AP"), (au, au_sd, "AUROC")):
        rows = []
        for c in mean.index:
            best = mean.loc[c].max()
            row = {"condition": c}
            if name == "AP":
                row["chance"] = f"{chance[c]:.2f}"
            for d in dets:
                m, e = mean.loc[c, d], sd.loc[c, d]
                txt = "" if not np.isfinite(m) else (f"{m:.3f}" if not np.isfinite(e)
                                                     else f"{m:.3f} ± {e:.3f}")
                row[d] = f"**{txt}**" if txt and round(m, 3) == round(best, 3) else txt
            rows.append(row)
        doc.table(pd.DataFrame(rows), f"{name} per error condition and detector.")
    fig, ax = plt.subplots(figsize=(1.1 * len(dets) + 3.2, 0.32 * len(ap) + 1.4))
    im = ax.imshow(ap.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (r, c), v in np.ndenumerate(ap.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(dets)), dets, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(ap)), [f"{c}  (chance {chance[c]:.2f})" for c in ap.index], fontsize=7)
    fig.colorbar(im, ax=ax, label="average precision", fraction=0.03)
    fig.tight_layout()
    doc.figure(fig, "detection_matrix.png", "Average precision per error condition (rows) and "
               "detector (columns), mean over seeds.")
    # best detector per error type (mean AP over its levels), and cells below chance
    by_type = noisy.groupby("error_model", sort=False)
    best_rows = []
    for model, g in by_type:
        m, _ = _matrix(g, dets, "ap")
        avg = m.mean(axis=0)
        order = avg.sort_values(ascending=False)
        best_rows.append({"error type": model, "best detector": order.index[0],
                          "mean AP": f"{order.iloc[0]:.3f}",
                          "runner-up": f"{order.index[1]} ({order.iloc[1]:.3f})" if len(order) > 1 else "",
                          "worst": f"{order.index[-1]} ({order.iloc[-1]:.3f})"})
    doc.table(pd.DataFrame(best_rows), "Best detector per error type (AP averaged over its "
              "error levels).")
    below = [{"condition": c, "detector": d, "AP": f"{ap.loc[c, d]:.3f}",
              "chance AP": f"{chance[c]:.2f}", "AUROC": f"{au.loc[c, d]:.3f}"}
             for c in ap.index for d in dets
             if np.isfinite(au.loc[c, d]) and au.loc[c, d] < 0.5]
    if below:
        doc.table(pd.DataFrame(below), "Cells where a detector ranks the corrupted samples "
                  "below chance (mean AUROC < 0.5): it scores the corrupted samples as the "
                  "cleaner ones.")
    else:
        doc.text("No detector ranks below chance (mean AUROC < 0.5) in any cell.")


def _scores(out: Path, trial_id: str) -> pd.DataFrame | None:
    p = _run_file(out, trial_id, "scores.csv")
    if not p.is_file():
        return None
    s = pd.read_csv(p)
    return s if s["corrupted"].notna().all() else None


def _watching(g: pd.DataFrame, det: str) -> pd.DataFrame:
    """The runs where ``det`` scored: those without refurbishment when there are any (a
    detector watching an unchanged training), else those that refurbished."""
    g = g[g[f"ap_{det}"].notna()]
    plain = g[~g["refurbish"].astype(bool)]
    return plain if not plain.empty else g


def _pr_figure(doc: Document, noisy: pd.DataFrame, dets: list[str], out: Path) -> None:
    noisy = noisy[noisy[[f"ap_{d}" for d in dets]].notna().any(axis=1)]
    conds = _conditions(noisy)[:8]
    if not conds:
        return
    cols = min(4, len(conds))
    rows = int(np.ceil(len(conds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    grid = np.linspace(0, 1, 101)
    colours = dict(zip(dets, CLASS_COLOURS, strict=False))
    for ax, cond in zip(axes.ravel(), conds, strict=False):
        g = noisy[noisy["condition"] == cond]
        for det in dets:
            curves = []
            for tid in _watching(g, det)["trial_id"]:
                s = _scores(out, tid)
                if s is None:
                    continue
                s = s[s["detector"] == det]
                if s.empty or s["corrupted"].nunique() < 2:
                    continue
                curves.append(interpolated_precision(s["corrupted"].astype(bool).to_numpy(),
                                                     s["score"].to_numpy(), grid))
            if curves:
                ax.plot(grid, np.mean(curves, axis=0), color=colours[det],
                        label=f"{det} (n={len(curves)})")
        lvl = float(g["error_level"].iloc[0])
        ax.axhline(lvl, color="grey", ls=":", lw=0.8)
        ax.set_title(cond, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left")
    for ax in axes.ravel()[len(conds):]:
        ax.axis("off")
    fig.tight_layout()
    doc.figure(fig, "precision_recall.png", "Precision-recall curves of the detectors "
               "(interpolated precision averaged over runs; dotted: chance).")


def _epoch_figure(doc: Document, noisy: pd.DataFrame, dets: list[str], out: Path) -> None:
    frames = []
    for _, r in noisy.iterrows():
        p = _run_file(out, r["trial_id"], "score_history.csv")
        if p.is_file():
            h = pd.read_csv(p)
            if "average_precision" in h:
                h["error_model"] = r["error_model"]
                frames.append(h)
    if not frames:
        return
    h = pd.concat(frames)
    models = list(dict.fromkeys(h["error_model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.2), squeeze=False,
                             sharey=True)
    colours = dict(zip(dets, CLASS_COLOURS, strict=False))
    for ax, m in zip(axes[0], models, strict=True):
        for det, g in h[h["error_model"] == m].groupby("detector"):
            agg = g.groupby("epoch")["average_precision"].mean()
            ax.plot(agg.index + 1, agg.values, marker=".", color=colours.get(det, "k"), label=det)
        ax.set_title(m)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("average precision")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    doc.figure(fig, "ap_by_epoch.png", "How early errors become separable: AP of each "
               "detector's running score after each epoch (mean over runs and levels).")


def _suspects_figure(doc: Document, noisy: pd.DataFrame, dets: list[str], out: Path) -> None:
    lead = "vog" if "vog" in dets else dets[0]
    cand = noisy[noisy[f"ap_{lead}"].notna()].sort_values(["seed", "error_level"],
                                                          ascending=[True, False])
    for _, r in cand.iterrows():
        p = _run_file(out, r["trial_id"], "suspects.npz")
        if not p.is_file():
            continue
        z = np.load(p)
        n = min(4, len(z["images"]))
        titles = [f"#{i + 1} {z['sample_ids'][i]} "
                  f"({'corrupted' if z['corrupted'][i] else 'clean'})" for i in range(n)]
        fig = plot_contour_grid(z["images"][:n], [z["given"][:n], z["predicted"][:n]],
                                titles=titles, labels=("given mask", "model prediction"),
                                class_names=_class_names(out, r["trial_id"]))
        doc.text(f"Top suspects of `{z['detector']}` in run *{r['name']}*.")
        doc.figure(fig, "suspects.png", "Example suspects: the training samples the detector "
                   "ranks highest, with the mask they were given and the model's prediction.")
        return


def _refurbish_section(doc: Document, ok: pd.DataFrame) -> None:
    ref = ok[ok["refurbish"].astype(bool)]
    if ref.empty:
        return
    base_all = ok[~ok["refurbish"].astype(bool)]
    doc.heading("Refurbishment")
    doc.text("Flagged training masks replaced by the model's own predictions during training. "
             "*noisy*: same errors, no refurbishment (no detector; else the same detector; else "
             "any detector, as detectors do not change training); *clean*: the control of the "
             "same architecture and seed; *recovered*: (refurbished − noisy) / (clean − noisy), "
             "the share of the Dice lost to the errors that refurbishment wins back. Tests pair "
             "runs by seed.")
    rows = []
    def _pick(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
        """The rows of the same variant when there are any, else those of no variant."""
        same = rows[rows["variant"] == variant]
        return same if not same.empty else rows[rows["variant"] == ""]

    for (cond, arm, det), g in ref.groupby(["condition", "arm", "detector"], sort=False):
        arch, var = g["arch"].iloc[0], g["variant"].iloc[0]
        same = base_all[(base_all["condition"] == cond) & (base_all["arch"] == arch)]
        base = _pick(same[same["detector"] == "none"], var)
        if base.empty:
            base = _pick(same[same["detector"] == det], var)
        if base.empty:  # detectors only watch: any run of these errors without refurbishment
            base = _pick(same, var)
        ctrl = _pick(base_all[(base_all["condition"] == "control") & (base_all["arch"] == arch)],
                     var)
        ctrl = ctrl.groupby("seed")["dice_mean"].mean()
        b = base.groupby("seed")["dice_mean"].mean()
        a = g.groupby("seed")["dice_mean"].mean()
        seeds = sorted(set(a.index) & set(b.index))
        r = paired_test(b.loc[seeds].to_numpy(), a.loc[seeds].to_numpy()) if seeds else None
        cs = sorted(set(seeds) & set(ctrl.index))
        rec = ""
        if cs:
            lost = float((ctrl.loc[cs] - b.loc[cs]).mean())
            won = float((a.loc[cs] - b.loc[cs]).mean())
            rec = f"{won / lost:.0%}" if lost > 0.005 else "(no loss)"
        rows.append({"condition": cond, "architecture": arm, "detector": det,
                     "clean": _fmt(float(ctrl.mean())) if len(ctrl) else "",
                     "noisy": _fmt(r.mean_a) if r else "", "refurbished": _fmt(float(a.mean())),
                     "Δ Dice": _fmt(r.mean_diff) if r else "", "recovered": rec,
                     "t-test p": _p(r.t_p) if r else "", "Wilcoxon p": _p(r.wilcoxon_p) if r else "",
                     "train masks before → after": f"{_fmt(g['refurb_dice_before'].mean())} → "
                     f"{_fmt(g['refurb_dice_after'].mean())}" if "refurb_dice_before" in g else "",
                     "_o": g["_order"].iloc[0]})
    table = pd.DataFrame(rows).sort_values(["_o", "detector"], kind="stable").drop(columns="_o")
    doc.table(table, "Test Dice with and without refurbishment.")


# ------------------------------------------------------------------ entry points
def study_report(out: str | Path) -> Document:
    """Build the report :class:`Document` of a study folder.

    The sections (see the module docstring) appear when the finished trials hold what they
    need; nothing is written.

    Parameters
    ----------
    out : str or Path
        The study folder (with ``study.json`` and ``trials/``).

    Returns
    -------
    Document
        Titled ``noisyseg study: <name>``.

    Raises
    ------
    ConfigError
        ``out`` is not a study folder.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "study.json").write_text(json.dumps({"name": "demo", "trials": []}))
    >>> doc = study_report(d)
    >>> doc.title, doc.blocks
    ('noisyseg study: demo', [('p', 'No finished trials yet (0 of 0).')])
    """
    from noisyseg.study import collect_results, read_study, stale_trials

    out = Path(out)
    meta = read_study(out)
    df = collect_results(out)
    stale = stale_trials(out)
    doc = Document(f"noisyseg study: {meta.get('name', out.name)}")
    n_total = len(meta.get("trials", []))
    if meta.get("description"):
        doc.text(meta["description"])
    if df.empty:
        doc.text(f"No finished trials yet (0 of {n_total}).")
        return doc
    df = _prepare(df)
    ok = df[df["status"] == "ok"]
    failed = df[df["status"] != "ok"]
    secs = pd.to_numeric(df.get("trial_seconds"), errors="coerce").sum()
    doc.text(f"**{len(ok)}** of {n_total} trials finished, **{len(failed)}** failed, "
             f"{n_total - len(df)} not run yet; {secs / 60:.1f} trial-minutes of compute "
             f"(executor: {meta.get('executor', '?')}). Reproduce with "
             f"`noisyseg study run {meta.get('spec', 'SPEC')} --out DIR`; every number below "
             f"comes from `results.parquet`, one row per trial with its config and seed.")
    _errors_section(doc, ok, out)
    _effect_section(doc, ok)
    _matrix_section(doc, ok)
    _detection_section(doc, ok, out)
    _refurbish_section(doc, ok)
    if not failed.empty:
        doc.heading("Failed trials")
        doc.table(failed[["trial_id", "name", "error"]].fillna(""),
                  "Re-run the study to retry them (--no-retry-failed to skip).")
    if stale:
        doc.heading("Stale results")
        doc.text(f"{len(stale)} finished trial(s) in `trials/` belong to an earlier version of "
                 "the spec (their config is no longer in the grid); they are kept but left out "
                 "of every table above.")
        doc.table(pd.DataFrame(stale))
    return doc


def write_study_report(out: str | Path) -> tuple[Path, Path]:
    """Write the study report into the study folder.

    Writes ``report.md`` (+ ``report_files/``) and a self-contained ``report.html`` into
    ``out`` (see :func:`study_report` and :meth:`Document.write`).

    Parameters
    ----------
    out : str or Path
        The study folder.

    Returns
    -------
    md_path, html_path : Path
        The two files written.

    Raises
    ------
    ConfigError
        ``out`` is not a study folder.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "study.json").write_text(json.dumps({"name": "demo", "trials": []}))
    >>> md, page = write_study_report(d)
    >>> md.name, page.name, md.read_text().splitlines()[0]
    ('report.md', 'report.html', '# noisyseg study: demo')
    """
    return study_report(out).write(out)
