"""Training scripts in the frameworks' usual shapes, run by tests/test_scripts_*.py as a user
runs them (a fresh Python process, the command line, the files they leave)."""
