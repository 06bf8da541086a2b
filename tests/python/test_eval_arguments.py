"""DeepPot.eval takes deepmd-kit's call shapes and nothing else: a
frame shape that does not match atom_types, float atom types, non-bool pbc are refused naming
the argument, and a fuzz of argument shapes and dtypes finds every call either equal to its
canonical form or refused. Uses the session's cached fp64 package (as test_deep_pot.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dpgraph.graph import build_graph

from conftest import deep_pot_fp64, random_system


@pytest.fixture(scope="module")
def dp():
    return deep_pot_fp64()


@pytest.fixture(scope="module")
def frames():
    """Two frames of 16 atoms, 2 types, in a 6 Å cell."""
    x0, t, c = random_system(16, 6.0, seed=11)
    x1, _, _ = random_system(16, 6.0, seed=12)
    return np.stack([x0.numpy(), x1.numpy()]), np.stack([c.numpy()] * 2), t.numpy()


def test_frame_shape_mismatch_refused(dp, frames):
    """(1, 32, 3) coordinates with 16 atom types gave two 16-atom frames; with a cell it blamed the cell."""
    x, c, t = frames
    wrong = x.reshape(1, 32, 3)
    with pytest.raises(ValueError, match=r"coords has shape \(1, 32, 3\) but atom_types has 16 atoms"):
        dp.eval(wrong, None, t)
    with pytest.raises(ValueError, match=r"coords has shape \(1, 32, 3\)"):
        dp.eval(wrong, c[:1].reshape(1, 9), t)
    with pytest.raises(ValueError, match=r"cells has shape \(1, 9\) but coords has 2 frame"):
        dp.eval(x, c[:1].reshape(1, 9), t)


def test_float_atom_types_refused_not_truncated(dp, frames):
    x, c, t = frames
    bad = t.astype(float)
    bad[3] = 0.9
    with pytest.raises(ValueError, match=r"atom_types\[3\] = 0.9 is not an integer"):
        dp.eval(x, c, bad)
    e_int = dp.eval(x, c, t)[0]
    np.testing.assert_array_equal(dp.eval(x, c, t.astype(float))[0], e_int)  # integral floats are exact
    with pytest.raises(ValueError, match=r"atype must be integer type indices; atype\[3\] = 0.9"):
        build_graph(torch.as_tensor(x[0]), torch.as_tensor(bad), cell=torch.as_tensor(c[0]), rcut=4.0)


@pytest.mark.parametrize("pbc", ["no", "yes", "off", 2, [True, True], [[True] * 3], 0.5, None])
def test_non_bool_pbc_refused(dp, frames, pbc):
    x, c, t = frames
    if pbc is None:
        return
    with pytest.raises(TypeError, match="pbc must be a bool or 3 bools"):
        dp.eval(x, c, t, pbc=pbc)
    with pytest.raises(ValueError, match="pbc must be a bool or 3 bools"):
        build_graph(torch.as_tensor(x[0]), torch.as_tensor(t), cell=torch.as_tensor(c[0]), pbc=pbc, rcut=4.0)


def _variants(x, c, t, ntypes):
    """(name, value, canonical value or None if it must be refused) per argument."""
    nf, n = x.shape[:2]
    coords = [
        ("(nf,n,3)", x, x), ("(nf,3n)", x.reshape(nf, 3 * n), x), ("list", x.tolist(), x),
        ("torch", torch.as_tensor(x), x), ("float32", x.astype(np.float32), x.astype(np.float32).astype(float)),
        ("(n,3) frame0", x[0], x[:1]), ("(3n,) frame0", x[0].ravel(), x[:1]),
        ("(1,2n,3)", x.reshape(1, 2 * n, 3), None), ("(2nf,n/2,3)", x.reshape(2 * nf, n // 2, 3), None),
        ("(nf,n,2)", x[..., :2], None), ("(nf*n,3)", x.reshape(nf * n, 3), None), ("(nf,n,3,1)", x[..., None], None),
        ("complex", x.astype(complex), None), ("bool", x > 3, None), ("str", x.astype(str), None),
        ("ragged", [[0.0, 0.0, 0.0], [1.0, 1.0]], None), ("empty", np.zeros((0,)), None), ("scalar", 1.0, None),
    ]
    types = [
        ("(n,)", t, t), ("int32", t.astype(np.int32), t), ("list", t.tolist(), t), ("torch", torch.as_tensor(t), t),
        ("float integral", t.astype(float), t), ("(nf,n)", np.tile(t, (nf, 1)), np.tile(t, (nf, 1))),
        ("float 0.9", t + 0.9, None), ("bool", t.astype(bool), None), ("(n-1,)", t[:-1], None),
        ("(n/2,2)", t.reshape(-1, 2), None), ("(1,n,1)", t[None, :, None], None), ("ntypes", np.full(n, ntypes), None),
        ("negative", -np.ones(n, dtype=int), None), ("str", np.array(["O"] * n), None), ("nan", np.full(n, np.nan), None),
        ("(nf+1,n)", np.tile(t, (nf + 1, 1)), None),
    ]
    cells = [
        ("None", None, None), ("(nf,3,3)", c, c), ("(nf,9)", c.reshape(nf, 9), c), ("torch", torch.as_tensor(c), c),
        ("(3,3)", c[0], "one"), ("(9,)", c[0].ravel(), "one"), ("(1,9)", c[:1].reshape(1, 9), "one"),
        ("(nf*9,)", c.ravel(), None), ("(nf,3,2)", c[..., :2], None), ("nan", np.full_like(c, np.nan), None),
        ("complex", c.astype(complex), None), ("str", c.astype(str), None),
    ]
    pbcs = [("default", None, None), ("True", True, True), ("[1,1,0]", [1, 1, 0], [True, True, False]),
            ("np", np.array([True, False, True]), [True, False, True]), ("False", False, False),
            ("'no'", "no", "bad"), ("2", 2, "bad"), ("[True,True]", [True, True], "bad")]
    return coords, types, cells, pbcs


def _expected_refusal(cc, tc, bv, bc, pc) -> set[str]:
    """Names of the arguments a call must be refused for (empty: the call is valid)."""
    bad = set()
    if cc is None:
        bad.add("coords")
    if tc is None:
        bad.add("atom_types")
    if bv is not None and bc is None:
        bad.add("cells")
    if isinstance(pc, str):
        bad.add("pbc")
    elif bv is None and pc is not None and any(np.atleast_1d(pc)):
        bad.add("pbc")  # periodic without a cell
    nf = None if cc is None else cc.shape[0]
    if nf is not None and tc is not None and tc.ndim == 2 and tc.shape[0] != nf:
        bad.update({"coords", "atom_types"})
    if nf is not None and isinstance(bc, str) and nf != 1:
        bad.update({"coords", "cells"})
    if nf is not None and isinstance(bc, np.ndarray) and bc.shape[0] != nf:
        bad.update({"coords", "cells"})
    return bad


def test_fuzz_eval_arguments(dp, frames):
    """Random combinations of argument shapes and dtypes: each call equals the same call in canonical
    form or is refused with a message naming a wrong argument; nothing is silently re-interpreted."""
    x, c, t = frames
    coords, types, cells, pbcs = _variants(x, c, t, dp.get_ntypes())
    rng = np.random.default_rng(14)
    combos = list(itertools.product(coords, types, cells, pbcs))
    good = [v for v in combos if all(x[2] is not None or x[1] is None for x in v[:3]) and not isinstance(v[3][2], str)]
    cases = [good[i] for i in rng.choice(len(good), size=200, replace=False)]  # mostly valid calls
    cases += [combos[i] for i in rng.choice(len(combos), size=300, replace=False)]  # mostly refusals
    checked = refused = 0
    for (cn, cv, cc), (tn, tv, tc), (bn, bv, bc), (pn, pv, pc) in cases:
        case = f"coords {cn}, atom_types {tn}, cells {bn}, pbc {pn}"
        bad = _expected_refusal(cc, tc, bv, bc, pc)
        try:
            got = dp.eval(cv, bv, tv, pbc=pv, atomic=True)
        except (ValueError, TypeError) as err:
            assert bad, f"{case}: refused a valid call: {err}"
            assert any(name in str(err) for name in bad), f"{case}: the message names none of {sorted(bad)}: {err}"
            refused += 1
            continue
        assert not bad, f"{case}: accepted a call with bad {sorted(bad)}"
        box = None if bv is None else (c[:1] if isinstance(bc, str) else bc)
        want = dp.eval(cc, box, tc, pbc=pc, atomic=True)
        assert got[0].shape == (cc.shape[0], 1) and got[1].shape == cc.shape, case
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, err_msg=case)
        checked += 1
    assert checked > 80 and refused > 250, (checked, refused)
