"""What may be written down about an endpoint or a model: no credentials, no tokens, no local paths."""

from __future__ import annotations

import pytest

from attrprompt_builder.redaction import display_name, endpoint_identity, host_only, redact


# -- redact ---------------------------------------------------------------------------------------
def test_redact_drops_url_credentials_and_keeps_the_rest_of_the_url():
    assert redact("see http://user:pass@host/v1 and ftp://token@files:21/x") == "see http://host/v1 and ftp://files:21/x"


@pytest.mark.parametrize(
    "secret",
    ["hf_AbCd1234", "HF_ABCD1234", "sk-proj-abcd1234", "sk_live_abcd", "api_1234abcd", "key_abcd", "Bearer eyJhbGci.x.y"],
)
def test_redact_replaces_token_like_strings(secret):
    assert redact(f"failed with {secret} (401)") == "failed with [redacted] (401)"


@pytest.mark.parametrize("text", ["hf_hub", "api_key", "my_hf_token1234", "huggingface_hub", "risky-business"])
def test_redact_leaves_ordinary_identifiers_alone(text):
    # Short suffixes and prefixes inside a longer word are names, not tokens.
    assert redact(text) == text


# -- host_only ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("https://user:pw@Example.com:8443/v1?token=hf_abcdef", "example.com:8443"),
        ("http://hf_abcdef@gpu-box/generate", "gpu-box"),
        ("example.com:8080", "example.com:8080"),
        ("localhost", "localhost"),
        ("http://host:99999/", "host"),  # a port that cannot be one is dropped rather than failing
    ],
)
def test_host_only_keeps_host_and_port_and_nothing_else(value, shown):
    assert host_only(value) == shown


# -- endpoint_identity ----------------------------------------------------------------------------
def test_endpoint_identity_strips_credentials_query_fragment_and_trailing_slash():
    typed = "  HTTP://User:Pw@Example.COM:8080/V1/?key=hf_abcdef#part "
    assert endpoint_identity(typed) == "http://example.com:8080/V1"  # a path is case-sensitive, a host is not


def test_endpoint_identity_is_the_same_however_the_url_was_typed():
    # Part of every journal key: the same server typed two ways must resume the same journal.
    variants = ["https://api.example.com/v1", "https://API.example.com/v1/", "https://me:secret@api.example.com/v1?x=1"]
    assert {endpoint_identity(url) for url in variants} == {"https://api.example.com/v1"}


def test_endpoint_identity_keeps_what_tells_servers_apart():
    urls = ["http://h:8080", "http://h:8081", "https://h:8080", "http://h:8080/v1"]
    assert len({endpoint_identity(url) for url in urls}) == 4


# -- display_name ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/home/alice/models/llama-3", "local folder …/models/llama-3"),
        ("~/m/x", "local folder …/m/x"),
        ("C:\\Users\\bob\\models\\m", "local folder …/models/m"),
        ("/srv/hf_abcdef/m", "local folder …/[redacted]/m"),
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("hf_secretTOKEN", "[redacted]"),
        (3, "3"),
    ],
)
def test_display_name_hides_local_paths_and_tokens_and_keeps_hub_ids(value, shown):
    assert display_name(value) == shown
