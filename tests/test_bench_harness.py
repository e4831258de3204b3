"""The benchmark's parts that need no load generator: the tokens pass the service's own check exactly once."""

from __future__ import annotations

import json

import pytest


def test_tokens_pass_the_service_check_once_each(tmp_path):
    from bench.tokens import Issuer, pool_size
    from cds_service.security import Authenticator, ReplayCache, _Rejected, load_issuers

    issuer = Issuer()
    authenticator = Authenticator("required", load_issuers(issuer.write_trust_file(tmp_path / "issuers.json")),
                                  replay=ReplayCache())
    audience = "http://127.0.0.1:8080/cds-services/x"
    paths = issuer.write_pools(audience, 7, 2, tmp_path / "tokens")
    pools = [p.read_text().split() for p in paths]
    assert [len(p) for p in pools] == [4, 4]
    tokens = pools[0] + pools[1]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        claims = authenticator.verify(token, audience)
        assert {"iss", "sub", "aud", "exp", "iat", "jti"} <= set(claims) and claims["aud"] == audience
    with pytest.raises(_Rejected, match="replayed"):
        authenticator.verify(tokens[0], audience)
    assert "d" not in json.loads((tmp_path / "issuers.json").read_text())["issuers"][issuer.iss]["jwks"]["keys"][0]
    assert pool_size(10, 1, 100) > 100 * 10
