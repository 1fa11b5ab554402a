"""`clipstudy report`: one or more studies' MLflow records -> tables, figures, report.md/.html, CSVs.

Arms are compared on the trial each selected on validation; test metrics are only ever reported.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from clipstudy.analysis import plots
from clipstudy.analysis.document import NA, Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from clipstudy.analysis.importance import importance_figure, parallel_coordinates, rebuild_search
from clipstudy.analysis.load import StudyRecord
from clipstudy.analysis.tables import arm_table, class_extremes, confused_pairs, protocol_table, seed_repeats
from clipstudy.errors import ConfigError
from clipstudy.tracking import read, runs
from clipstudy.tracking.schema import ARM_COLUMN, CONFUSION_FILE, PER_CLASS_FILE, STATUS_COLUMN

FORMATS = ("md", "html", "csv")
REPORT_ARTIFACT_DIR = "report"
PERCENT = ("test_acc", "test_acc5", "best_val_acc", "epoch1_train_acc", "epoch1_val_acc")
HEADERS = {
    "study": "study",
    "arm": "arm",
    "method": "method",
    "test_acc": "test acc %",
    "test_acc5": "top-5 %",
    "test_macro_f1": "macro-F1",
    "best_val_acc": "best val acc %",
    "epoch1_train_acc": "epoch-1 train %",
    "epoch1_val_acc": "epoch-1 val %",
    "trainable_params": "trainable params",
    "trainable_pct": "% trainable",
    "epoch_time_s": "s / epoch",
    "throughput_img_s": "img / s",
    "peak_mem_mb": "peak mem MB",
    "runs_on": "runs on",
    "compute": "compute",
    "completed": "completed",
    "pruned": "pruned",
    "failed": "failed",
}


@dataclass
class ReportResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)
    logged_to: list[str] = field(default_factory=list)
    """Parent runs the report was attached to as artifacts."""


def _fmt(value: object, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return format(value, spec)


def display_arms(arms: pd.DataFrame) -> pd.DataFrame:
    """The main table as text: percentages, thousands separators, `n/a` where a run lacks a metric."""
    shown = pd.DataFrame(index=arms.index)
    several = arms.study.nunique() > 1
    for column in ("study", "arm", "method"):
        if column != "study" or several:
            shown[HEADERS[column]] = arms[column].astype(str)
    for column in ("test_acc", "test_acc5", "test_macro_f1", *PERCENT[2:]):
        scale, spec = (1, ".4f") if column == "test_macro_f1" else (100, ".2f")
        shown[HEADERS[column]] = [_fmt(scale * v, spec) for v in arms[column]]
    shown[HEADERS["trainable_params"]] = [_fmt(v, ",.0f") for v in arms.trainable_params]
    shown[HEADERS["trainable_pct"]] = [_fmt(v, ".3g") for v in arms.trainable_pct]
    shown[HEADERS["epoch_time_s"]] = [_fmt(v, ".2f") for v in arms.epoch_time_s]
    shown[HEADERS["throughput_img_s"]] = [_fmt(v, ",.0f") for v in arms.throughput_img_s]
    shown[HEADERS["peak_mem_mb"]] = [_fmt(v, ",.0f") for v in arms.peak_mem_mb]
    shown[HEADERS["runs_on"]] = arms.runs_on.astype(str)
    spent = zip(arms.compute_h, arms.compute_unit, strict=True)
    shown[HEADERS["compute"]] = [f"{_fmt(hours, '.4f')} {unit}" for hours, unit in spent]
    for column in ("completed", "pruned", "failed"):
        shown[HEADERS[column]] = arms[column].astype(int).astype(str)
    return shown.reset_index(drop=True)


def _percent_table(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    shown = frame.copy()
    for column in columns:
        shown[column] = [_fmt(v, ".4f") for v in shown[column]]
    return shown.astype(str)


class ReportWriter:
    """Writes the files of one report into `folder` and collects the blocks of its text."""

    def __init__(self, folder: Path, formats: set[str]):
        self.folder = folder
        self.formats = formats
        self.blocks: list[Block] = []
        self.files: list[Path] = []

    def figure(self, fig: Figure, relative: str, caption: str) -> None:
        import matplotlib.pyplot as plt  # figures made through pyplot (Optuna's) must be released

        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        self.files.append(path)
        self.blocks.append(Image(Path(relative), caption))

    def csv(self, frame: pd.DataFrame, relative: str) -> None:
        if "csv" not in self.formats:
            return
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        self.files.append(path)

    def text(self, path_name: str, content: str) -> None:
        path = self.folder / path_name
        path.write_text(content, encoding="utf-8")
        self.files.append(path)


def check_records(records: list[StudyRecord]) -> None:
    """A study with no completed trial has nothing to compare: say so plainly, with its counts."""
    for record in records:
        statuses = (
            record.trials[STATUS_COLUMN].fillna("running") if STATUS_COLUMN in record.trials else pd.Series(dtype=str)
        )
        if not (statuses == "completed").any():
            counts = statuses.value_counts().to_dict()
            found = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trial runs at all"
            raise ConfigError(
                f"study '{record.name}' has no completed trial ({found}) in {record.tracking_uri}: there is nothing "
                f"to compare yet; finish it with `clipstudy run <study file> --resume`"
            )


def build_report(
    records: list[StudyRecord],
    out: str | Path,
    formats: tuple[str, ...] = FORMATS,
    metric: str = "val/acc",
    mode: str = "max",
    log_to_mlflow: bool = True,
) -> ReportResult:
    """Write the comparison of `records` into `out`; attach it to each study's parent run."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    check_records(records)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    writer = ReportWriter(folder, set(formats))
    arms = pd.concat([arm_table(r, metric, mode) for r in records], ignore_index=True)
    _overview(writer, records, arms)
    for record in records:
        _study_section(writer, record, arms[arms.study == record.name], metric, mode, several=len(records) > 1)
    title = "clipstudy report: " + ", ".join(r.name for r in records)
    if "md" in formats:
        writer.text("report.md", to_markdown(writer.blocks))
    if "html" in formats:
        writer.text("report.html", to_html(writer.blocks, folder, title))
    result = ReportResult(folder, writer.files, arms)
    if log_to_mlflow:
        for record in records:
            run_id = record.parent_run_id or (record.parent_run_ids[0] if record.parent_run_ids else None)
            if run_id:
                runs.log_folder(record.tracking_uri, run_id, folder, REPORT_ARTIFACT_DIR)
                result.logged_to.append(run_id)
    return result


def _overview(writer: ReportWriter, records: list[StudyRecord], arms: pd.DataFrame) -> None:
    names = ", ".join(r.name for r in records)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    writer.blocks += [
        Heading(f"clipstudy report: {names}", 1),
        Paragraph(
            f"Generated {when}. Each arm is represented by its best trial on validation; test metrics are "
            "reported, never used to choose. Compute counts every trial of the "
            "arm, pruned and failed ones included, as wall-clock hours times the GPUs (or CPUs) each held."
        ),
        Paragraph("Sources: " + "; ".join(f"{r.name}: {r.tracking_uri}, {_invocation(r)}" for r in records)),
        Heading("Arms side by side"),
        Table(display_arms(arms)),
    ]
    writer.csv(arms, "arms.csv")
    writer.figure(
        plots.accuracy_vs_params(arms),
        "figures/accuracy_vs_params.png",
        "Test accuracy of each arm's val-best trial against its trainable parameters; red stars: Pareto front",
    )
    repeats = pd.concat([seed_repeats(r.trials).assign(study=r.name) for r in records], ignore_index=True)
    if not repeats.empty:
        spread = zip(repeats["mean"], repeats["std"], strict=True)
        shown = repeats[["study", "arm", "config", "n"]].assign(
            **{"test acc % (mean ± std)": [f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in spread]}
        )
        writer.blocks += [Heading("Repeats over seeds"), Table(shown.astype(str))]
        writer.csv(repeats, "repeats.csv")


def _invocation(record: StudyRecord) -> str:
    if record.parent_run_id:
        return f"study run {record.parent_run_id}"
    return f"all {len(record.parent_run_ids)} study runs"


def _study_section(
    writer: ReportWriter, record: StudyRecord, arms: pd.DataFrame, metric: str, mode: str, several: bool
) -> None:
    prefix = f"{record.name}/" if several else ""
    writer.blocks.append(Heading(f"Study {record.name}"))
    writer.csv(_trial_table(record), f"{prefix}trials.csv")
    protocols = protocol_table(record, arms)
    if not protocols.empty:
        writer.blocks += [
            Paragraph("Protocol metrics of each arm's best trial (base-to-new, retention, WiSE-FT):"),
            Table(_percent_table(protocols, tuple(c for c in protocols if c != "arm"))),
        ]
        writer.csv(protocols, f"{prefix}protocols.csv")
    _best_model(writer, record, arms, prefix, mode)
    writer.figure(
        plots.learning_curves(record, arms),
        f"{prefix}figures/learning_curves.png",
        f"{record.name}: train (dashed) and val (solid) accuracy per epoch of each arm's best trial; epoch 0 is "
        "before training",
    )
    writer.figure(
        plots.search_trials(record),
        f"{prefix}figures/search_trials.png",
        f"{record.name}: every trial's val accuracy per epoch; pruned trials stop early (×)",
    )
    studies = {arm: rebuild_search(record, arm, metric, mode) for arm in sorted(record.trials[ARM_COLUMN].unique())}
    fig, importances = importance_figure(studies, f"{record.name}: hyperparameter importance per arm (fANOVA)")
    writer.figure(fig, f"{prefix}figures/importance.png", f"{record.name}: hyperparameter importance per arm")
    writer.csv(importances, f"{prefix}importance.csv")
    for arm, study in studies.items():
        view = parallel_coordinates(study, f"{record.name} / {arm}: the search")
        if view is not None:
            writer.figure(view, f"{prefix}figures/parallel_{arm}.png", f"{record.name} / {arm}: completed trials")


def _trial_table(record: StudyRecord) -> pd.DataFrame:
    keep = ["run_id", "start_time", "end_time"]
    keep += [c for c in record.trials if c.startswith(("tags.clipstudy.", "metrics.", "params."))]
    return record.trials[keep]


def _best_model(writer: ReportWriter, record: StudyRecord, arms: pd.DataFrame, prefix: str, mode: str) -> None:
    ranked = arms.dropna(subset=["best_val_acc"]).sort_values("best_val_acc", ascending=mode == "min")
    best = ranked.iloc[0]
    writer.blocks += [
        Heading(f"Best model: {best.arm} ({best.method})", 3),
        Paragraph(
            f"Selected on validation among all arms: val acc {_fmt(100 * best.best_val_acc, '.2f')}%, "
            f"test acc {_fmt(100 * best.test_acc, '.2f')}% (MLflow run {best.run_id})."
        ),
    ]
    per_class, confusion = _download_tables(record.tracking_uri, best.run_id)
    if per_class is None or confusion is None:
        writer.blocks.append(Paragraph(f"{NA}: run {best.run_id} has no per_class.csv / confusion_matrix.csv"))
        return
    top, bottom = class_extremes(per_class)
    pairs = confused_pairs(confusion)
    metrics = ("precision", "recall", "f1")
    writer.blocks += [
        Paragraph("The 10 best classes by F1:"),
        Table(_percent_table(top, metrics)),
        Paragraph("The 10 worst classes by F1:"),
        Table(_percent_table(bottom, metrics)),
        Paragraph("The most-confused class pairs (true → predicted):"),
        Table(_percent_table(pairs, ("share_of_true",))),
    ]
    writer.csv(top, f"{prefix}best_classes.csv")
    writer.csv(bottom, f"{prefix}worst_classes.csv")
    writer.csv(pairs, f"{prefix}confused_pairs.csv")
    writer.figure(
        plots.confusion_heatmap(confusion, f"{record.name} / {best.arm}: confusion matrix (test, row-normalised)"),
        f"{prefix}figures/confusion_matrix.png",
        f"Confusion matrix of the best model ({best.arm}) on the test split",
    )


def _download_tables(uri: str, run_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    with tempfile.TemporaryDirectory(prefix="clipstudy-report-") as folder:
        per_class = read.download_artifact(uri, run_id, PER_CLASS_FILE, folder)
        confusion = read.download_artifact(uri, run_id, CONFUSION_FILE, folder)
        return (
            pd.read_csv(per_class) if per_class else None,
            pd.read_csv(confusion, index_col=0) if confusion else None,
        )
