"""Export to AOTInductor ``.pt2`` packages and load them back."""

from .exporter import ExportError, check_package, example_graph, export_model, export_program
from .package import Package, PackageError, load_package, read_metadata

__all__ = [
    "ExportError",
    "Package",
    "PackageError",
    "check_package",
    "example_graph",
    "export_model",
    "export_program",
    "load_package",
    "read_metadata",
]
