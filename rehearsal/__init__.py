"""Offline rehearsal: what a stack will do, checked by the policy pack and proven against the
embedded Recovery Services emulator, without Azure or the Pulumi CLI."""
