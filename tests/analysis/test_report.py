import re

import mlflow
import pytest
from typer.testing import CliRunner

from clipstudy.analysis import arm_table, build_report, load_record
from clipstudy.analysis.report import display_arms
from clipstudy.cli import app
from clipstudy.errors import ClipstudyError
from tests.analysis.conftest import FakeTrial, fixture_trials, write_study

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(shared_store, tmp_path_factory):
    """One report of the fixture study, built (and attached to its study run) once for the tests that read it."""
    uri, ids, _ = shared_store
    out = tmp_path_factory.mktemp("report")
    return build_report([load_record("fixture_study", uri)], out), uri, ids


def test_every_figure_is_a_non_empty_png(report):
    result, _, _ = report
    figures = {p.name for p in result.folder.rglob("*.png")}
    assert figures == {
        "accuracy_vs_params.png",
        "learning_curves.png",
        "search_trials.png",
        "importance.png",
        "confusion_matrix.png",
        "parallel_probe.png",  # lora has a single completed trial: no search to draw across
    }
    for path in result.folder.rglob("*.png"):
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, path


def test_markdown_and_html_hold_the_table_and_the_best_model(report):
    result, _, ids = report
    markdown = (result.folder / "report.md").read_text()
    assert "| probe" in markdown and "65.00" in markdown and "85.00" in markdown
    assert "80.00" not in markdown  # the test-best probe trial is not the one shown
    assert "3.5000 CPU-h" in markdown and "0.0100 device-h" in markdown
    assert "n/a" in markdown  # zero-shot recorded no top-5
    assert "Best model: lora (lora)" in markdown and ids["lora/3"] in markdown
    assert "c03" in markdown and "c05" in markdown  # the most-confused pair
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (result.folder / image).is_file(), image
    page = (result.folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(list(result.folder.rglob("*.png")))
    assert 'src="figures' not in page and "65.00" in page


def test_csvs_carry_the_numbers(report):
    import pandas as pd

    result, _, _ = report
    arms = pd.read_csv(result.folder / "arms.csv").set_index("arm")
    assert arms.loc["probe", "test_acc"] == pytest.approx(0.65)
    assert arms.loc["lora", "failed"] == 1
    worst = pd.read_csv(result.folder / "worst_classes.csv")
    assert worst["class"].iloc[0] == "c11" and len(worst) == 10
    pairs = pd.read_csv(result.folder / "confused_pairs.csv")
    assert pairs.iloc[0][["true", "predicted", "count"]].tolist() == ["c03", "c05", 4]
    importance = pd.read_csv(result.folder / "importance.csv")
    assert set(importance.arm) <= {"probe", "lora"}


def test_the_report_is_attached_to_the_study_run(report):
    result, uri, ids = report
    assert result.logged_to == [ids["parent"]]
    names = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(ids["parent"], "report")}
    assert {"report/report.md", "report/report.html", "report/arms.csv", "report/figures"} <= names


def test_missing_metrics_show_na_instead_of_crashing(shared_store):
    uri, _, _ = shared_store
    table = display_arms(arm_table(load_record("fixture_study", uri)))
    zs = table[table.arm == "zs"].iloc[0]
    assert zs["top-5 %"] == "n/a" and zs["epoch-1 val %"] == "n/a" and zs["test acc %"] == "28.00"


def test_two_studies_side_by_side(store, tmp_path):
    uri, _, workdir = store
    write_study(uri, "second_study", [fixture_trials()[3]], workdir / "second")
    records = [load_record("fixture_study", uri), load_record("second_study", uri)]
    result = build_report(records, tmp_path / "both", formats=("md", "csv"), log_to_mlflow=False)
    assert list(result.arms.study) == ["fixture_study"] * 3 + ["second_study"]
    assert (result.folder / "second_study" / "figures" / "learning_curves.png").is_file()
    assert "| study" in (result.folder / "report.md").read_text()
    assert not (result.folder / "report.html").exists()


def test_a_study_without_completed_trials_says_so(store, tmp_path):
    uri, _, workdir = store
    pruned = FakeTrial("a", "lora", "pruned", 60, [0.1, 0.2])
    write_study(uri, "unfinished", [pruned, pruned], workdir / "unfinished")
    with pytest.raises(ClipstudyError, match=r"'unfinished' has no completed trial \(2 pruned\)"):
        build_report([load_record("unfinished", uri)], tmp_path / "r")


def test_unknown_format_is_rejected(shared_store, tmp_path):
    uri, _, _ = shared_store
    with pytest.raises(ClipstudyError, match=r"unknown report format.*pdf"):
        build_report([load_record("fixture_study", uri)], tmp_path / "r", formats=("md", "pdf"))


def test_cli_report_writes_the_files_and_prints_the_table(store, tmp_path):
    _, _, workdir = store
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["report", "fixture_study", "--workdir", str(workdir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "probe" in result.output and "65.00" in result.output
    assert (out / "report.html").is_file() and (out / "arms.csv").is_file()


def test_cli_report_on_an_unknown_study_exits_2_listing_known_ones(shared_store, tmp_path):
    _, _, workdir = shared_store
    result = CliRunner().invoke(app, ["report", "nope", "--workdir", str(workdir), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "known studies: fixture_study" in result.output


def test_cli_report_without_a_store_names_the_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["report", "quickstart", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no MLflow store" in result.output and "mlflow.db" in result.output
