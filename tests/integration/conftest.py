"""Integration tests: this folder is on sys.path (pytest puts a conftest's folder there), so
the suites import the shared test lab as ``lab``."""
