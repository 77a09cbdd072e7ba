"""W1-W6 with pytest-benchmark, on both backends (see conftest.py).

    python -m pytest benchmarks --benchmark-enable            # N = 2,000 (BENCH_N to change)
    BENCH_N=50000 python -m pytest benchmarks --benchmark-enable

Run as part of the test suite (benchmarks disabled), each workload runs once as a smoke test
that checks its result. The side-by-side numbers against raw sqlite3 and the peers come from
compare.py.
"""

from __future__ import annotations

from conftest import COMPILED, N, modules_binding_core, new_users

ROUNDS = 5


def _rounds(benchmark, setup, run):
    return benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)


def test_w1_persist_and_flush_new(benchmark, workspace):
    ws = workspace

    def setup():
        return (ws.em(seeded=False),), {}

    def run(em):
        em.persist(new_users(ws.user_cls, N))
        em.flush()
        return em

    em = _rounds(benchmark, setup, run)
    assert em.count(ws.user_cls) == N


def test_w2_load(benchmark, workspace):
    ws = workspace
    users = _rounds(benchmark, lambda: ((ws.em(seeded=True),), {}), lambda em: em.find(ws.user_cls))
    assert len(users) == N and users[-1].email == f"user{N - 1}@example.com"


def _loaded(ws):
    em = ws.em(seeded=True)
    return em, em.find(ws.user_cls, order_by={"id": "asc"})


def test_w3_flush_ten_percent_modified(benchmark, workspace):
    ws = workspace

    def setup():
        em, users = _loaded(ws)
        for u in users[::10]:
            u.age += 1000
        return (em,), {}

    def run(em):
        em.flush()
        return em

    em = _rounds(benchmark, setup, run)
    assert em.count(ws.user_cls, {"age": {"$gte": 1000}}) == len(range(0, N, 10))


def test_w4_flush_nothing_changed(benchmark, workspace):
    ws = workspace
    log: list[str] = []
    em, users = _loaded(ws)
    em.connection.log_queries = True
    em.connection.emit = log.append
    benchmark(em.flush)
    assert log == [], "a no-change flush runs no SQL"


def test_w5_lookups_by_pk_from_identity_map(benchmark, workspace):
    ws = workspace
    em, users = _loaded(ws)
    keys = [u.id for u in users[: min(10_000, N)]]

    def run():
        find_one = em.find_one
        cls = ws.user_cls
        return [find_one(cls, k) for k in keys]

    found = benchmark(run)
    assert found == users[: len(keys)]


def test_w6_flush_ten_percent_removed(benchmark, workspace):
    ws = workspace

    def setup():
        em, users = _loaded(ws)
        for u in users[::10]:
            em.remove(u)
        return (em,), {}

    def run(em):
        em.flush()
        return em

    em = _rounds(benchmark, setup, run)
    assert em.count(ws.user_cls) == N - len(range(0, N, 10))


def test_backend_swap_reaches_every_module(workspace, backend):
    """Every orm module holding `core` sees the backend under test, and entities made now
    use it: otherwise the "python" rows would measure the compiled core."""
    assert all(m.core is backend for m in modules_binding_core())
    em = workspace.em(seeded=True)
    user = em.find_one(workspace.user_cls, 1)
    assert type(user).__setattr__ is backend.tracked_setattr
    assert type(em._uow).__module__ == "orm.unit_of_work.unit_of_work"
    assert (backend is COMPILED) == (backend.BACKEND == "cython")
