"""The `clipstudy` command line."""

from __future__ import annotations

import contextlib
import enum
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clipstudy.errors import ClipstudyError, ClipstudyWarning, ConfigError, StudyInterrupted, TrialFailed

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
console = Console()
errors = Console(stderr=True)

USAGE_ERROR = 2
INTERRUPTED = 130
"""Exit code of a study stopped with Ctrl-C (128 + SIGINT, as shells report it)."""


class Listing(enum.StrEnum):
    methods = "methods"
    models = "models"
    datasets = "datasets"


def fail(error: ClipstudyError) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(1 if isinstance(error, TrialFailed) else USAGE_ERROR)


@contextlib.contextmanager
def shown_warnings() -> Iterator[None]:
    """Print each clipstudy warning once, as `warning: ...` on stderr; other warnings as Python shows them."""
    seen: set[str] = set()
    show = warnings.showwarning

    def print_once(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, ClipstudyWarning):
            show(message, category, filename, lineno, file, line)
        elif str(message) not in seen:
            seen.add(str(message))
            errors.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ClipstudyWarning)
        warnings.showwarning = print_once
        yield


def missing_extra(what: str, error: ImportError) -> typer.Exit:
    """Ray, MLflow and Optuna come with the 'study' extra; say so instead of a traceback."""
    extra = "pip install 'clipstudy[study]'"
    return fail(ClipstudyError(f"{what} needs the 'study' extra ({error.name} missing): {extra}"))


@app.command("ls")
def list_names(what: Listing) -> None:
    """List the registered methods, model architectures (open_clip and torchvision) or datasets."""
    if what is Listing.methods:
        from clipstudy.methods import METHODS

        for name in METHODS.names():
            console.print(f"{name:14s} {METHODS.get(name).description}", highlight=False)
    elif what is Listing.models:
        from clipstudy.models.build import describe_architectures

        rows = describe_architectures()
        width = max(len(name) for name, _, _ in rows)
        header = f"{'model.arch':{width}s} {'kind':10s} model.pretrained (besides none or a local file)"
        console.print(header, highlight=False, soft_wrap=True)
        for name, kind, tags in rows:
            console.print(f"{name:{width}s} {kind:10s} {', '.join(tags) or '-'}", highlight=False, soft_wrap=True)
    else:
        from clipstudy.data import DATASETS

        console.print("\n".join(DATASETS.names()), highlight=False)


class ProgressCallback:
    """Shows one bar per epoch."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = None

    def on_fit_start(self, trainer) -> None: ...

    def on_step_end(self, trainer, epoch: int, step: int, steps: int) -> None:
        if self.task is None or step == 1:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(f"epoch {epoch}/{trainer.num_epochs}", total=steps)
        self.progress.update(self.task, completed=step)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        main = ("train/loss", "train/acc", "val/loss", "val/acc")
        shown = {k: v for k, v in metrics.items() if k in main or k.startswith("train/loss_")}  # + loss terms
        text = "  ".join(f"{k} {v:.4f}" for k, v in shown.items())
        self.progress.console.print(f"epoch {epoch}: {text}", highlight=False)


def parameter_summary(trainer) -> Table:
    """Parameters by part; `total_params` counts the parts a prediction runs through."""
    table = Table("part", "trainable", "total", "in total_params", title="parameters")
    for part in trainer.model.param_parts():
        table.add_row(part.name, f"{part.trainable:,}", f"{part.total:,}", "yes" if part.counted else "no (not used)")
    return table


def resolve_arm(study, arm: str | None):
    if arm is not None:
        return study.arm(arm)
    if len(study.arms) == 1:
        return study.arms[0]
    raise ConfigError(
        f"study '{study.name}' has {len(study.arms)} arms; choose one with --arm "
        f"({', '.join(a.name for a in study.arms)})"
    )


@app.command()
def train(
    study_file: Annotated[Path, typer.Argument(help="A study YAML file.")],
    arm: Annotated[str | None, typer.Option(help="The arm to run (needed when the study has several).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key=value.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build everything, print, do not train.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write metrics, per-class table and weights here.")] = None,
) -> None:
    """Run one trial of a study arm here, without Ray or MLflow."""
    from clipstudy.studyfile import load_study, warn_unread_overrides

    try:
        with shown_warnings():
            study = load_study(study_file)
            chosen = resolve_arm(study, arm)
            cfg = study.arm_config(chosen, overrides=set_ or [], where=f"{study_file}: ")
            warn_unread_overrides([chosen], set_ or [])
        from clipstudy.engine import Trainer

        if dry_run:
            trainer = Trainer(cfg, prepare=False)  # builds or opens the image stores; extracts no features
            console.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), highlight=False)
            console.print(parameter_summary(trainer))
            console.print(f"trainable_params: {trainer.trainable_params}", highlight=False)
            console.print(f"total_params: {trainer.total_params}", highlight=False)
            console.print(
                f"device: {trainer.device}  epochs: {trainer.num_epochs}  cached features: {trainer.cached}",
                highlight=False,
            )
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            result = Trainer(cfg, [ProgressCallback(progress)]).fit()
    except ClipstudyError as error:
        raise fail(error) from None
    table = Table("metric", "value", title=f"{study.name} / {chosen.name} ({cfg.method})")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
    console.print(table)
    if out is not None:
        from clipstudy.tracking.artifacts import write_result

        console.print(f"results written to {write_result(result, out)}")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Study files or folders of them.")],
    cluster: Annotated[
        Path | None, typer.Option(help="A Ray cluster launcher config: also check resources against its node types.")
    ] = None,
) -> None:
    """Check study files without running anything (every problem, by file and field path)."""
    from clipstudy.study.feasibility import check, load_launcher_cluster
    from clipstudy.studyfile import load_study

    try:
        nodes = load_launcher_cluster(cluster) if cluster else None
    except ClipstudyError as error:
        errors.print(f"[bold red]invalid:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(USAGE_ERROR) from None
    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    failed = 0
    for file in files:
        try:
            with shown_warnings():
                study = load_study(file)
            if nodes:
                check(study, study.arms, nodes, where=f"{file}: ")
        except ClipstudyError as error:
            failed += 1
            errors.print(f"[bold red]invalid:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            continue
        trials = sum(arm.trials for arm in study.arms)
        fits = f"; fits {cluster}" if nodes else ""
        line = f"ok: {file} ({study.name}: {len(study.arms)} arms, {trials} trials{fits})"
        console.print(line, highlight=False, soft_wrap=True)
    if failed or not files:
        if not files:
            errors.print("no study files found")
        raise typer.Exit(USAGE_ERROR)


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="A study YAML file.")],
    arm: Annotated[list[str] | None, typer.Option(help="Run only these arms (repeatable).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key=value.")] = None,
    local: Annotated[bool, typer.Option(help="Start Ray on this machine (its GPU or its CPUs).")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: RAY_ADDRESS).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run of this study.")] = False,
    cluster: Annotated[
        Path | None,
        typer.Option(help="The cluster's launcher config: check resources against its node types (default: ask Ray)."),
    ] = None,
) -> None:
    """Run a study's search on Ray Tune and record it in MLflow."""
    try:
        from clipstudy.study.runner import RunOptions, run_study
    except ImportError as error:
        raise missing_extra("clipstudy run", error) from None
    config = str(cluster) if cluster else None
    try:
        options = RunOptions(
            arms=arm, overrides=set_, local=local, address=address, resume=resume, cluster_config=config
        )
        with shown_warnings():  # the study's and its --set keys' warnings, printed before Ray starts
            trials = run_study(study_file, options)
    except StudyInterrupted as error:
        errors.print(f"[bold yellow]stopped:[/] {escape(str(error))}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(INTERRUPTED) from None
    except ClipstudyError as error:
        raise fail(error) from None
    from clipstudy.analysis.summary import failure_note, print_summary

    print_summary(console, trials, trials.attrs.get("tracking_uri"), str(study_file))
    note, every_trial_failed = failure_note(trials)
    if note is not None:
        label = "[bold red]error:[/]" if every_trial_failed else "[bold yellow]warning:[/]"
        errors.print(f"{label} {escape(note)}", highlight=False, markup=True, soft_wrap=True)
    if every_trial_failed:  # nothing was learnt: a script or CI job running the study must see it
        raise typer.Exit(1)


@app.command()
def report(
    studies: Annotated[list[str], typer.Argument(help="Study files or study names (several: side by side).")],
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.html, CSVs and figures.")] = Path("report"),
    format_: Annotated[str, typer.Option("--format", help="Comma-separated: md, html, csv.")] = "md,html,csv",
    invocation: Annotated[
        str, typer.Option("--run", help="Which study run: latest, all, or a parent run id.")
    ] = "latest",
    workdir: Annotated[Path, typer.Option(help="Where the embedded MLflow store (mlflow.db) is.")] = Path("."),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: as `run` uses).")] = None,
    log: Annotated[bool, typer.Option(help="Attach the report to each study's parent run.")] = True,
) -> None:
    """Compare the arms of one or more studies from their MLflow record."""
    try:
        from clipstudy.analysis import build_report, load_record, resolve_study
    except ImportError as error:
        raise missing_extra("clipstudy report", error) from None
    formats = tuple(f.strip() for f in format_.split(",") if f.strip())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        records = [load_record(*resolve_study(ref, workdir, tracking_uri), invocation) for ref in studies]
        result = build_report(records, out, formats, log_to_mlflow=log)
    except ClipstudyError as error:
        raise fail(error) from None
    from clipstudy.analysis.report import display_arms
    from clipstudy.analysis.summary import print_table

    brief = ["arm", "method", "test acc %", "best val acc %", "trainable params", "compute"]
    shown = display_arms(result.arms)[[*(["study"] if result.arms.study.nunique() > 1 else []), *brief]]
    table = Table(*shown.columns, title="arms side by side (best trial on validation; all columns in the report)")
    for row in shown.itertuples(index=False):
        table.add_row(*row)
    print_table(console, table)
    for name in ("report.md", "report.html"):
        if (result.folder / name).exists():
            console.print(f"wrote {result.folder / name}", highlight=False)
    if result.logged_to:
        console.print(f"attached to study run(s) {', '.join(result.logged_to)} as report/", highlight=False)


@app.command()
def ui(
    study: Annotated[
        str | None, typer.Argument(help="A study file or study name: also print the URL of its runs.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to serve on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
    workdir: Annotated[Path, typer.Option(help="Where the embedded MLflow store (mlflow.db) is.")] = Path("."),
) -> None:
    """Start the MLflow UI on the studies' tracking store and print its address (Ctrl-C stops it)."""
    try:
        from clipstudy.analysis.ui import interrupted_by_stop_signals
    except ImportError as error:
        raise missing_extra("clipstudy ui", error) from None
    with interrupted_by_stop_signals():  # `kill` and a closed terminal stop the server as Ctrl-C does
        code = _serve_ui(study, host, port, workdir)
    if code:
        raise typer.Exit(1)


def _serve_ui(study: str | None, host: str, port: int, workdir: Path) -> int:
    """Start the UI, print where it is and wait for it; the server's exit code (0 when stopped by a signal)."""
    from clipstudy.analysis.ui import resolve_target, start_ui

    try:
        target = resolve_target(study, workdir)
        console.print(
            f"MLflow store: {target.tracking_uri} (the UI takes a few seconds to start)", soft_wrap=True, markup=False
        )
        server = start_ui(target, host, port)
    except ClipstudyError as error:
        raise fail(error) from None
    except KeyboardInterrupt:
        return 0  # stopped while starting: start_ui has stopped the server
    try:  # a stop signal can come at any point from here on, these lines included (once seen: exit 130)
        with server:
            console.print(f"MLflow UI: {server.address}", soft_wrap=True, markup=False)
            if server.study_url:
                console.print(f"study '{target.study}': {server.study_url}", soft_wrap=True, markup=False)
            if server.process is None:
                return 0  # the tracking server serves the UI itself
            console.print("Ctrl-C stops it", highlight=False)
            return server.wait()
    except KeyboardInterrupt:
        return 0  # the `with` has stopped the server


data_app = typer.Typer(no_args_is_help=True, help="The decoded-image stores trials read their image files from.")
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    study_file: Annotated[Path, typer.Argument(help="A study YAML file.")],
    arm: Annotated[str | None, typer.Option(help="Only this arm (default: every arm).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key=value.")] = None,
) -> None:
    """Build (or find) the decoded-image stores a study's trials read, with a progress bar, so that a cluster's
    first trials do not race to decode. Run it on every node whose trials read local disk (data.cache_dir)."""
    from clipstudy.data.augment import resolve_interpolation
    from clipstudy.engine.trainer import trial_data
    from clipstudy.methods import METHODS
    from clipstudy.models.build import build_model
    from clipstudy.studyfile import load_study

    table = Table("arm", "dataset", "split", "images", "stored at", "store", title=f"{study_file}: image stores")
    try:
        with shown_warnings():
            study = load_study(study_file)
        models: dict[str, tuple[int, str]] = {}
        for chosen in [study.arm(arm)] if arm else study.arms:
            cfg = study.arm_config(chosen, overrides=set_ or [], where=f"{study_file}: ")
            model_key = cfg.model.model_dump_json()
            if model_key not in models:  # the decode size and resampling are the model's
                built = build_model(cfg.model, "cpu")
                models[model_key] = (built.image_size, built.interpolation)
            size, default = models[model_key]
            resampling = resolve_interpolation(cfg.model.interpolation, default)
            bundle = trial_data(cfg, METHODS.get(cfg.method)(), size, resampling)
            for name in ("train", "val", "test"):
                split = getattr(bundle, name)
                where = split.key or ("not read" if not len(split) else "in memory (not image files)")
                table.add_row(
                    chosen.name, cfg.data.name, name, f"{len(split):,}", f"{split.images.shape[-1]} px", where
                )
    except ClipstudyError as error:
        raise fail(error) from None
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
