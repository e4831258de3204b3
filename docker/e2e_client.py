"""End-to-end client for the image test (docker/test-image.sh): plays the EHR against a running container.

It runs inside the image under test (which has PyJWT and cryptography), so the test needs nothing on the host but
docker:

    python e2e_client.py keygen DIR          an EC P-384 key pair: DIR/private.pem and DIR/issuers.json (the trust
                                             file to mount into the service, issuer https://ci.test)
    python e2e_client.py check URL DIR       health, readiness, 401 without a token, discovery and a patient-view call
                                             with a signed ES384 token; exit 0 only when every check passed
    python e2e_client.py plan URL DIR N      DIR/plan.json: N signed tokens each for discovery and for the
                                             patient-view service at URL, and the patient-view request, for callers
                                             that cannot sign (docker/proxy_checks.py runs on the host's bare Python)
    python e2e_client.py shared KIND PUBLIC DIR ADMIN A B PROXY
                                             the state the replicas share in PostgreSQL, each replica called at its
                                             own URL (A, B) and through the proxy (PROXY), tokens for PUBLIC
                                             (CDS_PUBLIC_URL). KIND replay: a token A accepted is refused by B and
                                             the proxy; dismissal: an R17 overridden through A (A22) is held back by
                                             B and the proxy; analytics (admin token ADMIN): the same through A, B
                                             and the proxy, counting a call and an override sent through each
    python e2e_client.py tls-cert DIR        a self-signed certificate for 127.0.0.1 and localhost: DIR/tls.crt and
                                             DIR/tls.key (for the proxy's HTTPS server in the Compose stack test)

Prints one line per check. Standard library plus PyJWT/cryptography only.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ISSUER = "https://ci.test"
KID = "ci-test-es384"
SERVICE_ID = "calcinosis-cutis-patient-view"
EXPECTED_RULE = "R18"


def keygen(directory: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP384R1())
    directory.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / "private.pem").write_bytes(pem)
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "alg": "ES384", "use": "sig"})
    issuers = {"issuers": {ISSUER: {"jwks": {"keys": [jwk]}}}}
    (directory / "issuers.json").write_text(json.dumps(issuers, indent=2))
    print(f"keygen: EC P-384 key {KID!r} for issuer {ISSUER}, trust file {directory / 'issuers.json'}")


def token(directory: Path, audience: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    key = (directory / "private.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="ES384", headers={"typ": "JWT", "kid": KID})


def http(method: str, url: str, body: dict | None = None, bearer: str | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def patient_view_request() -> dict:
    taken = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
    phosphate = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2777-1", "display": "Phosphate [Mass/volume] in Serum or Plasma"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": taken,
        "valueQuantity": {"value": 5.8, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]},
        "subject": {"reference": "Patient/p1"},
    }
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01", "gender": "female"},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition}]},
            "observations": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": phosphate}]},
            "medicationRequests": None,
            "medicationStatements": None,
            "procedures": None,
            "serviceRequests": None,
        },
    }


def plan(base_url: str, directory: Path, count: int) -> None:
    """Tokens minted ahead for a caller without PyJWT; each has its own jti (the service refuses a replayed one) and
    lives 300 s, so the plan is for use right away."""
    base_url = base_url.rstrip("/")
    discovery_url = f"{base_url}/cds-services"
    service_url = f"{base_url}/cds-services/{SERVICE_ID}"
    document = {
        "discovery": {"url": discovery_url, "tokens": [token(directory, discovery_url) for _ in range(count)]},
        "patientView": {
            "url": service_url,
            "tokens": [token(directory, service_url) for _ in range(count)],
            "request": patient_view_request(),
            "expectedRule": EXPECTED_RULE,
        },
    }
    (directory / "plan.json").write_text(json.dumps(document))
    print(f"plan: {count} signed tokens each for {discovery_url} and {service_url}")


def tls_certificate(directory: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calcinosis-cds docker test")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    print(f"tls-cert: self-signed certificate for localhost and 127.0.0.1 in {directory}")


def check(base_url: str, directory: Path) -> int:
    base_url = base_url.rstrip("/")
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}")
        if not ok:
            failures.append(name)

    status, body = http("GET", f"{base_url}/healthz")
    expect("GET /healthz is 200", status == 200, f"{status} {body[:200]!r}")
    status, body = http("GET", f"{base_url}/readyz")
    ready = status == 200 and json.loads(body or b"{}").get("status") == "ready"
    expect("GET /readyz is 200 and ready", ready, f"{status} {body[:200]!r}")

    service_url = f"{base_url}/cds-services/{SERVICE_ID}"
    status, body = http("GET", f"{base_url}/cds-services")
    expect("discovery without a token is 401", status == 401, f"{status} {body[:200]!r}")
    status, body = http("GET", f"{base_url}/cds-services", bearer=token(directory, f"{base_url}/cds-services"))
    ids = [s.get("id") for s in json.loads(body).get("services", [])] if status == 200 else []
    expect(f"discovery with a signed token lists {SERVICE_ID}", SERVICE_ID in ids, f"{status} {body[:300]!r}")

    request = patient_view_request()
    status, body = http("POST", service_url, request)
    expect("patient-view without a token is 401", status == 401, f"{status} {body[:200]!r}")
    status, body = http("POST", service_url, request, bearer=token(directory, f"{base_url}/wrong-audience"))
    expect("patient-view with a token for another aud is 401", status == 401, f"{status} {body[:200]!r}")

    request["hookInstance"] = str(uuid.uuid4())
    status, body = http("POST", service_url, request, bearer=token(directory, service_url))
    expect("patient-view with a signed ES384 token is 200", status == 200, f"{status} {body[:500]!r}")
    cards = json.loads(body).get("cards", []) if status == 200 else []
    rules = [
        rule
        for card in cards
        for rule in ((card.get("extension") or {}).get("calcinosis-cds") or {}).get("rules", [])
    ]
    expect(
        f"the calcinosis patient gets a card from rule {EXPECTED_RULE}",
        EXPECTED_RULE in rules,
        f"{len(cards)} cards, rules {rules}; body {body[:500]!r}",
    )
    if cards:
        print(f"  cards: {len(cards)}, rules: {', '.join(sorted(set(rules)))}")

    if failures:
        print(f"e2e: {len(failures)} check(s) failed: {'; '.join(failures)}")
        return 1
    print("e2e: all checks passed")
    return 0


def renal_patient_view(patient: str) -> dict:
    """Calcinosis and an eGFR of 45: R01, R17 and R20, the cards a clinician's override silences (A22)."""
    request = patient_view_request()
    request["context"]["patientId"] = patient
    taken = (datetime.now(timezone.utc) - timedelta(days=20)).replace(microsecond=0).isoformat()
    egfr = {
        "resourceType": "Observation", "id": "egfr", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8", "display": "eGFR CKD-EPI 2021"}]},
        "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": taken,
        "valueQuantity": {"value": 45, "unit": "mL/min/{1.73_m2}", "system": "http://unitsofmeasure.org",
                          "code": "mL/min/{1.73_m2}"},
    }
    prefetch = json.loads(json.dumps(request["prefetch"]).replace('"Patient/p1"', json.dumps(f"Patient/{patient}")))
    prefetch["patient"]["id"] = patient
    prefetch["observations"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": egfr}]}
    request["prefetch"] = prefetch
    return request


def shared(kind: str, public: str, directory: Path, admin: str, replica_a: str, replica_b: str, proxy: str) -> int:
    public, run = public.rstrip("/"), uuid.uuid4().hex[:8]
    service_path = f"/cds-services/{SERVICE_ID}"
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}")
        if not ok:
            failures.append(name)

    def call(base: str, patient: str, bearer: str | None = None) -> tuple[int, list[dict]]:
        body = {**renal_patient_view(patient), "hookInstance": str(uuid.uuid4())}
        status, raw = http("POST", base.rstrip("/") + service_path, body,
                           bearer=bearer or token(directory, public + service_path))
        return status, (json.loads(raw).get("cards", []) if status == 200 else [])

    def card_with(cards: list[dict], rule: str) -> dict | None:
        return next((c for c in cards if rule in c["extension"]["calcinosis-cds"]["rules"]), None)

    def feedback(base: str, card: dict) -> int:
        entry = {"card": card["uuid"], "outcome": "overridden",
                 "outcomeTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        path = f"{service_path}/feedback"
        return http("POST", base.rstrip("/") + path, {"feedback": [entry]}, bearer=token(directory, public + path))[0]

    def analytics(base: str) -> dict:
        status, raw = http("GET", base.rstrip("/") + "/analytics/rules?weeks=2", bearer=admin)
        return {r["rule"]: r["totals"] for r in json.loads(raw)["rules"]} if status == 200 else {"status": status}

    if kind == "replay":
        once = token(directory, public + service_path)
        expect("a token is accepted by cds-a", call(replica_a, f"replay-{run}", once)[0] == 200)
        expect("the same token is refused by cds-b (401)", call(replica_b, f"replay-{run}", once)[0] == 401)
        expect("and through the proxy (401)", call(proxy, f"replay-{run}", once)[0] == 401)
        expect("a fresh token is accepted by cds-b", call(replica_b, f"replay-{run}")[0] == 200)
    elif kind == "dismissal":
        patient = f"dismissed-{run}"
        status, cards = call(replica_a, patient)
        r17 = card_with(cards, "R17")
        expect("cds-a issues an R17 card for the renal patient", status == 200 and r17 is not None, f"{status}")
        if r17 is not None:
            expect("R17 overridden through cds-a (feedback 200)", feedback(replica_a, r17) == 200)
            status, cards = call(replica_b, patient)
            expect("cds-b holds R17 back for that patient", status == 200 and card_with(cards, "R17") is None)
            status, cards = call(proxy, patient)
            expect("so does the proxy", status == 200 and card_with(cards, "R17") is None)
            status, cards = call(replica_b, f"other-{run}")
            expect("another patient still gets R17 from cds-b", card_with(cards, "R17") is not None)
    else:
        before = analytics(proxy)
        for n, base in enumerate((replica_a, replica_b)):  # a call and an override through each, a patient each
            status, cards = call(base, f"counted-{run}-{n}")
            r17 = card_with(cards, "R17")
            expect(f"{base} issues an R17 card", status == 200 and r17 is not None, f"{status}")
            if r17 is not None:
                expect(f"R17 overridden through {base}", feedback(base, r17) == 200)
        seen = [analytics(base) for base in (replica_a, replica_b, proxy)]
        expect("analytics agree through cds-a, cds-b and the proxy", seen[0] == seen[1] == seen[2], f"{seen}")
        grew = {name: seen[0].get("R17", {}).get(name, 0) - before.get("R17", {}).get(name, 0)
                for name in ("issued", "overridden")}
        expect("analytics count the calls and feedback of both replicas (R17 issued +2, overridden +2)",
               grew == {"issued": 2, "overridden": 2}, f"{grew}")
    if failures:
        print(f"shared: {len(failures)} check(s) failed: {'; '.join(failures)}")
        return 1
    print("shared: all checks passed")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "keygen":
        keygen(Path(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], Path(argv[3]))
    if len(argv) == 5 and argv[1] == "plan":
        plan(argv[2], Path(argv[3]), int(argv[4]))
        return 0
    if len(argv) == 9 and argv[1] == "shared" and argv[2] in ("replay", "dismissal", "analytics"):
        return shared(argv[2], argv[3], Path(argv[4]), argv[5], argv[6], argv[7], argv[8])
    if len(argv) == 3 and argv[1] == "tls-cert":
        tls_certificate(Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
