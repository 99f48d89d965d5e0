"""Unit tests of the result models: rich outputs decoded, files checked and saved safely."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from sandgate_client import ChecksumMismatch, ExecuteResult, ProtocolError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _result(**extra: object) -> ExecuteResult:
    return ExecuteResult.model_validate(
        {"execution_id": "e1", "status": "ok", "exit_code": 0, **extra}
    )


def test_when_results_hold_mime_data_then_each_form_is_an_attribute() -> None:
    result = _result(
        results=[
            {"kind": "execute_result", "data": {"text/plain": "42", "application/json": [4, 2]}},
            {"kind": "display", "data": {"text/html": "<b>x</b>"}},
            {"kind": "figure", "data": {"image/png": base64.b64encode(PNG).decode()}},
        ],
        shiny_new_field=True,
    )
    value, shown, figure = result.results
    assert (value.text, value.json_data, value.png) == ("42", [4, 2], None)
    assert (shown.html, shown.text) == ("<b>x</b>", None)
    assert figure.png == PNG and result.figures == [figure]
    assert result.model_extra == {"shiny_new_field": True}


def test_when_figures_are_saved_then_each_is_a_png_file(tmp_path: Path) -> None:
    encoded = base64.b64encode(PNG).decode()
    result = _result(results=[{"kind": "figure", "data": {"image/png": encoded}}] * 2)
    paths = result.save_figures(tmp_path / "figs")
    assert [p.name for p in paths] == ["figure-1.png", "figure-2.png"]
    assert all(p.read_bytes() == PNG for p in paths)


def test_when_a_png_is_not_base64_then_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="image/png"):
        _ = _result(results=[{"kind": "figure", "data": {"image/png": "%%%"}}]).results[0].png


def _file(data: bytes, digest: str | None = None) -> dict[str, object]:
    return {
        "size": len(data),
        "sha256": digest or hashlib.sha256(data).hexdigest(),
        "content_base64": base64.b64encode(data).decode(),
    }


def test_when_files_come_back_then_they_are_checked_and_saved_under_the_directory(
    tmp_path: Path,
) -> None:
    result = _result(files={"out/a.csv": _file(b"a,b\n1,2\n")})
    assert result.files["out/a.csv"].content == b"a,b\n1,2\n"
    assert result.save_files(tmp_path) == [tmp_path / "out" / "a.csv"]
    assert (tmp_path / "out" / "a.csv").read_bytes() == b"a,b\n1,2\n"


def test_when_a_file_does_not_match_its_sha256_then_checksum_mismatch() -> None:
    result = _result(files={"a": _file(b"real", hashlib.sha256(b"other").hexdigest())})
    with pytest.raises(ChecksumMismatch):
        _ = result.files["a"].content


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", ""])
def test_when_a_returned_path_leaves_the_directory_then_nothing_is_written(
    tmp_path: Path, name: str
) -> None:
    target = tmp_path / "inside"
    with pytest.raises(ProtocolError, match="outside"):
        _result(files={name: _file(b"x")}).save_files(target)
    assert not list(tmp_path.rglob("*.txt")) and not (tmp_path / "b").exists()
