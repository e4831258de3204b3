"""R07: topical myo-inositol hexaphosphate (phytate): animal data only, never on a card.

Article: "Myo-inositol hexaphosphonate [sic: hexaphosphate, phytate] is a dietary substance shown to inhibit the
crystallization of calcium salts. Recent animal studies have demonstrated a reduction in calcinosis cutis lesions with
topical myo-inositol hexaphosphate. This potentially could be of benefit in humans." [25, 26]. Decision A20: with
animal data only it is not shown on cards (a line a clinician cannot act on is noise); it runs on no hook, and stays
in the catalogue and on its rule page. Were it shown, it would be the last line of the treatment options.
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
    trigger="Calcinosis (any patient in scope); information only",
    exclusions=("Every patient: animal data only, so it is not shown on cards (decision A20)",),
    hooks=(),  # A20: not on cards; the catalogue and the rule page keep it
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
