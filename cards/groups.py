"""The grouped cards: info recommendations of one kind share one card (decision A12), with these texts."""

from cds_service.engine.authoring import Group

GROUPS: dict[str, Group] = {
    "treatment-options": Group(
        "treatment-options",
        "Medical treatment options",
        "Calcinosis cutis: {n} medical treatment options with low-level evidence to consider",
        "Medical therapy of calcinosis cutis is limited and of variable benefit. None of these options is a standard "
        "of care; each is off-label for calcinosis, and the evidence behind each is given with it.",
        60,
    ),
    "procedures": Group(
        "procedures",
        "Surgical, procedural and rehabilitation options",
        "Calcinosis cutis: {n} surgical, procedural or rehabilitation options to consider",
        "The article's indications for surgical removal are pain, recurrent infection, ulceration and functional "
        "impairment. Because surgical trauma may stimulate calcification, a test site is treated before any large "
        "excision, and recurrence is common after excision.",
        65,
    ),
    "diet": Group(
        "diet",
        "Dietary measures",
        "Calcinosis cutis: {n} dietary measures to consider (minor benefit in most cases)",
        "Dietary alteration is of minor benefit in most cases (article, Diet section). A dietitian sets any amount.",
        70,
    ),
}
