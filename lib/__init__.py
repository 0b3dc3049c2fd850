"""layercollapse: decision-transition analysis of layer-pruned LLMs.

The flow of every experiment is ``spec -> option scores (stored) -> metrics ->
statistics -> figure``; each arrow is one function of this package.
"""

__version__ = "0.1.0"

from . import progress as _progress  # noqa: E402,F401  (keeps tqdm's widget warning out of chapters)
