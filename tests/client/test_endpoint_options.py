"""Endpoint options that contradict each other are refused in one line before anything is sent."""

from __future__ import annotations

import pytest

from attrprompt_builder import cli
from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.pipeline import build_dataset, make_builder

NO_DEDUP = {"dedup_threshold": None}


def test_a_provider_and_an_endpoint_are_refused_together():
    with pytest.raises(ConfigError) as caught:
        BackendSpec.resolve(provider="auto", endpoint="http://user:secret@host:8080")
    message = str(caught.value)
    assert message.startswith("provider + endpoint: got provider='auto' and endpoint http://host:8080;")
    assert "secret" not in message and "\n" not in message


def test_the_cli_names_both_flags_and_sends_nothing(tgi, tmp_path, capsys):
    code = cli.main(["generate", "sst2", "--provider", "auto", "--endpoint", tgi.url, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: --provider + --endpoint: got ")
    assert tgi.url in err and len(err.splitlines()) == 1 and tgi.count() == 0


def test_a_provider_with_the_local_backend_is_refused():
    with pytest.raises(ConfigError, match="^provider: got 'auto'; backend='transformers' runs the model here"):
        BackendSpec.resolve(backend="transformers", model="some/model", provider="auto")


def test_url_credentials_and_a_token_are_refused_together(tgi, tmp_path):
    """Both would go in the one Authorization header (httpx puts the URL's basic auth over the bearer token)."""
    url = tgi.url.replace("http://", "http://user:pw-secret@")
    builder = make_builder("sst2", endpoint=url, token="sk-token", samples_per_class=1, journal_dir=str(tmp_path), **NO_DEDUP)
    with pytest.raises(ConfigError) as caught:
        build_dataset(builder)
    message = str(caught.value)
    assert message.startswith(f"token + endpoint: got a token and credentials inside the endpoint URL {tgi.url};")
    assert "pw-secret" not in message and "sk-token" not in message
    assert tgi.count() == 0


def test_url_credentials_alone_are_sent_as_basic_auth(tgi, tmp_path):
    url = tgi.url.replace("http://", "http://user:pw@")
    builder = make_builder("sst2", endpoint=url, samples_per_class=1, journal_dir=str(tmp_path), **NO_DEDUP)
    assert build_dataset(builder).num_rows == 2
    chat = [r for r in tgi.requests if r["route"] == "/v1/chat/completions"]
    assert {r["headers"].get("authorization") for r in chat} == {"Basic dXNlcjpwdw=="}  # base64("user:pw")
