"""The Lotse service: command line, composition root and application factory."""
