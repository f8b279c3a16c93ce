"""The edges: order files with out-of-range dates or written by European spreadsheets load
(odd rows rejected with a reason); an unexpected exception in a CLI command, a UI callback or
a background build becomes a short message with a hint, logged with its traceback."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from typer.testing import CliRunner

from assistant.core.config import REPO_ROOT
from assistant.core.errors import InputError
from assistant.orders.ingest import load_orders
from assistant.orders.tables import _sniff_delimiter
from assistant.orders.values import DATE_MAX, DATE_MIN

ORDERS = REPO_ROOT / "data" / "online_retail.csv.gz"
runner = CliRunner()


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """The first 400 rows of the shipped orders, as text (ISO dates, 28 customers)."""
    return pd.read_csv(ORDERS, dtype=str, keep_default_na=False, nrows=400)


def _with_dates(sample: pd.DataFrame, fmt: str) -> pd.DataFrame:
    frame = sample.copy()
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"]).dt.strftime(fmt)
    frame.loc[3, "InvoiceDate"] = pd.Timestamp("2999-01-01 08:26").strftime(fmt)
    frame.loc[7, "InvoiceDate"] = pd.Timestamp("1900-01-01 08:26").strftime(fmt)
    return frame


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M"])
def test_out_of_range_dates_are_rejected_with_a_reason(sample, tmp_path: Path, fmt: str):
    path = tmp_path / "orders.csv"
    _with_dates(sample, fmt).to_csv(path, index=False)
    result = load_orders(path, rejects_path=tmp_path / "rejects.csv")
    assert result.rejected == {"date_out_of_range": 2}
    assert result.rows_used == 398
    assert result.orders["timestamp"].between(DATE_MIN.tz_localize(None),
                                              DATE_MAX.tz_localize(None)).all()
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str)
    assert rejects["row"].tolist() == ["4", "8"]
    assert rejects["reason"].tolist() == ["date_out_of_range"] * 2
    assert rejects["InvoiceDate"].str[:10].tolist() == [
        pd.Timestamp(d).strftime(fmt)[:10] for d in ("2999-01-01 08:26", "1900-01-01 08:26")]
    assert any("date_out_of_range" in note and "1970-01-01" in note for note in result.notes)


def test_out_of_range_datetimes_in_parquet(sample, tmp_path: Path):
    frame = _with_dates(sample, "%Y-%m-%d %H:%M:%S")
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"]).astype("datetime64[us]")
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path)
    assert load_orders(path).rejected == {"date_out_of_range": 2}


def test_unreadable_dates_stay_unparseable(tmp_path: Path):
    path = tmp_path / "o.csv"
    path.write_text("customer,date,price\na,2021-01-01,1\nb,2021-02-30,2\nc,2021-01-03,3\n"
                    "d,3021-01-03,3\n")
    assert load_orders(path).rejected == {"unparseable_date": 1, "date_out_of_range": 1}


def test_segments_build_with_out_of_range_dates(sample, tmp_path: Path):
    """The issue's file: the build succeeds and reports the two rejects."""
    from assistant.cli import app

    path = tmp_path / "orders.csv"
    _with_dates(sample, "%Y-%m-%d %H:%M:%S").to_csv(path, index=False)
    result = runner.invoke(app, ["segments", "build", "--orders", str(path)],
                           env={"TAILOR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output
    assert "rejected rows: date_out_of_range 2" in result.stdout
    assert "Traceback" not in result.output
    written = pd.read_csv(tmp_path / "data" / "artifacts" / "last-rejects.csv", dtype=str)
    assert written["reason"].tolist() == ["date_out_of_range"] * 2


# --------------------------------------------------------------------------- delimiters


def _euro(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(UnitPrice=frame["UnitPrice"].str.replace(".", ",", regex=False))


def _write(frame: pd.DataFrame, path: Path, *, encoding: str = "utf-8", eol: str = "\n",
           **kwargs) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        frame.to_csv(fh, sep=";", index=False, lineterminator=eol, **kwargs)
    return path


def _trailing_separator(frame: pd.DataFrame, path: Path) -> Path:
    """Data lines end with a separator, the header does not (as some exports write)."""
    lines = [";".join(frame.columns), *(";".join(row) + ";" for row in frame.values.tolist())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bom_then_cp1252(frame: pd.DataFrame, path: Path) -> Path:
    """A UTF-8 BOM, then text that is not UTF-8: read as cp1252, the BOM must not stick to
    the first column's name (InvoiceNo, the order id)."""
    text = _euro(frame).assign(Description=frame["Description"] + " £").to_csv(
        sep=";", index=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("cp1252"))
    return path


def _sep_line(frame: pd.DataFrame, path: Path) -> Path:
    path.write_text("sep=;\n" + _euro(frame).to_csv(sep=";", index=False), encoding="utf-8")
    return path


SEMICOLON_FILES = {
    "plain": lambda f, p: _write(f, p),
    "decimal commas": lambda f, p: _write(_euro(f), p),
    "decimal commas, quoted": lambda f, p: _write(_euro(f), p, quoting=csv.QUOTE_ALL),
    "decimal commas, BOM, CRLF": lambda f, p: _write(_euro(f), p, encoding="utf-8-sig",
                                                     eol="\r\n"),
    "decimal commas, cp1252": lambda f, p: _write(
        _euro(f).assign(Description=f["Description"] + " £"), p, encoding="cp1252"),
    "UTF-8 BOM before cp1252 text": _bom_then_cp1252,
    "separator at line end": _trailing_separator,
    "sep= line": _sep_line,
}


@pytest.mark.parametrize("variant", list(SEMICOLON_FILES))
def test_semicolon_files_load_like_the_comma_file(sample, tmp_path: Path, variant: str):
    comma = tmp_path / "comma.csv"
    sample.to_csv(comma, index=False)
    expected = load_orders(comma)
    path = SEMICOLON_FILES[variant](sample, tmp_path / "semi.csv")
    result = load_orders(path)
    customers = sample.loc[sample["CustomerID"] != "", "CustomerID"].nunique()
    assert result.orders["customer"].nunique() == customers == 28
    assert result.rejected == expected.rejected
    columns = ["customer", "order_id", "timestamp", "quantity", "unit_price", "amount"]
    pd.testing.assert_frame_equal(result.orders[columns], expected.orders[columns])
    assert result.orders["unit_price"].iloc[0] == 2.55


def test_sniffer_ignores_empty_fields_after_the_last_column():
    text = "a;b;c\n" + "1,5;2;x, y;\n" * 10
    assert _sniff_delimiter(text) == ";"


def test_single_column_file_is_still_refused(tmp_path: Path):
    path = tmp_path / "o.csv"
    path.write_text("customer:date:price\na:2021-01-01:1\n")
    with pytest.raises(InputError, match="only one column"):
        load_orders(path)


# --------------------------------------------------------------------------- CLI


def test_cli_bug_is_a_short_message_and_logged(sample, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    import assistant.segments.model
    from assistant.cli import app

    def broken(*_args, **_kwargs):
        raise AssertionError("Something has gone wrong, please report a bug")

    monkeypatch.setattr(assistant.segments.model, "build_segment_model", broken)
    path = tmp_path / "orders.csv"
    sample.to_csv(path, index=False)
    data = tmp_path / "data"
    result = runner.invoke(app, ["segments", "build", "--orders", str(path)],
                           env={"TAILOR_DATA_DIR": str(data)})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    log_file = data / "logs" / "tailor-errors.log"
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("error: Unexpected error while running 'assistant segments build' "
                        "(AssertionError: Something has gone wrong, please report a bug).")
    assert lines[1].startswith("hint: This is a bug in Tailor") and str(log_file) in lines[1]
    ref = re.search(r"ref ([0-9a-f]{8})", lines[1]).group(1)
    logged = log_file.read_text()
    assert f"[ref {ref}]" in logged and "Traceback" in logged and "def broken" not in logged
    assert "in broken" in logged  # the frame that raised


def test_cli_expected_errors_and_exits_pass_unchanged():
    import typer

    from assistant.cli import friendly

    @friendly
    def stops() -> None:
        raise typer.Exit(3)

    with pytest.raises(typer.Exit) as exc:
        stops()
    assert exc.value.exit_code == 3

    @friendly
    def refuses() -> None:
        raise InputError("No such file.", "Check the path.")

    with pytest.raises(typer.Exit) as exc:
        refuses()
    assert exc.value.exit_code == 2


# --------------------------------------------------------------------------- UI


def _callback(demo: gr.Blocks, api_name: str):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def test_ui_callbacks_turn_a_bug_into_a_message(service, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture):
    from assistant.ui import create_chat_app

    demo = create_chat_app(service)

    def broken() -> str:
        raise RuntimeError("disk full at /srv/secret/tailor.sqlite3")

    monkeypatch.setattr(service, "new_session", broken)
    caplog.set_level(logging.ERROR)
    with pytest.raises(gr.Error) as plain:
        _callback(demo, "session")(None)
    with pytest.raises(gr.Error) as stream:
        list(_callback(demo, "chat")("hi", None))  # a streaming callback
    for err, action in ((plain.value, "api session"), (stream.value, "api chat")):
        assert err.title == "Something went wrong"
        assert err.message.startswith(
            f"Unexpected error while handling '{action}' (RuntimeError). This is a bug in "
            "Tailor")
        assert "/srv/secret" not in err.message  # the exception's text stays in the log
        ref = re.search(r"ref ([0-9a-f]{8})", err.message).group(1)
        record = next(r for r in caplog.records if ref in r.getMessage())
        assert record.exc_info and record.exc_info[0] is RuntimeError


def test_ui_expected_error_escaping_a_callback_is_its_message(
        service, monkeypatch: pytest.MonkeyPatch):
    from assistant.ui import create_chat_app

    demo = create_chat_app(service)

    def refused(_sid):
        raise InputError("Unknown session.", "Reload the page.")

    monkeypatch.setattr(service, "resume", refused)
    with pytest.raises(gr.Error) as exc:
        _callback(demo, "resume")("abc", None)
    assert exc.value.message == "⚠️ Unknown session. — Reload the page."


def test_every_ui_callback_is_guarded(service):
    from assistant.ui import create_chat_app, create_staff_app
    from assistant.ui.guard import is_guarded

    for demo in (create_chat_app(service), create_staff_app(service)):
        callbacks = [f for f in demo.fns.values() if f.fn is not None and not f.renderable]
        assert len(callbacks) > 20
        assert [f.name for f in callbacks if not is_guarded(f.fn)] == []


# --------------------------------------------------------------------------- background


def test_background_build_failure_is_logged_and_recorded(
        service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    from assistant.ui.segments import empty_markdown

    def broken():
        raise KeyError("rfm")

    def no_orders():
        raise InputError("No orders file.", "Set TAILOR_ORDERS.")

    monkeypatch.setattr(service.bootstrap, "ensure_segments", broken)
    monkeypatch.setattr(service.parts, "recommender", no_orders)
    monkeypatch.setattr(service.bootstrap, "ensure_help", lambda: {"help": 3})
    caplog.set_level(logging.INFO)

    status = service.first_run_builds()  # the thread's target: never raises

    assert status["segments"].startswith(
        "failed: Unexpected error while building the segments in the background "
        "(KeyError: 'rfm'). This is a bug in Tailor")
    assert status["recommendations"] == "failed: No orders file. Set TAILOR_ORDERS."
    assert status["help base"] == "ready"  # later steps still ran
    assert service.build_status == status
    ref = re.search(r"ref ([0-9a-f]{8})", status["segments"]).group(1)
    record = next(r for r in caplog.records if ref in r.getMessage())
    assert record.levelno == logging.ERROR and record.exc_info[0] is KeyError
    assert "recommendations not built: No orders file." in caplog.text
    shown = empty_markdown(service.build_status)
    assert shown.startswith("**The first-run segment build failed:** Unexpected error")
    assert "assistant segments build" in shown  # and how to build them by hand
    assert "Building segments" in empty_markdown({"segments": "running"})
