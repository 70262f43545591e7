"""Mistakes found before the model loads: each run of the real ``jinav3`` entry point in a fresh interpreter ends
with exit status 2 and one error line, and torch was never imported (the proof that nothing heavy ran first; the
wall-clock bound is only a generous sanity check for a loaded 2-core machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from jinav3.cli import build_parser, shows_default

#: Runs ``jinav3.cli.main`` on the arguments, then reports whether torch or transformers got imported.
PROBE = ("import sys\nfrom jinav3.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
         "except SystemExit as exc:\n    code = exc.code\n"
         "print('heavy' if {'torch', 'transformers'} & set(sys.modules) else 'light', code)")


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[str, str, float]:
    """``(stdout's last line, stderr, seconds)`` of the command in a fresh interpreter."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    return done.stdout.strip().splitlines()[-1], done.stderr, time.perf_counter() - started


def assert_refused_early(command: str, args: list[str], *fragments: str,
                         env: dict[str, str] | None = None) -> str:
    last, err, seconds = run_cli(command, *args, env=env)
    assert last == "light 2", err  # exit status 2, and neither torch nor transformers was imported
    errors = [line for line in err.splitlines() if line.startswith(f"jinav3 {command}: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert seconds < 30, f"took {seconds:.1f} s"  # ~0.5 s here; loading the model alone takes longer
    return errors[0]


NO_MODEL = "/nonexistent/model"  # would fail too, later: the argument's error must come first


@pytest.mark.parametrize(("args", "fragments"), [
    (["embed", "x", "--dtype", "float16x"], ["unknown dtype 'float16x'", "float32"]),
    (["chunk", "doc.txt", "--dtype", "fp8"], ["unknown dtype 'fp8'"]),
    (["embed", "x", "--device", "tpu"], ["unknown device 'tpu'", "cpu, cuda"]),
    (["embed", "x", "--device", "gpu"], ["unknown device 'gpu'"]),
    (["embed", "x", "--engine", "onnx", "--device", "cuda"], ["--engine onnx runs on the CPU only"]),
    (["embed", "x", "--engine", "onnx", "--dtype", "bf16"], ["--engine onnx runs float32 or int8", "--engine torch"]),
    (["eval", "beir", "--window", "5"], ["argument --window", "at least 16, got 5", "jinav3 eval --help"]),
    (["eval", "beir", "--limit-queries", "-5"], ["argument --limit-queries", "at least 1, got -5"]),
    (["eval", "beir", "--limit-docs", "0"], ["argument --limit-docs", "at least 1"]),
    (["eval", "beir", "--window", "64", "--overlap", "64"], ["--overlap (64) must be less than --window (64)"]),
    (["serve", "--dtype", "float16x"], ["unknown dtype 'float16x'"]),
    (["index", "docs.jsonl", "-o", "out", "--ray", "--device", "tpu"], ["unknown device 'tpu'"]),
])
def test_arguments_are_checked_before_the_model_and_torch(args, fragments):
    """Each wrong argument is one line naming it, before torch is imported and before the (missing) model is
    looked at."""
    command, *rest = args
    model = [] if command in ("eval",) else ["--model", NO_MODEL]
    line = assert_refused_early(command, [*rest, *model], *fragments)
    assert NO_MODEL not in line


@pytest.mark.skipif(not version("torch").endswith("+cpu"), reason="needs a CPU-only torch build")
def test_a_gpu_on_a_cpu_only_torch_is_refused_before_torch_loads():
    assert_refused_early("embed", ["x", "--device", "cuda", "--model", NO_MODEL], "--device cuda",
                         f"torch ({version('torch')}) is a CPU-only build", "--device cpu")


def test_export_onnx_into_a_folder_that_is_not_empty_says_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert_refused_early("export-onnx", [NO_MODEL, str(out)], str(out), "not empty", "--overwrite")
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("command", ["embed", "chunk"])
def test_a_model_folder_that_does_not_exist(tmp_path, command):
    doc = tmp_path / "doc.txt"
    doc.write_text("Some text.", encoding="utf-8")
    args = ["x"] if command == "embed" else [str(doc)]
    assert_refused_early(command, [*args, "--model", "/nonexistent/model"], "/nonexistent/model", "does not exist")


def test_a_folder_that_is_not_a_model(tmp_path):
    assert_refused_early("embed", ["x", "--model", str(tmp_path)], str(tmp_path), "no config.json")


def test_a_hub_id_offline_and_uncached_names_the_installed_offline_model(tmp_path, minilm_dir):
    line = assert_refused_early("embed", ["x", "--model", "jinaai/jina-embeddings-v3"],
                                "not in the Hugging Face cache", "HF_HUB_OFFLINE", f"--model {minilm_dir}",
                                env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert "pip install" not in line  # it is installed already


def test_a_name_that_is_no_hub_id():
    assert_refused_early("embed", ["x", "--model", "not/a/hub/id"], "nor a valid hub id", "'not/a/hub/id'")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", bytes(range(1, 32)) * 8 + b"\xff\xfe\xfd"])
def test_a_binary_file_is_called_binary_at_once(tmp_path, content):
    file = tmp_path / "image.png"
    file.write_bytes(content)
    line = assert_refused_early("chunk", [str(file), "--model", "/nonexistent/model"], str(file), "binary")
    assert "latin-1" not in line  # no detour through an encoding hint


def test_a_utf16_file_read_as_utf8_says_utf16(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_bytes("Berlin is big.".encode("utf-16"))
    assert_refused_early("chunk", [str(file), "--model", "/nonexistent/model"], "UTF-16", "--encoding utf-16")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file(tmp_path):
    file = tmp_path / "secret.txt"
    file.write_text("text", encoding="utf-8")
    file.chmod(0)
    assert_refused_early("chunk", [str(file), "--model", "/nonexistent/model"], str(file), "cannot be read")


def test_serve_on_a_busy_port_fails_before_loading(minilm_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_refused_early("serve", ["--model", str(minilm_dir), "--port", str(port)],
                             f"127.0.0.1:{port}", "in use", "--port")


def test_serve_checks_its_model_before_the_port(tmp_path):
    assert_refused_early("serve", ["--model", str(tmp_path / "none")], "does not exist")


def test_index_without_ray_is_a_usage_error():
    assert_refused_early("index", ["docs.jsonl", "-o", "out"], "--ray", "jinav3 chunk")


def test_index_checks_its_model_and_options_before_starting_ray(minilm_dir):
    assert_refused_early("index", ["docs.jsonl", "-o", "out", "--ray", "--model", "/nonexistent/model"],
                         "does not exist")
    assert_refused_early("index", ["docs.jsonl", "-o", "out", "--ray", "--model", str(minilm_dir), "--batch-size",
                                   "0"], "batch_size must be at least 1")


def test_version_is_the_installed_distribution():
    done = subprocess.run([sys.executable, "-m", "jinav3.cli", "--version"], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == f"jinav3 {version('jinav3')}"


def _subcommands() -> dict[str, object]:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    return dict(actions[0].choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_help_shows_every_default(name):
    """Each option with a default (anything but None, a flag's False or an empty list; 0 included) shows it, value
    and all, in its own entry of the subcommand's ``--help`` as argparse renders it (an option without help text
    would show nothing at all)."""
    sub = _subcommands()[name]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or not shows_default(action):
            continue
        entry = " ".join(formatter._format_action(action).split())
        values = action.default if isinstance(action.default, list) else [action.default]
        assert "default" in entry and all(str(value) in entry for value in values), \
            f"jinav3 {name} {action.option_strings[0]} hides its default {action.default!r}: {entry}"
    text = " ".join(sub.format_help().split())
    expected = {"serve": ["(default: 8080)", "(default: 127.0.0.1)", "(default: 65536)", "(default: info)"],
                "chunk": ["--chunk-overlap CHUNK_OVERLAP tokens shared by neighbouring token chunks (less than "
                          "--chunk-size) (default: 0)", "(default: sentences)"],
                "embed": ["(default: jsonl)"], "eval": ["(default: ['naive', 'late', 'whole'])", "(default: local)"],
                "index": ["(default: retrieval.passage)", "(default: id)", "(default: text)", "(default: 1.0)"]}
    for fragment in expected.get(name, []):
        assert fragment in text, fragment


def test_help_runs_without_torch():
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom jinav3.cli import build_parser\n"
                           "print(build_parser().format_help()); print('torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().endswith("False")



def test_dimensions_beyond_a_plain_encoder_say_it_has_no_trained_sizes(minilm_dir):
    line = assert_refused_early("embed", ["x", "--model", str(minilm_dir), "--dimensions", "999"],
                                "384-dimensional", "not trained for Matryoshka")
    assert "trained sizes" not in line


def test_python_users_get_the_offline_answer_before_torch_too(tmp_path, minilm_dir):
    program = ("import sys\nfrom jinav3 import Embedder, ModelLoadError\n"
               "try:\n    Embedder.local('jinaai/jina-embeddings-v3')\n"
               "except ModelLoadError as exc:\n    print(exc)\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    message, torch_loaded = done.stdout.strip().splitlines()
    assert torch_loaded == "False", done.stderr
    assert "HF_HUB_OFFLINE is set" in message and "Embedder.local(jinav3.model.choice.fallback_model_dir())" in message
    assert str(minilm_dir) in message
