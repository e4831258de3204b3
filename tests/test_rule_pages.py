"""The rule pages through the HTTP API: GET /rules and GET /rules/{id}, HTML for people, no token, nothing external."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

import cards
from cards.bibliography import source_list
from cds_service.service import rule_pages as pages_module
from cds_service.service.rule_pages import rule_page
from cds_service.service.rule_reads import rule_reads

from .conftest import ROOT, make_app
from .test_cors import SANDBOX, required_app

KNOWLEDGE = cards.knowledge()
PAGE_IDS = [KNOWLEDGE.gate.id, *KNOWLEDGE.rules]
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what a browser sends


class _Page(HTMLParser):
    """The parts of a page the checks need: every tag, every URL attribute, every id, and the visible text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.outside_sources: list[str] = []  # the text outside the list of sources (which cite one another)
        self._skip = 0
        self._in_source = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data", "formaction") and value is not None:
                self.urls.append(value)
            if name == "id":
                self.ids.add(value)
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "div" and "source" in (dict(attrs).get("class") or "").split():
            self._in_source = True  # a source entry holds no other div

    def handle_endtag(self, tag):
        if tag in ("style", "title"):
            self._skip -= 1
        if tag == "div":
            self._in_source = False

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
            if not self._in_source:
                self.outside_sources.append(data)

    @property
    def visible(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))


@pytest.fixture(scope="module")
def client():
    return make_app().test_client()


def _get(client, path: str) -> tuple[object, _Page]:
    response = client.get(path, headers=HTML)
    return response, _Page(response.get_data(as_text=True))


def _allowed_external(rule_id: str | None) -> set[str]:
    """The only links to another host a page may have: the article's, and the rule's own source's."""
    allowed = {KNOWLEDGE.source.url}
    if rule_id in KNOWLEDGE.rules:
        own = getattr(KNOWLEDGE.rules[rule_id], "source", None)
        if getattr(own, "url", None):
            allowed.add(own.url)
    return allowed


def _assert_self_contained(response, page: _Page, rule_id: str | None = None):
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script" not in page.tags and "<script" not in response.get_data(as_text=True).lower()
    assert not {"link", "img", "iframe", "object", "embed", "form"} & set(page.tags)  # nothing loaded, nothing sent
    for url in page.urls:
        if url.startswith(("/", "#")) and not url.startswith("//"):
            continue
        assert url in _allowed_external(rule_id), f"external URL {url!r} on the page of {rule_id}"
    assert "url(" not in response.get_data(as_text=True)  # no style sheet fetching a font or an image
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "/rules" in page.urls  # every page links back to the catalogue


def test_the_catalogue_lists_the_gate_and_every_rule(client):
    response, page = _get(client, "/rules")
    _assert_self_contained(response, page)
    for rule_id in PAGE_IDS:
        assert f"/rules/{rule_id}" in page.urls
    for declared in KNOWLEDGE.rules.values():
        assert declared.title in page.visible
        assert declared.evidence_level in page.visible
    assert KNOWLEDGE.gate.title in page.visible


@pytest.mark.parametrize("rule_id", PAGE_IDS)
def test_each_rule_page_names_the_rule_and_loads_nothing_from_elsewhere(client, rule_id):
    response, page = _get(client, f"/rules/{rule_id}")
    _assert_self_contained(response, page, rule_id)
    declared = KNOWLEDGE.rules.get(rule_id, KNOWLEDGE.gate)
    assert declared.title in page.visible
    assert declared.trigger in page.visible
    assert re.search(rf"<title>{re.escape(rule_id)} ", response.get_data(as_text=True))
    if rule_id in KNOWLEDGE.rules:
        assert declared.article in page.visible
        assert declared.evidence_level in page.visible
        assert KNOWLEDGE.citation(declared) in page.visible  # with the article's reference numbers
        assert KNOWLEDGE.source.url in page.urls


@pytest.mark.parametrize("rule_id", PAGE_IDS)
def test_each_rule_page_shows_exactly_the_codes_its_rule_reads(client, rule_id):
    _, page = _get(client, f"/rules/{rule_id}")
    reads = rule_reads(rule_id)
    terms = cards.terminology()
    shown = {i for i in page.ids if i.startswith(("value-set-", "lab-", "observation-", "referral-"))}
    assert shown == ({f"value-set-{n}" for n in reads.value_sets} | {f"lab-{n}" for n in reads.labs}
                     | {f"observation-{n}" for n in reads.observations} | {f"referral-{k}" for k in reads.referrals})
    for name in reads.value_sets:
        for entry in terms.value_set(name).codes:
            assert entry["code"] in page.visible and entry["status"] in page.visible
    for name in reads.labs:
        for code in terms.labs[name].codes:
            assert code in page.visible
    for threshold in reads.thresholds:
        assert threshold.name in page.visible and f"{threshold.value:g}" in page.visible


def test_a_code_the_rule_does_not_read_is_not_on_its_page(client):
    _, r05 = _get(client, "/rules/R05")
    assert "N18.4" in r05.visible  # renal insufficiency: read
    assert "L94.2" not in r05.visible  # calcinosis cutis: R05 itself does not read the gate's codes
    assert "2777-1" not in r05.visible  # phosphate: not read by R05
    _, g0 = _get(client, "/rules/G0")
    assert "L94.2" in g0.visible and "N18.4" not in g0.visible


def test_thresholds_show_their_value_and_what_they_are(client):
    _, page = _get(client, "/rules/R05")
    assert "MAGNESIUM_CRITICAL_MG_DL" in page.visible
    assert "critical >= 5 mg/dL" in page.visible
    assert 'ADULT_DEFAULT_HIGH["magnesium"]' in page.visible


def test_every_source_key_on_a_page_is_resolved_on_it(client):
    sources = source_list().sources
    resolved = 0
    for rule_id in PAGE_IDS:
        response, page = _get(client, f"/rules/{rule_id}")
        linked = {url[1:] for url in page.urls if re.fullmatch(r"#S\d+", url)}
        named = set(re.findall(r"(?<![\w.])(S\d{1,2})(?![\w]|\.\d)", " ".join(page.outside_sources)))
        resolved += len(named)
        assert linked <= page.ids, f"{rule_id}: links to sources not on the page"
        for key in named & set(sources):
            assert key in page.ids, f"{rule_id} names {key} without its entry"
            assert sources[key].title.replace("*", "") in page.visible.replace("*", "")
    assert resolved > len(PAGE_IDS)  # the codes' sources, at least
    _, r05 = _get(client, "/rules/R05")
    assert "Mayo Clinic Laboratories test catalog" in r05.visible  # S10: the aluminium reference values


def test_the_verification_statuses_shown_are_explained(client):
    meanings = source_list().statuses
    for rule_id in PAGE_IDS:
        response, page = _get(client, f"/rules/{rule_id}")
        shown = set(re.findall(r'class="status status-([A-Z-]+)"', response.get_data(as_text=True)))
        assert shown <= set(meanings), f"{rule_id}: a status the specification does not define"
        for status in shown:
            plain = re.sub(r"[*`]", "", meanings[status])
            assert plain in page.visible, f"{rule_id} shows {status} without saying what it means"
    _, r05 = _get(client, "/rules/R05")
    assert "must be checked in a SNOMED CT browser" in r05.visible  # R05's antacid names are UNVERIFIED codes


def test_the_declared_exclusions_and_the_rules_own_source_are_shown(client):
    declared = KNOWLEDGE.rules["R08c"]
    assert declared.exclusions and declared.source is not None
    response, page = _get(client, "/rules/R08c")
    assert response.status_code == 200
    external = {url for url in page.urls if not url.startswith(("/", "#"))}
    assert external == {KNOWLEDGE.source.url, declared.source.url}
    assert all(exclusion in page.visible for exclusion in declared.exclusions)
    assert declared.source.label in page.visible


def test_a_source_that_is_not_a_web_address_is_not_linked(monkeypatch):
    declared = KNOWLEDGE.rules["R08c"]
    fields = {name: getattr(declared, name) for name in declared.__dataclass_fields__}
    extended = SimpleNamespace(**{**fields, "source": SimpleNamespace(label="x", url="javascript:alert(1)")})
    assert pages_module._own_source(extended, KNOWLEDGE.source.url) is None


def test_an_unknown_rule_is_a_404_page_for_a_person_and_json_for_a_program(client):
    response, page = _get(client, "/rules/R99")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "/rules" in page.urls and "R99" in page.visible
    assert "script" not in page.tags
    for accept in ({"Accept": "application/json"}, {}):
        answer = client.get("/rules/R99", headers=accept)
        assert answer.status_code == 404 and answer.mimetype == "application/json"
        assert answer.get_json()["issue"][0]["code"] == "not-found"
    hostile = client.get("/rules/%3Cscript%3Ealert(1)%3C%2Fscript%3E", headers=HTML)
    assert hostile.status_code == 404 and b"<script>" not in hostile.data


def test_a_hand_typed_lower_case_id_is_redirected(client):
    response = client.get("/rules/r08c")
    assert response.status_code == 308 and response.headers["Location"].endswith("/rules/R08c")


def test_the_pages_need_no_token_and_carry_cors():
    client = required_app().test_client()
    assert client.post("/cds-services/calcinosis-cutis-patient-view", json={}).status_code == 401
    for path in ("/rules", "/rules/R05"):
        response = client.get(path, headers={**HTML, "Origin": SANDBOX})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] in ("*", SANDBOX)


def test_the_templates_ship_in_the_wheel():
    package = ROOT / "cds_service" / "service"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    globs = re.search(r'^"cds_service\.service" = \[(.*)\]$', pyproject, re.MULTILINE).group(1)
    shipped = {p for pattern in re.findall(r'"([^"]+)"', globs) for p in package.glob(pattern)}
    templates = {p for p in (package / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= shipped
    assert all(Path(p).suffix == ".html" for p in templates)
