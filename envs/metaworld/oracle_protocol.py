"""The wire format of mw-oracle (envs/metaworld/oracle.py talks to oracle_server.py): one JSON object per line.

Imported by both sides, so it needs nothing but the standard library and NumPy (the server runs it in the oracle's
own virtual environment, as a top-level module next to oracle_server.py). NumPy arrays travel as
{"__nd__": dtype, "shape": [...], "b64": raw bytes}: exact in every dtype, which matters because the package scales
an action in the action's own dtype (a float32 action gives a float32 mocap offset).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np


def encode(value: Any) -> Any:
    """`value` with every NumPy array (and NumPy scalar) replaced by its JSON form, recursively."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {"__nd__": array.dtype.str, "shape": list(array.shape),
                "b64": base64.b64encode(array.tobytes()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(value, dict):
        if "__nd__" in value:
            raw = base64.b64decode(value["b64"])
            return np.frombuffer(raw, dtype=np.dtype(value["__nd__"])).reshape(value["shape"]).copy()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def dumps(message: dict) -> str:
    """One protocol line (no newline inside: json.dumps escapes them)."""
    return json.dumps(encode(message), allow_nan=True) + "\n"


def loads(line: str) -> dict:
    return decode(json.loads(line))
