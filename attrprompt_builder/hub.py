"""Whether the Hugging Face Hub can be reached: one quick question before loading a model from it.

Left to itself, huggingface_hub retries an unreachable Hub with backoff for every file of a model,
close to a minute per model offline. The model loaders (the transformers backend's chat model and
the dedup/card embedder) ask here first and read the local cache alone when the answer is no.
"""

from __future__ import annotations

import httpx2

__all__ = ["HUB_PROBE_TIMEOUT_S", "hub_endpoint", "hub_reachable"]

# The Hub answers in well under a second when it can be reached at all.
HUB_PROBE_TIMEOUT_S = 5.0


def hub_endpoint() -> str:
    """The Hub this process talks to (``HF_ENDPOINT``, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def hub_reachable(*, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face Hub (``HF_ENDPOINT``) answers at all: one request, no retry; any HTTP status counts.

    False at once when ``HF_HUB_OFFLINE`` is set.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except httpx2.HTTPError:
        return False
    return True
