"""KL divergence and top-1 agreement of candidates against a reference model, through a running llama-server.

* :mod:`.divergence`: per-position figures from top-K lists (no server);
* :mod:`.figures`: per-preset and per-category figures clustered by document, paired and non-inferiority
  comparisons;
* :mod:`.corpus`: the documents measured on (user files, the shipped corpora);
* :mod:`.fetch`: top-K lists from a server (two ways of asking), through :mod:`.endpoints`; :mod:`.cache`: the
  reference's lists on disk;
* :mod:`.measure`: reference (cached) and candidate to figures, with the guards;
* :mod:`.perplexity`: running llama.cpp's own ``llama-perplexity --kl-divergence`` for a cross-check.
"""

from __future__ import annotations
