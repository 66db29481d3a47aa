"""The trio actor system around the core: supervision and the actors it runs."""
