from scalper.bench import BENCHMARKS, run_benchmarks


def test_every_benchmark_runs_and_reports_figures():
    results = run_benchmarks(repeats=1, scale=0.01)
    assert [r.name for r in results] == list(BENCHMARKS)
    for r in results:
        assert r.calls >= 1
        assert r.median_us > 0
        assert r.best_us <= r.median_us
        assert r.per_second > 0


def test_filter_selects_by_name():
    results = run_benchmarks(only="reconcile(100 ", repeats=1, scale=0.02)
    assert [r.name for r in results] == ["reconcile(100 orders)"]
