"""Thin on purpose.  golive's pytest plugin (golive/plugin.py) is loaded through its
``pytest11`` entry point once golive is installed (``scripts/setup.sh`` or
``pip install -e .``), so that ``--profile`` and ``--target`` are known before pytest
looks at the command line; it registers the options, loads the profile and target,
starts the embedded lab for ``--target lab``, collects results and writes the reports."""
