"""Quarto pre-render step: write the site's shared assets (the Vega bundle every chart page loads once).

Run by ``quarto render`` (``project: pre-render`` in ``_quarto.yml``) from the project root, with the
Python that has ``layercollapse`` installed (activate ``.venv`` or set ``QUARTO_PYTHON``).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from layercollapse.site.vega import write_vega_bundle
except ImportError as error:  # the Python Quarto found is not the project's
    sys.exit(f"scripts/site_assets.py: cannot import layercollapse with {sys.executable} ({error}); "
             "run quarto with the project's environment active (. .venv/bin/activate) or set QUARTO_PYTHON=.venv/bin/python")

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]  # Quarto runs it from the project root
    path = write_vega_bundle(root)
    print(f"site assets: {path.relative_to(root)} ({path.stat().st_size / 1e6:.1f} MB, loaded once per page)")
