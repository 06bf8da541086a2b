"""dpgraph: graph-native runtime for attention-based interatomic potentials.

Import order matters: torch is imported first so that libc10 is loaded before
the compiled extension, and the runtime torch is checked against the version
the extension was built with.
"""

from __future__ import annotations

import torch

from ._version import __version__


def _check_torch() -> None:
    try:
        from . import _build_info
    except ImportError:  # running from a source tree without a build
        return
    built = _build_info.TORCH_VERSION
    if torch.__version__ != built:
        raise ImportError(
            f"dpgraph was built against torch {built} but torch "
            f"{torch.__version__} is installed. Reinstall torch=={built.split('+')[0]} "
            "or rebuild dpgraph against this torch "
            "(pip install --no-build-isolation .)."
        )


_check_torch()

from .allocator import tune_allocator, tune_from_environment  # noqa: E402

tune_from_environment()

from .graph import NeighborGraph  # noqa: E402
from .graph.neighbor_graph import ABI_VERSION  # noqa: E402  (defined once, with the graph it versions)

__all__ = ["NeighborGraph", "DeepPot", "ABI_VERSION", "__version__", "load_package", "tune_allocator",
           "cmake_prefix_path"]

#: ``cmake -DCMAKE_PREFIX_PATH=$(python -c "import dpgraph; print(dpgraph.cmake_prefix_path)")``
#: makes ``find_package(dpgraph)`` find the C++ library of this installation.
import os as _os  # noqa: E402

cmake_prefix_path = _os.path.join(_os.path.dirname(__file__), "lib", "cmake")


def __getattr__(name):
    if name == "DeepPot":  # needs the compiled extension; imported lazily so a source tree still works
        from .deep_pot import DeepPot

        return DeepPot
    raise AttributeError(f"module 'dpgraph' has no attribute {name!r}")


def load_package(path, device: str | None = None):
    """Load an exported ``.pt2`` (see :func:`dpgraph.export.load_package`)."""
    from .export.package import load_package as _load

    return _load(path, device=device)
