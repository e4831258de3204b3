"""outbound.origin_of: the origin the fetch client compares before sending anything (the Bearer token goes to the
fhirServer's origin only) is the one urllib3 connects to, although it no longer parses the query to find it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.service.outbound import origin_of, parse_http_url


def origin_read_whole(url):
    """The reference: urllib3's reading of the whole URL, query and fragment included."""
    parts = parse_http_url(url)
    if parts is None:
        return None
    return parts.scheme, parts.host.lower(), parts.port or (443 if parts.scheme == "https" else 80)


PIECES = st.sampled_from([
    "http:", "https:", "HTTP:", "ftp:", "//", "/", "?", "#", "@", ":", "[", "]", "::1", "%41", "%", "|", ",", "=",
    "&", "\\", " ", "\t", "example.org", "EHR.Example.org", "127.0.0.1", "8080", "99999", "user:pw", "a", "Z", "-",
    ".", "..", "~", "é", "\u00a0", "\ud800", "xn--", "fhir", "Observation", "code=http://loinc.org|2777-1",
])


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_origin_is_urllib3s_reading_of_the_whole_url(url):
    assert origin_of(url) == origin_read_whole(url)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_text_has_the_origin_of_the_whole_url(url):
    assert origin_of(url) == origin_read_whole(url)


def test_origins_of_the_urls_a_call_sends():
    base = "https://EHR.example.org:8443/fhir"
    assert origin_of(base) == ("https", "ehr.example.org", 8443)
    assert origin_of(base + "/Observation?patient=p1&code=http://loinc.org|2777-1,http://loinc.org|17861-6") == (
        "https", "ehr.example.org", 8443)
    assert origin_of("http://127.0.0.1/Patient/p1") == ("http", "127.0.0.1", 80)
    assert origin_of("https://[::1]/x") == ("https", "[::1]", 443)
    # What precedes the first "?" or "#" decides; an "@" or a host-like text after them is query or fragment.
    assert origin_of("https://ehr.example.org?@evil.example.org/") == ("https", "ehr.example.org", 443)
    assert origin_of("https://ehr.example.org#@evil.example.org/") == ("https", "ehr.example.org", 443)
    assert origin_of("https://user@evil.example.org/?x") == ("https", "evil.example.org", 443)


def test_urls_with_no_origin_to_send_to():
    for url in (None, 42, "", "?x", "#x", "ftp://ehr.example.org/", "https://", "https:///path",
                "https://ehr.example.org:99999/", "https://ehr.example.org/a b",
                "https://ehr.example.org/?q=a\\b", "https://evil.example.org\\@ehr.example.org/"):
        assert origin_of(url) is None, url
