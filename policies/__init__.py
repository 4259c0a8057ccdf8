"""CrossGuard policy pack for protected-vm: every VM backed up, in a secure vault, with a policy
that meets the environment's retention. Importable as ``policies.*`` from the repo root (tests,
rehearsal) and from the pack directory (``__main__.py`` puts the repo root on ``sys.path``)."""
