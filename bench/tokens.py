"""The production path's credentials: an EHR's ES384 key, the trust file (CDS_ISSUERS) that trusts its public half,
and CDS Hooks JWTs signed with it, one per call.

The service refuses a replayed jti (docs/security.md), so every request of a load run needs a token of its own: a
run gets a pool minted for it (unique jti, exp well after the run, at most the hour the service accepts) written one
per line to a file per wrk thread, and the Lua script (bench/loadgen.py) sends each line once. A pool that runs out
makes the script start again from its first token, and the service then answers 401 to each replay: the run counts
those as errors, so a pool sized too small cannot pass unnoticed. The private key lives only in this process.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "https://ehr.bench.invalid"
KID = "bench-es384"
LIFETIME_SECONDS = 900  # a run lasts seconds; the service accepts at most an hour


class Issuer:
    """An EHR that signs CDS Hooks tokens with a P-384 key generated for this benchmark run."""

    def __init__(self, iss: str = ISSUER, kid: str = KID):
        self.iss, self.kid = iss, kid
        self._key = ec.generate_private_key(ec.SECP384R1())
        self.minted = 0

    def public_jwk(self) -> dict:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "ES384"}

    def write_trust_file(self, path: Path, fhir_servers: tuple[str, ...] = ()) -> Path:
        """The CDS_ISSUERS file (docs/security.md) that trusts this issuer's public key, and nothing else; the FHIR
        servers its calls may have fetched from (the fetch path's fake server, on loopback, must be listed)."""
        issuer = {"jwks": {"keys": [self.public_jwk()]}, "fhir_servers": list(fhir_servers)}
        document = {"about": "calcinosis-cds benchmark: a key generated for one run of python -m bench",
                    "issuers": {self.iss: issuer}}
        path.write_text(json.dumps(document, indent=2))
        return path

    def token(self, audience: str, now: float | None = None) -> str:
        """A fresh token for one call to `audience` (the exact URL called): iss, sub, aud, exp, iat and a new jti."""
        issued = int(now if now is not None else time.time())
        self.minted += 1
        return jwt.encode({"iss": self.iss, "sub": "bench-client", "aud": audience, "iat": issued,
                           "exp": issued + LIFETIME_SECONDS, "jti": uuid.uuid4().hex},
                          self._key, algorithm="ES384", headers={"kid": self.kid, "typ": "JWT"})

    def write_pools(self, audience: str, count: int, threads: int, stem: Path) -> list[Path]:
        """`count` fresh tokens split evenly into one file per wrk thread (`stem`-0, `stem`-1...): each thread of
        wrk runs its own Lua state, so each needs tokens no other thread sends."""
        per_thread = max(1, math.ceil(count / threads))
        now = time.time()
        paths = []
        for thread in range(threads):
            path = stem.with_name(f"{stem.name}-{thread}")
            path.write_text("".join(self.token(audience, now) + "\n" for _ in range(per_thread)))
            paths.append(path)
        return paths


def pool_size(seconds: float, connections: int, requests_per_second: float) -> int:
    """Tokens for a run of `seconds` at up to `requests_per_second`: twice the rate, and a second's worth more per
    connection, so that a run that goes faster than any before it still sends no token twice."""
    return math.ceil(2 * requests_per_second * (seconds + 1)) + 50 * connections
