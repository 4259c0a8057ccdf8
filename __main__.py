"""Entry point of the protected-vm Pulumi program: everything lives in ``components``."""

from components.program import deploy

deploy()
