"""Print the verification record of tests/test_verify.py: python scripts/record-verdicts.py

Builds the tests' tiny zoo and kit (tests/conftest.py: tiny_zoo_config(), TINY_PROTECT) in a
temporary folder, then verifies every held-out model with card_suspect(card, output=mode) and
prints the rows of RECORDED_VERDICTS (similarity to 6 decimals, p-value to 6 significant digits)
and RECORDED_ZOO_DIGEST, the digest of the zoo's weights hashes. Run it from the repository root.
"""

import sys
import tempfile

sys.path.insert(0, "tests")

from conftest import TINY_PROTECT, tiny_zoo_config  # noqa: E402
from test_verify import _zoo_digest  # noqa: E402

from uapfp.kit import Kit  # noqa: E402
from uapfp.protect import protect  # noqa: E402
from uapfp.suspects.spec import card_suspect  # noqa: E402
from uapfp.verify import verify  # noqa: E402
from uapfp.zoo import build_zoo  # noqa: E402

work = tempfile.mkdtemp()
zoo = build_zoo(f"{work}/zoo", tiny_zoo_config(), progress=False)
protect(zoo, f"{work}/kit", config=TINY_PROTECT, progress=False)
kit = Kit.load(f"{work}/kit")
cards = {c["id"]: c for c in zoo.cards}
for mode in ("probs", "label"):
    for model_id in sorted(kit.info["models"]["heldout"]):
        v = verify(kit, card_suspect(cards[model_id], output=mode))
        print(f'    ("{model_id}", "{mode}", {v.similarity:.6f}, {v.p_value:.6g}, "{v.verdict}"),')
print(_zoo_digest(cards))
