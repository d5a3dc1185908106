"""The command line, `python -m core …` (core.cli.main), and what its commands share
(core.cli.common). Importing this package loads nothing: each package's command module
imports core.cli.common, and only core.cli.main imports every command module."""
