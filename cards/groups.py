"""The grouped cards: info recommendations of one kind share one card (decision A12), with these texts."""

from cds_service.engine.authoring import Group

GROUPS: dict[str, Group] = {
    "treatment-options": Group(
        "treatment-options",
        "Medical treatment options",
        "Calcinosis cutis: {n} medical treatment options with low-level evidence to consider",
        "None is a standard of care; each is off-label for calcinosis. Evidence level in italics.",
        60,
    ),
    "procedures": Group(
        "procedures",
        "Surgical, procedural and rehabilitation options",
        "Calcinosis cutis: {n} surgical, procedural or rehabilitation options to consider",
        "Options to discuss with the specialist concerned. Evidence level in italics.",
        65,
    ),
    "diet": Group(
        "diet",
        "Dietary measures",
        "Calcinosis cutis: {n} dietary measures to consider (minor benefit in most cases)",
        "Dietary change is of minor benefit in most cases; a dietitian sets any amount. Evidence level in italics.",
        70,
    ),
}
