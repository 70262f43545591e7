"""Everything but the local backend works without torch, transformers and safetensors, and asking for the local
backend without them names the extra to install. Runs this environment's Python with those modules blocked (as if
not installed), so it is quick; ``test_light_install`` proves the same in a truly fresh environment."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCK = """
import sys
for name in ("torch", "transformers", "safetensors", {extra}):
    sys.modules[name] = None  # "import torch" now raises ModuleNotFoundError, as on the light install
"""
LIGHT_MODULES = [
    "jinav3", "jinav3.cli", "jinav3.model.choice", "jinav3.testing", "jinav3.backends.api",
    "jinav3.late_chunking.chunking",
    "jinav3.matryoshka", "jinav3.evaluation", "jinav3.distributed", "langchain_jinav3", "llama_index.embeddings.jinav3",
    "llama_index.node_parser.jinav3", "haystack_integrations.components.embedders.jinav3",
    "haystack_integrations.components.preprocessors.jinav3", "haystack_integrations.components.writers.jinav3",
]


def run_blocked(code: str, extra: str = "") -> subprocess.CompletedProcess:
    program = BLOCK.format(extra=extra) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_everything_but_the_local_backend_imports_without_torch():
    result = run_blocked(f"""
        import importlib
        for name in {LIGHT_MODULES!r}:
            importlib.import_module(name)
        assert not [m for m in ("torch", "transformers", "safetensors") if sys.modules.get(m) is not None]
        from jinav3 import SentenceChunker, truncate_normalise
        import numpy as np
        assert SentenceChunker().spans("One. Two.") == [(0, 4), (5, 9)]
        assert truncate_normalise(np.ones((1, 8)), 4).shape == (1, 4)
        from jinav3.testing import train_tokenizer
        assert train_tokenizer(300).get_vocab_size() > 0
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize(
    "call",
    ["Embedder.local('any')", "Embedder.create(backend='local')", "Embedder.shared('local', 'x')",
     "build_checkpoint(tempfile.mkdtemp())"],
)
def test_the_local_backend_without_the_extra_names_it(call):
    result = run_blocked(f"""
        import tempfile
        from jinav3 import Embedder, ModelLoadError
        from jinav3.testing import build_checkpoint
        try:
            {call}
        except ModelLoadError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install -e 'shared_core[local]'" in result.stdout and "clone of the jinav3 repository" in result.stdout
    assert "torch" in result.stdout


@pytest.mark.parametrize("command", ["embed", "chunk", "serve"])
def test_the_cli_without_the_extra_is_one_line_naming_it(tmp_path, command):
    document = tmp_path / "doc.txt"
    document.write_text("Some text.", encoding="utf-8")
    args = {"embed": ["embed", "x"], "chunk": ["chunk", str(document)], "serve": ["serve"]}[command]
    result = run_blocked(f"""
        from jinav3.cli import main
        raise SystemExit(main({args!r}))
    """)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"jinav3 {command}: error:" in result.stderr and "pip install -e 'shared_core[local]'" in result.stderr


def test_the_api_client_runs_without_torch():
    """The API path end to end against a tiny HTTP server in the same blocked process (no torch anywhere)."""
    result = run_blocked("""
        import base64, json, threading
        import numpy as np
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from jinav3 import Embedder

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                vectors = [np.array([len(t), 1, 0, 0], "<f4") for t in body["input"]]
                data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(v.tobytes()).decode()}
                        for i, v in enumerate(vectors)]
                payload = json.dumps({"model": body["model"], "object": "list", "data": data,
                                      "usage": {"total_tokens": 1, "prompt_tokens": 1}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        emb = Embedder.api(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="k",
                           full_dimensions=4, max_retries=0)
        vectors = emb.embed(["ab", "abcd"], dimensions=2, normalized=False)
        assert vectors.tolist() == [[2.0, 1.0], [4.0, 1.0]], vectors
        server.shutdown()
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

