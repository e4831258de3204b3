"""R22: prevent trauma and the factors of iatrogenic calcinosis (extravasated intravenous calcium or phosphate).

One rule id, two parts, as in the clinical specification:
- (a) order-select: a selected draft order of intravenous calcium (gluconate, chloride) or phosphate (sodium,
  potassium) in a patient with calcinosis (gate G0, so always), renal insufficiency or Ca x P > 70 -> info: secure IV
  access, watch the site. Never a warning and never an offer to remove the order: clinically required IV calcium
  must not be blocked. The route is checked (cds_service/orders.is_intravenous): oral calcium, oral or rectal sodium
  phosphate and balanced electrolyte solutions (Ringer's lactate) are not IV calcium or phosphate. A draft naming
  the salt but no route and no injectable form gives no card.
- (b) patient-view: an active extravasation of a vesicant agent (ICD-10-CM T80.818x, or the words) -> warning: risk
  of iatrogenic calcinosis cutis at the site.
The extravasation protocol is institution-specific: the card says so and links to nothing (no URL is invented).
"""

from cds_service.engine.authoring import Recommendation, drafts_in, is_intravenous, rule

from ..findings import judged_orders
from ..definitions import calcinosis, calcium_phosphate_product, renal_insufficiency
from ..wording import bullet_list, medication_line


CA_X_P_LIMIT = 70.0  # mg2/dL2 (S14, Medscape overview)
PROTOCOL = (
    "Follow your institution's extravasation protocol for calcium and phosphate infusions; it is institution-specific, "
    "so this service does not link to one."
)


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
    risks = ["calcinosis cutis (an existing calcinosis marks a patient at risk)"]
    evidence += [{"finding": "calcinosis", **item} for item in calcinosis(facts).evidence]
    ri = renal_insufficiency(facts)
    if ri:
        risks.append("renal insufficiency")
        evidence += [{"finding": "renal insufficiency", **item} for item in ri.evidence]
    product = calcium_phosphate_product(facts)
    if product is not None and product[0] > CA_X_P_LIMIT:
        value, calcium, phosphate = product
        risks.append(f"Ca x P {value:.0f} mg2/dL2 (> {CA_X_P_LIMIT:g})")
        evidence.append({"finding": "calcium-phosphate product", "value": round(value, 1), "unit": "mg2/dL2",
                         "calcium": calcium.reference, "phosphate": phosphate.reference})
    salts = sorted({salt for _, _, salt in orders})
    lines = [
        "The article: *\"Prevention or treatment of the underlying disease process, as well as prevention of trauma and "
        "factors associated with iatrogenic calcinosis, is optimal.\"* Extravasated intravenous calcium or phosphate "
        "can cause iatrogenic calcinosis cutis.",
        "**Ordered intravenously:**\n\n" + "\n".join(f"- {medication_line(fact)}" for fact, _, _ in orders),
        "**Why this patient is at risk:** " + "; ".join(risks) + ".",
        "Ensure secure intravenous access (a well-placed line, a large vein or central access as the product "
        "requires), and have nursing watch the site during the infusion. This is not a reason to withhold "
        "clinically required IV calcium or phosphate.",
        PROTOCOL,
    ]
    return Recommendation(
        indicator="info",
        summary=f"IV {'/'.join(salts)} ordered: ensure secure IV access; extravasation can cause iatrogenic calcinosis cutis.",
        detail="\n\n".join(lines),
        evidence=evidence,
        orders=judged_orders(orders),
    )


def _extravasation(facts):
    found = facts.has_condition("vesicant-extravasation")
    if not found:
        return None
    lines = [
        "An extravasation (infiltration) of a vesicant infusion is recorded. Extravasated calcium or phosphate can "
        "cause iatrogenic calcinosis cutis at the site; the article counts preventing such factors as optimal.",
        bullet_list(list(found.evidence)),
        "Assess and follow up the site, and record which infusion it was. " + PROTOCOL,
    ]
    return Recommendation(
        indicator="warning",
        summary="Extravasation of a vesicant infusion recorded: risk of iatrogenic calcinosis cutis at the site.",
        detail="\n\n".join(lines),
        evidence=[{"finding": "extravasation", **item} for item in found.evidence],
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
    trigger=(
        "(a) order-select: a selected draft order of intravenous calcium gluconate/chloride or sodium/potassium "
        "phosphate (matched by name, RxCUIs UNVERIFIED; route checked) in a patient with calcinosis -> info. "
        "(b) patient-view: an active Condition T80.818x (extravasation of other vesicant agent) -> warning"
    ),
    hooks=("order-select", "patient-view"),
    priority=40,
)
def iatrogenic_calcinosis(facts, ctx):
    if ctx.hook == "order-select":
        return _ordered(facts, ctx)
    if ctx.hook == "patient-view":
        return _extravasation(facts)
    return None
