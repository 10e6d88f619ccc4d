"""Pure logic of the oidc backend: settings, claims to a Valt identity, provider groups to Valt groups.

The flow itself is tested against a real provider in tests/test_auth_oidc.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from pydantic import ValidationError
from valt_auth_oidc.backend import OidcAuthBackend, claim_value, identity_from_claims, map_groups
from valt_auth_oidc.client import ProviderError, pick_key, signing_keys
from valt_auth_oidc.config import OidcAuthConfig

from valt_core.auth import SignInRefused
from valt_core.errors import ConfigError

BASE = {"issuer": "https://sso.example.org/realms/clinic", "client_id": "valt", "client_secret": "s"}


def config(**options) -> OidcAuthConfig:
    return OidcAuthConfig(**{**BASE, **options})


def test_group_map_keeps_mapped_groups_once_and_ignores_the_rest():
    mapping = {"idp-a": "Observers", "idp-b": "Observers", "idp-c": "Staff"}
    assert map_groups(["idp-c", "idp-a", "idp-b", "idp-x", 7, None], mapping) == ("Observers", "Staff")
    assert map_groups("idp-c", mapping) == ("Staff",)  # one group sent as a string
    assert map_groups(None, mapping) == () and map_groups({"idp-a": 1}, mapping) == ()
    assert map_groups(["IDP-A"], mapping) == ()  # names are compared exactly


def test_dotted_claim_names_reach_nested_claims_unless_a_claim_has_that_name():
    claims = {"realm_access": {"roles": ["r1"]}, "https://example.org/groups": ["g1"]}
    assert claim_value(claims, "realm_access.roles") == ["r1"]
    assert claim_value(claims, "https://example.org/groups") == ["g1"]
    assert claim_value(claims, "realm_access.missing") is None
    assert claim_value(claims, "realm_access.roles.deeper") is None


def test_identity_from_claims():
    cfg = config(group_map={"g1": "Observers"})
    claims = {"sub": "248289761001", "preferred_username": " jane ", "name": "Jane Doe",
              "email": "jane@example.org", "groups": ["g1", "g2"]}
    identity = identity_from_claims(claims, cfg)
    assert (identity.username, identity.display_name, identity.email) == ("jane", "Jane Doe", "jane@example.org")
    assert identity.groups == ("Observers",)
    # No preferred_username (or an empty one): sub; no mapping: groups are not managed.
    bare = identity_from_claims({"sub": "248289761001", "preferred_username": "", "name": 5},
                                config())
    assert (bare.username, bare.display_name, bare.groups) == ("248289761001", "", None)
    assert identity_from_claims(claims, config(username_claim="email")).username == "jane@example.org"
    with pytest.raises(SignInRefused, match="did not say who"):
        identity_from_claims({"sub": ""}, cfg)
    with pytest.raises(SignInRefused, match="longer than Valt allows"):
        identity_from_claims({"sub": "x", "preferred_username": "a" * 151}, cfg)


def test_every_setting_is_in_the_oidc_doc():
    doc = (Path(__file__).resolve().parents[4] / "docs" / "auth-oidc.md").read_text()
    assert [n for n in OidcAuthConfig.model_fields if f"| `{n}` |" not in doc] == []


@pytest.mark.parametrize("options, problem", [
    ({"issuer": "http://sso.example.org"}, "https"),
    ({"issuer": "http://127.0.0.1:8443/realms/x?x=1"}, "no query"),
    ({"scopes": ["profile"]}, "openid"),
    ({"id_token_algorithms": ["HS256"]}, "choose from"),
    ({"id_token_algorithms": ["none"]}, "choose from"),
    ({"client_secret": None}, "exactly one"),
    ({"client_secret_file": "/x"}, "exactly one"),
    ({"clock_skew_s": 3600}, "less than or equal"),
    ({"client_secrt": "typo"}, "Extra inputs"),
])
def test_bad_settings_are_refused(options, problem):
    with pytest.raises(ValidationError, match=problem):
        config(**options)


def test_loopback_http_is_allowed_for_a_provider_on_this_machine():
    assert config(issuer="http://127.0.0.1:9000").issuer == "http://127.0.0.1:9000"
    assert config(issuer="http://localhost:9000/realms/a").issuer == "http://localhost:9000/realms/a"


def test_every_setting_has_a_description():
    assert [n for n, f in OidcAuthConfig.model_fields.items() if not f.description] == []


def test_the_secret_is_read_from_its_file_and_never_shown(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from a file\n")
    cfg = config(client_secret=None, client_secret_file=secret_file)
    assert cfg.secret() == "from a file"
    assert "from a file" not in repr(cfg)
    assert "s3cr3t" not in repr(config(client_secret="s3cr3t"))
    with pytest.raises(ConfigError, match="client_secret_file .* is empty"):
        secret_file.write_text("\n")
        OidcAuthBackend(cfg)
    with pytest.raises(ConfigError, match="No such file"):
        OidcAuthBackend(config(client_secret=None, client_secret_file=tmp_path / "missing"))
    with pytest.raises(ConfigError, match="ca_file"):
        OidcAuthBackend(config(ca_file=tmp_path / "missing-ca.pem"))
    (tmp_path / "bad-ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="ca_file"):
        OidcAuthBackend(config(ca_file=tmp_path / "bad-ca.pem"))


def test_the_button_label_comes_from_the_settings():
    backend = OidcAuthBackend(config(sign_in_label="Sign in with Contoso"))
    assert backend.sign_in_label == "Sign in with Contoso" and backend.checks_passwords is False
    assert OidcAuthBackend.name == "oidc" and OidcAuthBackend.Config is OidcAuthConfig


def test_a_token_without_kid_takes_the_only_key_of_its_kind():
    rsa, ec, okp = (RSAKey.generate_key(2048, parameters={"kid": "r"}), ECKey.generate_key("P-256"),
                    OKPKey.generate_key("Ed25519"))
    keys = KeySet([rsa, ec, okp])
    assert pick_key(keys, None, "RS256") is rsa and pick_key(keys, None, "PS256") is rsa
    assert pick_key(keys, None, "ES256") is ec and pick_key(keys, None, "EdDSA") is okp
    assert pick_key(keys, "r", "RS256") is rsa and pick_key(keys, "gone", "RS256") is None
    assert pick_key(KeySet([rsa, RSAKey.generate_key(2048)]), None, "RS256") is None  # which one? neither


def test_jwks_keeps_signature_keys_it_can_read():
    sig = RSAKey.generate_key(2048, parameters={"kid": "s"}).as_dict(private=False)
    enc = {**RSAKey.generate_key(2048).as_dict(private=False), "kid": "e", "use": "enc"}
    keys = signing_keys({"keys": [sig, enc, {"kty": "future", "kid": "f"}, "junk"]})
    assert [k.kid for k in keys.keys] == ["s"]
    with pytest.raises(ProviderError, match="publishes no key"):
        signing_keys({"keys": [enc]})
