"""Child process of :func:`dpgraph.interop.deepmd.serialize_torch_file` (not a module to import).

    python _deepmd_torch.py MODEL.pth|MODEL.pt OUT.dp

Rebuilds a deepmd-kit PyTorch model with deepmd-kit's own code and writes its
serialized tree as a ``.dp`` file. deepmd-kit's compiled operator library
(``libdeepmd_op_pt.so``) is built for one torch version and aborts the import
under any other; reading weights does not need it, so its directory is
pointed at an empty folder before ``deepmd.pt`` is imported.
"""

import pathlib
import sys
import tempfile


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    import deepmd.env

    empty = tempfile.mkdtemp(prefix="dpgraph-no-deepmd-ops-")
    deepmd.env.SHARED_LIB_DIR = pathlib.Path(empty)
    from deepmd.dpmodel.utils.serialization import save_dp_model
    from deepmd.pt.utils.serialization import serialize_from_file

    save_dp_model(dst, serialize_from_file(src))


if __name__ == "__main__":
    main()
