"""Test tooling that never ships with the deploying packages (``components``, ``protectedvm``):
the mock evaluator of the program (it uses private Pulumi APIs) and the provider host with the
emulator's credential. Tests, the offline rehearsal and the benchmarks import it from a checkout."""
