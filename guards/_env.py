"""Process settings that keep the screening libraries offline and quiet; import before them.

`tldextract` (Presidio's email recognizer) fetches the public-suffix list on first use unless
the URL list is empty, and NeMo Guardrails posts usage statistics unless told not to. Both
read the environment when first imported, so this module must run before either is.
NeMo's and Presidio's loggers can print the text they were given (NeMo dumps the user's
message when a rail fails), so they are capped at ERROR and kept from propagating text.
"""

from __future__ import annotations

import logging
import os

__all__ = ["configure_offline"]

_QUIET_LOGGERS = ("nemoguardrails", "presidio-analyzer", "presidio-anonymizer", "tldextract")


def configure_offline() -> None:
    """Force the offline settings (idempotent; cheap enough to call from every factory)."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    os.environ["NEMO_GUARDRAILS_NO_USAGE_STATS"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    for name in _QUIET_LOGGERS:
        # CRITICAL rather than ERROR: NeMo logs the failing message's text at ERROR.
        logging.getLogger(name).setLevel(logging.CRITICAL)


configure_offline()
