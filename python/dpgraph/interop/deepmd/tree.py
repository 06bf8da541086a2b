"""Walking deepmd-kit's serialized model tree: every key is read or explicitly ignored,
and errors name the full path of the field (``model.descriptor.@variables.davg``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

IDENTITY_ACTIVATIONS = {"none", "linear"}


class Node:
    """A dict of the serialized tree with its path; tracks which keys were read."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping in deepmd-kit's serialized model, got {type(data).__name__}")
        self.data, self.path, self.seen = data, path, set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def req(self, key: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            raise ValueError(f"{self.sub(key)} is missing from the serialized deepmd-kit model")
        return self.data[key]

    def node(self, key: str) -> "Node":
        return Node(self.req(key), self.sub(key))

    def ignore(self, *keys: str) -> None:
        self.seen.update(keys)

    def expect(self, key: str, allowed, why: str, default: Any = None) -> Any:
        """Read ``key`` and refuse values outside ``allowed`` (a tuple or a predicate)."""
        val = self.get(key, default)
        ok = allowed(val) if callable(allowed) else val in allowed
        if not ok:
            raise ValueError(f"{self.sub(key)} = {val!r} is not supported by dpgraph: {why}")
        return val

    def version(self, newest: int, why: str = "") -> int:
        v = int(self.get("@version", 1))
        if v > newest:
            raise ValueError(
                f"{self.sub('@version')} = {v}: this importer reads up to version {newest} "
                f"(deepmd-kit 3.2.0){why}"
            )
        return v

    def done(self) -> None:
        left = sorted(set(self.data) - self.seen)
        if left:
            raise ValueError(
                f"{self.path or 'model'}: unknown field(s) {left} in the serialized deepmd-kit model; "
                "this importer was written for deepmd-kit 3.2.0 and cannot tell whether dpgraph "
                "represents them"
            )


def as_array(x: Any, path: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{path} is missing (None) in the serialized deepmd-kit model")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def is_false(v) -> bool:
    return v is None or v is False or v == 0 or v == [] or v == ()


# --------------------------------------------------------------- the config


def unwrap(data: dict) -> dict:
    """The model node of a file-level dict (``{"model": ..., "backend": ...}``) or the node itself."""
    if isinstance(data, dict) and "model" in data and "@class" not in data:
        return data["model"]
    return data
