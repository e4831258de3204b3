"""R07: topical myo-inositol hexaphosphate (phytate): animal data only, never an order.

Article: "Myo-inositol hexaphosphonate [sic: hexaphosphate, phytate] is a dietary substance shown to inhibit the
crystallization of calcium salts. Recent animal studies have demonstrated a reduction in calcinosis cutis lesions with
topical myo-inositol hexaphosphate. This potentially could be of benefit in humans." [25, 26]. Shown only as the last,
lowest-priority line of the treatment-options card (A12). No suggestion: not an approved drug, no RxNorm code.
"""

from cds_service.engine.authoring import Recommendation, rule


@rule(
    id="R07",
    title="Topical myo-inositol hexaphosphate (experimental)",
    article=("Myo-inositol hexaphosphonate is a dietary substance shown to inhibit the crystallization of calcium salts. "
             "Recent animal studies have demonstrated a reduction in calcinosis cutis lesions with topical myo-inositol "
             "hexaphosphate. This potentially could be of benefit in humans."),
    references=(25, 26),
    evidence_level="Animal studies only; no human data",
    trigger="Calcinosis (any patient in scope); information only, listed last among the treatment options",
    priority=99,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def topical_phytate(facts, ctx):
    return Recommendation(
        indicator="info",
        summary="Experimental: topical myo-inositol hexaphosphate reduced calcinosis in animal studies only; no human data.",
        detail=("Myo-inositol hexaphosphate (phytate) inhibits the crystallization of calcium salts; topical phytate "
                "reduced calcinosis cutis lesions in animal studies, and the article says it *potentially could be of "
                "benefit in humans*. It is not an approved drug and there is nothing to order. (The article writes "
                "\"hexaphosphonate\", a typo for hexaphosphate.)"),
        evidence=[{"basis": "every patient with calcinosis cutis (information only)"}],
        group="treatment-options",
        group_line="Topical myo-inositol hexaphosphate (experimental, animal data only)",
    )
