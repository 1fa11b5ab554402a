"""`clipstudy ui`: the MLflow UI on a study's store, checked in headless Chromium on the rendered page."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from clipstudy.analysis import ui
from clipstudy.cli import app
from clipstudy.errors import ConfigError
from clipstudy.tracking.schema import ARM, METHOD, STATUS
from tests.analysis.conftest import FakeTrial, write_study
from tests.analysis.headless_chromium import Chromium, chromium_path
from tests.conftest import new_store

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
STUDY = "ui_study"
# The last val/acc of each trial is what the runs table shows; values exact in binary, distinct from each other.
TRIALS = {"lora/t0": 0.8125, "linear_probe/t1": 0.6875, "full_ft/t2": 0.90625}
VAL_ACC, RUN_NAME = "metrics.`val/acc`", "attributes.`Run Name`"

# Every rendered row of the runs grid as {column id: text}. The grid draws a row in several containers
# (pinned run-name column, scrolled columns), joined here by the row index.
ROWS_JS = """(() => {
  const rows = new Map();
  for (const row of document.querySelectorAll('.ag-row[row-index]')) {
    const index = Number(row.getAttribute('row-index'));
    const cells = rows.get(index) || {};
    for (const cell of row.querySelectorAll('[col-id]')) {
      const column = cell.getAttribute('col-id');
      const shown = column === 'attributes.`Run Name`' ? cell.querySelector('a') : cell;  // the name is a link
      cells[column] = shown ? shown.innerText.trim() : '';
    }
    rows.set(index, cells);
  }
  return [...rows.entries()].sort((a, b) => a[0] - b[0]).map(entry => entry[1]);
})()"""
# The grid's column ids in the order shown (the grid places header cells by style, not by DOM order).
HEADERS_JS = """[...document.querySelectorAll('.ag-header-cell[col-id][aria-colindex]')]
  .sort((a, b) => a.getAttribute('aria-colindex') - b.getAttribute('aria-colindex'))
  .map(header => header.getAttribute('col-id'))"""
# The expand buttons of the run-name cells: a study run's + that shows its trials.
EXPAND_JS = """(() => {
  const buttons = document.querySelectorAll('.ag-row [col-id="attributes.`Run Name`"] button');
  buttons.forEach(button => button.click());
  return buttons.length;
})()"""


def _trials() -> list[FakeTrial]:
    return [
        FakeTrial(name.split("/")[0], name.split("/")[0], "completed", 60, [0.25, val], final={"test/acc": val - 0.5})
        for name, val in TRIALS.items()
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _squeezed(text: str) -> str:
    """Text without whitespace: the CLI's console wraps long lines anywhere."""
    return "".join(text.split())


def _rows_text(rows: list[dict[str, str]]) -> list[str]:
    return [row.get(RUN_NAME, "") for row in rows]


def _row(rows: list[dict[str, str]], run_name: str) -> dict[str, str]:
    found = [row for row in rows if run_name in row.get(RUN_NAME, "")]
    assert len(found) == 1, f"{run_name} is in {len(found)} rows of {_rows_text(rows)}"
    return found[0]


@pytest.fixture
def study_store(tmp_path, monkeypatch, template_store) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = new_store(template_store, tmp_path)
    write_study(uri, STUDY, _trials(), tmp_path)
    write_study(uri, "other_study", _trials()[:1], tmp_path / "other")
    return tmp_path


def test_ui_shows_the_trials_under_their_study_run_with_val_acc(study_store, tmp_path):
    if chromium_path() is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian's chromium package, apt-get)")
    target = ui.resolve_target(STUDY, study_store)
    screenshot = ARTIFACTS / "ui_runs.png"
    with ui.start_ui(target, "127.0.0.1", _free_port(), log=tmp_path / "ui.log") as server:
        assert server.study_url.startswith(f"{server.address}/#/experiments/{target.experiment_id}/runs?")
        with Chromium(tmp_path / "profile", width=1920, height=720) as page:
            try:
                page.navigate(server.study_url)
                collapsed = page.wait_for(f"(rows => rows.some(r => r['{RUN_NAME}'] === '{STUDY}') && rows)({ROWS_JS})")
                assert page.evaluate(EXPAND_JS) == 1  # one study run, nothing else to expand
                trial_names = json.dumps(list(TRIALS))
                expanded = page.wait_for(
                    f"(rows => {trial_names}.every(name => rows.some(r => (r['{RUN_NAME}'] || '').includes(name)))"
                    f" && rows)({ROWS_JS})"
                )
                headers = page.evaluate(HEADERS_JS)
            finally:
                page.screenshot(screenshot)
    # grouped: the study run alone until expanded, then its trials right under it
    assert _rows_text(collapsed) == [STUDY]
    assert _rows_text(expanded)[0] == STUDY and len(expanded) == 1 + len(TRIALS)
    for name, val in TRIALS.items():
        row = _row(expanded, name)
        assert row[VAL_ACC] == f"{val:g}"
        assert row[f"tags.`{ARM}`"] == name.split("/")[0]
        assert row[f"tags.`{STATUS}`"] == "completed"
    assert _row(expanded, STUDY)[VAL_ACC] == "-"  # the study run has no metrics of its own
    # the key columns come from the view `clipstudy ui` shared: in its order, not MLflow's alphabetical one
    assert headers.index(VAL_ACC) < headers.index("metrics.`test/acc`")
    assert headers.index(f"tags.`{ARM}`") < headers.index(f"tags.`{METHOD}`")
    assert screenshot.stat().st_size > 10_000


def test_ui_cli_lists_the_known_studies_for_an_unknown_one(study_store, monkeypatch):
    def no_server(*args, **kwargs):
        raise AssertionError("a server was started for an unknown study")

    monkeypatch.setattr(subprocess, "Popen", no_server)
    result = CliRunner().invoke(app, ["ui", "no_such_study", "--workdir", str(study_store)])
    assert result.exit_code == 2, result.output
    assert _squeezed("no study 'no_such_study'") in _squeezed(result.output)
    assert _squeezed(f"known studies: other_study, {STUDY}") in _squeezed(result.output)


def test_ui_cli_names_the_missing_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["ui", "--workdir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert _squeezed(f"no MLflow store at {tmp_path / 'mlflow.db'}") in _squeezed(result.output)
    assert not (tmp_path / "mlflow.db").exists()  # looking did not create one


def test_ui_refuses_a_port_in_use_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("a server was started on a busy port"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port} .*--port"):
            ui.start_ui(ui.UiTarget(f"sqlite:///{tmp_path / 'mlflow.db'}"), "127.0.0.1", port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_plain_kill_or_a_closed_terminal_stops_the_server_too(signum, study_store, tmp_path):
    """The server runs in its own session (so Ctrl-C reaches only the CLI, which stops it): a `kill` of the CLI
    or a hang-up must stop it the same way, or it keeps the port."""
    port = _free_port()
    command = [sys.executable, "-m", "clipstudy.cli", "ui", "--workdir", str(study_store), "--port", str(port)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + ui.START_TIMEOUT_S
        while not ui._answers(f"http://127.0.0.1:{port}/health"):
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)[0].decode()
            time.sleep(0.5)
        server = psutil.Process(cli.pid).children(recursive=True)
        assert server, "the MLflow server is not a child of the CLI"
        cli.send_signal(signum)
        output = cli.communicate(timeout=60)[0].decode()
        _, alive = psutil.wait_procs(server, timeout=10)
    finally:
        if cli.poll() is None:
            cli.kill()
        for process in server:  # whatever a failed run left, so that it holds no port
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    assert cli.returncode == 0, output
    assert not alive, f"still running after {signal.Signals(signum).name}: {alive}"
    assert not ui._answers(f"http://127.0.0.1:{port}/health")
    ui._check_port_free("127.0.0.1", port)  # the port is free again


def test_stop_signals_raise_keyboard_interrupt_within_the_block_only():
    before = {signum: signal.getsignal(signum) for signum in ui.STOP_SIGNALS}
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), ui.interrupted_by_stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
    assert {signum: signal.getsignal(signum) for signum in ui.STOP_SIGNALS} == before  # restored


def test_a_stop_signal_while_the_address_is_printed_stops_the_server_and_exits_0(monkeypatch, tmp_path):
    """The signal can come between the server answering and the CLI waiting on it (a test's `kill` once did):
    the CLI must stop the server and exit 0 there too, not with a traceback and 130."""
    import clipstudy.cli as cli

    class Server:
        address, study_url, process, stopped = "http://127.0.0.1:1", None, object(), False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            Server.stopped = True

        def wait(self):
            pytest.fail("the CLI waited on the server after the signal")

    def interrupted_print(text, *args, **kwargs):
        if str(text).startswith("MLflow UI:"):
            raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(ui, "resolve_target", lambda study, workdir: ui.UiTarget(f"sqlite:///{tmp_path}/mlflow.db"))
    monkeypatch.setattr(ui, "start_ui", lambda target, host, port: Server())
    monkeypatch.setattr(cli.console, "print", interrupted_print)
    try:
        code = cli._serve_ui(None, "127.0.0.1", 5000, tmp_path)
    except KeyboardInterrupt:
        pytest.fail("the stop signal escaped the CLI (exit 130)")
    assert code == 0 and Server.stopped
