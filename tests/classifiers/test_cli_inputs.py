"""`hotline classify` and `hotline eval classify` on odd input files: one clear line and a non-zero exit, never a
traceback; a GBK (GB18030) file is read like a UTF-8 one."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from classifiers.data import DataFileError, read_labelled_csv
from hotline.cli import classify_command, eval_app


def _classify(path: Path) -> tuple[int, str]:
    # the command alone, without the main app's callback (it would bind logging to the runner's stream)
    alone = typer.Typer()
    alone.command()(classify_command)
    result = CliRunner().invoke(alone, [str(path)])
    return result.exit_code, result.output


def _eval(path: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(eval_app, ["classify", "--data", str(path), *options])
    return result.exit_code, result.output


@pytest.mark.parametrize("content", ["", "call_id,text\n"])
def test_classify_says_a_file_has_no_rows(tmp_path: Path, content: str) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(content, encoding="utf-8")
    code, output = _classify(path)
    assert code == 1 and "calls.csv has no rows" in output


def test_eval_names_the_missing_columns_and_the_ones_present(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("id,title,content,category\n1,a,路灯不亮,城乡建设\n", encoding="utf-8")
    code, output = _eval(path)
    assert code == 1 and "labelled.csv has no column text; its columns: id, title, content, category" in output


def test_eval_names_a_short_row(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("id,title,text,category\n1,a,路灯不亮,城乡建设\n2,a\n", encoding="utf-8")
    code, output = _eval(path)
    assert code == 1 and "labelled.csv line 3: the row is shorter than the header (no text)" in output


@pytest.mark.parametrize("content", ["", "id,title,text,category\n"])
def test_eval_says_a_file_has_no_rows(tmp_path: Path, content: str) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text(content, encoding="utf-8")
    code, output = _eval(path)
    assert code == 1 and "labelled.csv has no rows" in output


def test_a_gbk_labelled_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_bytes("id,title,text,category\n1,夜间,路灯不亮,城乡建设\n".encode("gbk"))
    [row] = read_labelled_csv(path)
    assert (row.text, row.label) == ("夜间。路灯不亮", "城乡建设")


def test_the_reader_refuses_missing_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("id,text\n1,路灯不亮\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="no column category"):
        read_labelled_csv(path)
