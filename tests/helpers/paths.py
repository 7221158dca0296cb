"""Where the shared real photos are: ``../shared/data/cars-vs-bikes`` beside the checkout.

``EDGECLF_REAL_PHOTOS`` overrides it. Tests that need the photos skip cleanly when the folder is absent.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_PHOTOS = Path(os.environ.get("EDGECLF_REAL_PHOTOS", REPO_ROOT.parent / "shared" / "data" / "cars-vs-bikes"))
# The second real set (cats vs dogs, same 200/80/200 per class layout) lives beside the first.
PET_PHOTOS = Path(os.environ.get("EDGECLF_PET_PHOTOS", REAL_PHOTOS.parent / "cats-vs-dogs"))
