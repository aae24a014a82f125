"""progress= callbacks, the tqdm bar, and Ctrl-C (KeyboardInterrupt) during
long computations: the same results with a callback as without, reports in
order that end at their totals, and a stopped computation returns nothing."""

import _thread
import threading
import time

import numpy as np
import pytest

import isodose
from conftest import require


def water(shape=(21, 60, 21)):
    nz, ny, nx = shape
    return isodose.CtImage(np.zeros(shape), (2.0, 2.0, 2.0), (-(nx - 1), 1.0, -(nz - 1)))


def proton_plan():
    beam = isodose.ProtonBeam(0.0, 0.0, (0.0, 60.0, 0.0), [100.0, 110.0], [-5.0, 5.0], [0.0, 0.0], [1e8, 2e8])
    return isodose.ProtonPlan([beam])


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, stage, done, total):
        self.calls.append((stage, done, total))

    def stages(self):
        out = []
        for stage, _, _ in self.calls:
            if stage not in out:
                out.append(stage)
        for stage in out:
            seen = [(d, t) for s, d, t in self.calls if s == stage]
            assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1], seen
            assert all(a[0] <= b[0] and a[1] == b[1] for a, b in zip(seen, seen[1:])), seen
        return out


def implant():
    rng = np.random.default_rng(3)
    return isodose.Implant("Amersham6711", positions_mm=rng.uniform(-15, 15, (20, 3)), air_kerma_strength_u=0.5)


def test_callbacks_see_every_stage_and_change_nothing():
    grid = isodose.Grid(shape=(20, 24, 28), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-27.0, -23.0, -19.0))
    plain = isodose.brachy_dose(implant(), grid, backend="cpu").array
    rec = Recorder()
    watched = isodose.brachy_dose(implant(), grid, backend="cpu", progress=rec).array
    np.testing.assert_array_equal(plain, watched)
    # the start and the end at least (and one every 50 ms between)
    assert rec.stages() == ["TG-43 dose"] and len(rec.calls) >= 2

    machine = isodose.ProtonMachine.generic()
    ct, plan = water(), proton_plan()
    rec = Recorder()
    d = isodose.proton_dose(ct, plan, machine, backend="cpu", progress=rec)
    np.testing.assert_array_equal(d.array, isodose.proton_dose(ct, plan, machine, backend="cpu").array)
    assert rec.stages() == ["ray tracing", "proton dose"]
    rec = Recorder()
    dij = isodose.proton_dij(ct, plan, machine, backend="cpu", progress=rec)
    # one pass when the estimated matrix fits the limit; counted first when not
    assert rec.stages() == ["ray tracing", "dij: filling"]
    rec = Recorder()
    tight = isodose.proton_dij(ct, plan, machine, backend="cpu", progress=rec, max_bytes=8 * (dij.nnz + dij.shape[1] + 1))
    assert rec.stages() == ["ray tracing", "dij: counting entries", "dij: filling"]
    assert (tight != dij).nnz == 0
    np.testing.assert_allclose(dij @ plan.beams[0].weights, d.array.ravel(), atol=1e-5 * d.array.max())

    rec = Recorder()
    g = isodose.gamma(d, d, backend="cpu", progress=rec)
    assert g.pass_rate == 1.0 and rec.stages() == ["gamma"]


def test_an_exception_in_the_callback_stops_and_propagates():
    grid = isodose.Grid(shape=(20, 24, 28), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-27.0, -23.0, -19.0))

    class Stop(Exception):
        pass

    calls = []

    def stop_at_second(stage, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise Stop(f"{stage} {done}/{total}")

    # the second report comes during the loop or at its end: either way the
    # exception stops the call, no dose is returned
    with pytest.raises(Stop, match="TG-43 dose"):
        isodose.brachy_dose(implant(), grid, backend="cpu", progress=stop_at_second)
    assert len(calls) == 2 and calls[0] == 0
    with pytest.raises(isodose.InputError, match="progress must be"):
        isodose.brachy_dose(implant(), grid, backend="cpu", progress=42)


def test_ctrl_c_stops_a_long_computation():
    """A KeyboardInterrupt (Ctrl-C) arriving while the engine runs, with the
    GIL released and no callback, stops it at the next report (50 ms)."""
    grid = isodose.Grid(shape=(120, 160, 160), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(-79.5, -79.5, -59.5))
    rng = np.random.default_rng(1)
    seeds = isodose.Implant("Amersham6711", positions_mm=rng.uniform(-20, 20, (100, 3)), air_kerma_strength_u=0.5)
    # 3.1 M voxels x 100 seeds: seconds on two cores, far longer than the
    # 0.2 s after which the interrupt arrives
    started = threading.Event()
    reports = []

    def note(stage, done, total):
        reports.append((done, total))
        started.set()

    def interrupt():
        started.wait(30)
        time.sleep(0.2)
        _thread.interrupt_main()

    t = threading.Thread(target=interrupt)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        isodose.brachy_dose(seeds, grid, backend="cpu", progress=note)
    t.join()
    done, total = reports[-1]
    assert done < total, "the computation ran to its end before stopping"


def test_progress_true_shows_a_tqdm_bar(capsys):
    require("tqdm")
    grid = isodose.Grid(shape=(10, 12, 14), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-13.0, -11.0, -9.0))
    d = isodose.brachy_dose(implant(), grid, backend="cpu", progress=True)
    assert d.array.shape == (10, 12, 14)
    assert "TG-43 dose" in capsys.readouterr().err


def test_a_tqdm_bar_of_the_callers_is_reused_and_left_open():
    """progress=bar: the caller's tqdm bar is reset and relabelled for each
    stage, ends at the last stage's total and stays open."""
    tqdm = require("tqdm").tqdm
    bar = tqdm(disable=False, leave=False)
    try:
        dij = isodose.proton_dij(water(), proton_plan(), isodose.ProtonMachine.generic(), backend="cpu", progress=bar)
        assert dij.shape[1] == 2
        assert bar.desc.startswith("dij: filling")
        assert bar.total == 2 and bar.n == bar.total  # two spots filled
        assert not bar.disable
        n = bar.n
        bar.update(1)  # still open: it counts on
        assert bar.n == n + 1
    finally:
        bar.close()
    with pytest.raises(isodose.InputError, match="tqdm bar or a callable"):
        isodose.proton_dij(water(), proton_plan(), isodose.ProtonMachine.generic(), progress=42)


def test_the_gil_is_released_while_the_engine_runs():
    """A Python thread keeps running while the main thread computes a dose
    with no callback: the engine holds no GIL during its work."""
    grid = isodose.Grid(shape=(60, 120, 120), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(-59.5, -59.5, -29.5))
    rng = np.random.default_rng(3)
    seeds = isodose.Implant("Amersham6711", positions_mm=rng.uniform(-15, 15, (40, 3)), air_kerma_strength_u=0.5)
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = counter[0]
        t0 = time.perf_counter()
        isodose.brachy_dose(seeds, grid, backend="cpu")
        elapsed = time.perf_counter() - t0
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
    # with the GIL held the thread would advance only at the call's edges;
    # released, it counts on through the whole computation
    assert elapsed > 0.05, elapsed
    assert during > 20000, (during, elapsed)
