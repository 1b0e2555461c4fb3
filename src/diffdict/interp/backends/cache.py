"""Disk cache of model responses: one JSON file per key, written atomically.

The key is the sha256 of the backend, the model, the request parameters and the prompt with
every image replaced by its own sha256 — never the endpoint's credentials — so a rerun (or a
rerun on another host serving the same model) asks nothing twice. Files live in
``{dir}/{key[:2]}/{key}.json``; concurrent writers of one key race harmlessly (same content,
`atomic_path` renames a finished file into place).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ...atomic import atomic_path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_messages(messages: list[dict]) -> list[dict]:
    """Neutral messages with PNG bytes replaced by their sha256."""
    return [
        {"role": m["role"], "parts": [{"png_sha256": sha256(p["png"])} if "png" in p else p for p in m["parts"]]}
        for m in messages
    ]


def cache_key(backend: str, model: str, messages: list[dict], params: dict) -> str:
    blob = json.dumps(
        {"backend": backend, "model": model, "messages": hashed_messages(messages), "params": params},
        sort_keys=True,
        separators=(",", ":"),
    )
    return sha256(blob.encode())


class ResponseCache:
    def __init__(self, directory):
        self.dir = Path(directory) if directory is not None else None

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if self.dir is None:
            return None
        try:
            return json.loads(self._path(key).read_text())
        except (FileNotFoundError, ValueError):  # a missing or (never, but defensively) corrupt entry
            return None

    def put(self, key: str, entry: dict) -> None:
        if self.dir is None:
            return
        with atomic_path(self._path(key)) as tmp:
            tmp.write_text(json.dumps(entry, sort_keys=True))
