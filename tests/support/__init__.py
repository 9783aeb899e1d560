"""Real-software test bed: processes started on 127.0.0.1 for tests, benchmarks and the localnet."""
