"""R22: prevent trauma and the factors of iatrogenic calcinosis (extravasated intravenous calcium or phosphate).

One rule id, two parts, as in the clinical specification:
- (a) order-select and order-sign (decision A21; order-select judges the selected orders only): a draft order of
  intravenous calcium (gluconate, chloride) or phosphate (sodium,
  potassium) in a patient with calcinosis (gate G0, so always), renal insufficiency or Ca x P > 70 -> info: secure IV
  access, watch the site. Never a warning and never an offer to remove the order: clinically required IV calcium
  must not be blocked. The route is checked (cds_service/orders.is_intravenous): oral calcium, oral or rectal sodium
  phosphate and balanced electrolyte solutions (Ringer's lactate) are not IV calcium or phosphate. A draft naming
  the salt but no route and no injectable form gives no card.
- (b) patient-view: an active extravasation of a vesicant agent (ICD-10-CM T80.818x, or the words) -> warning: risk
  of iatrogenic calcinosis cutis at the site.
The extravasation protocol is institution-specific: the card says so and links to no protocol (no URL is invented);
its only link is to its rule's page.
"""

from cds_service.engine.authoring import Recommendation, drafts_in, is_intravenous, rule

from ..findings import judged_orders
from ..definitions import calcinosis, calcium_phosphate_product, renal_insufficiency
from ..orders import active_of_same_kind, product_key, same_kind_evidence, same_kind_note
from ..wording import inline_list, product_line


CA_X_P_LIMIT = 70.0  # mg2/dL2 (S14, Medscape overview)
PROTOCOL = "Follow your institution's extravasation protocol (institution-specific, so none is linked here)."


def _iv_orders(facts, ctx):
    found = {}
    for value_set, salt in (("med-iv-calcium", "calcium"), ("med-iv-phosphate", "phosphate")):
        for fact, match in drafts_in(facts, ctx, value_set):
            if is_intravenous(fact):
                found.setdefault(fact.reference, (fact, match, salt))
    return list(found.values())


def _ordered(facts, ctx):
    orders = _iv_orders(facts, ctx)
    if not orders:
        return None
    evidence = [{**fact.evidence(match), "route": "intravenous"} for fact, match, _ in orders]
    risks = ["calcinosis cutis"]
    evidence += [{"finding": "calcinosis", **item} for item in calcinosis(facts).evidence]
    ri = renal_insufficiency(facts)
    if ri:
        risks.append("renal insufficiency: " + inline_list(list(ri.evidence)))
        evidence += [{"finding": "renal insufficiency", **item} for item in ri.evidence]
    product = calcium_phosphate_product(facts)
    if product is not None and product[0] > CA_X_P_LIMIT:
        value, calcium, phosphate = product
        risks.append(f"Ca × P {value:.0f} mg²/dL², above {CA_X_P_LIMIT:g}: "
                     + inline_list([calcium.evidence(), phosphate.evidence()]))
        evidence.append({"finding": "calcium-phosphate product", "value": round(value, 1), "unit": "mg2/dL2",
                         "calcium": calcium.reference, "phosphate": phosphate.reference})
    salts = sorted({salt for _, _, salt in orders})
    products = [fact for fact, _, _ in orders]
    lines = [
        "**Ordered intravenously:** " + "; ".join(product_line(fact) for fact in products) + ".",
        "**At risk:** " + "; ".join(risks) + ".",
        "Extravasated calcium or phosphate can cause iatrogenic calcinosis cutis. Ensure secure intravenous access (a "
        "well-placed line; a large vein or central access as the product requires) and have nursing watch the site "
        "during the infusion. Not a reason to withhold clinically required IV calcium or phosphate.",
        PROTOCOL,
    ]
    same_kind = active_of_same_kind(facts, ("med-iv-calcium", "med-iv-phosphate"), products)
    same_kind = [fact for fact in same_kind if is_intravenous(fact)]
    if note := same_kind_note(same_kind, "intravenous calcium or phosphate"):
        lines.append(note)
    return Recommendation(
        indicator="info",
        summary=f"IV {'/'.join(salts)} ordered: ensure secure IV access; extravasation can cause iatrogenic calcinosis cutis.",
        detail="\n\n".join(lines),
        evidence=evidence + same_kind_evidence(same_kind),
        finding="order:" + product_key(products),
        orders=judged_orders(products),
    )


def _extravasation(facts):
    found = facts.has_condition("vesicant-extravasation")
    if not found:
        return None
    lines = [
        "**Extravasation recorded:** " + inline_list(list(found.evidence)) + ". Extravasated calcium or phosphate can "
        "cause iatrogenic calcinosis cutis at the site.",
        "Assess and follow up the site, and record which infusion it was. " + PROTOCOL,
    ]
    return Recommendation(
        indicator="warning",
        summary="Extravasation of a vesicant infusion recorded: risk of iatrogenic calcinosis cutis at the site.",
        detail="\n\n".join(lines),
        evidence=[{"finding": "extravasation", **item} for item in found.evidence],
        finding="extravasation",
        override_reasons=[
            ("not-calcium-phosphate", "The extravasated infusion was not calcium or phosphate"),
            ("site-followed-up", "Site already assessed and being followed up"),
            ("data-incorrect", "Patient data shown is incorrect or out of date"),
        ],
    )


@rule(
    id="R22",
    title="Iatrogenic calcinosis: intravenous calcium or phosphate and extravasation",
    article=(
        "Prevention or treatment of the underlying disease process, as well as prevention of trauma and factors "
        "associated with iatrogenic calcinosis, is optimal."
    ),
    evidence_level="Statement of the article (no reference cited)",
    exclusions=("Oral calcium, oral or rectal sodium phosphate, balanced electrolyte solutions (Ringer's lactate)",
                "A draft that names the salt with no route and no injectable form",
                "On order-select, draft orders that are not selected"),
    trigger=(
        "(a) order-select and order-sign: a draft order (order-select: the selected one; order-sign: any) of "
        "intravenous calcium gluconate/chloride or sodium/potassium phosphate (matched by name, RxCUIs UNVERIFIED; "
        "route checked) in a patient with calcinosis -> info. "
        "(b) patient-view: an active Condition T80.818x (extravasation of other vesicant agent) -> warning"
    ),
    hooks=("order-select", "order-sign", "patient-view"),
    priority=40,
)
def iatrogenic_calcinosis(facts, ctx):
    if ctx.hook == "patient-view":
        return _extravasation(facts)
    return _ordered(facts, ctx)
