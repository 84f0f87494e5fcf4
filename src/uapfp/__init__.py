"""uapfp: tell whether a suspect classifier was stolen from yours.

Fingerprinting with universal adversarial perturbations and a contrastive encoder
(Peng et al., CVPR 2022). See README.md for the commands and docs/ for the method.
"""

from __future__ import annotations

__version__ = "0.1.0"
