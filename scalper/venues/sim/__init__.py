"""The simulated exchange: ground-truth engine, seeded faults, in-process and loopback access."""
