"""What a segment means to the customer in it: the text their card shows instead of the
staff's segment name (``data/segment_meanings.yaml``, ops-edited, checked at start)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.segments.model import SEGMENTS

DEFAULT_MEANINGS = REPO_ROOT / "data" / "segment_meanings.yaml"
HINT = "The layout is documented at the top of data/segment_meanings.yaml."


class _MeaningsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meanings: dict[str, str]


class SegmentMeanings:
    """segment -> the customer's text ("" or an unlisted segment: nothing is shown)."""

    def __init__(self, texts: dict[str, str], source: str = "") -> None:
        self.texts = {k: " ".join(v.split()) for k, v in texts.items()}
        self.source = source

    def for_customer(self, segment: str | None) -> str | None:
        return self.texts.get(segment or "") or None


def load_meanings(path: Path | str | None = None) -> SegmentMeanings:
    """Read and check the file; a problem is a ``ConfigError`` naming file:line."""
    path = Path(path) if path is not None else DEFAULT_MEANINGS
    data, root = read_config_file(path, what="Segment meanings",
                                  default="data/segment_meanings.yaml")
    try:
        spec = _MeaningsFile.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        line = line_of(root, tuple(err["loc"]))
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"Segment meanings {where}: {err['msg']}.", HINT) from None
    for name in spec.meanings:
        if name not in SEGMENTS:
            line = line_of(root, ("meanings", name))
            raise ConfigError(f"Segment meanings {path}:{line}: unknown segment '{name}'.",
                              "Segments are named: " + ", ".join(SEGMENTS) + ".")
    return SegmentMeanings(spec.meanings, str(path))
