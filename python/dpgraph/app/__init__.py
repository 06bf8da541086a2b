"""The applications built on the library: the ``dpgraph`` command line (``cli``),
``dpgraph demo`` (``demo``), structure evaluation (``evaluator``), the runtime
benchmark (``benchmark``) and short LAMMPS runs (``lammps_md``)."""
