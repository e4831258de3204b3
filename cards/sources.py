"""The sources the cards cite (docs/clinical-specification.md lists every source the rules cite).

The article is the source of every rule but two, which come from outside its treatment text and name their own
(decision A20): R08c (VisualDx's calciphylaxis page) and R23 (the same monograph's overview).
"""

from cds_service.engine.authoring import Source

ARTICLE = Source(
    label="Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)",
    url="https://emedicine.medscape.com/article/1103141-treatment",
    citation="Nunley JR. Calcinosis Cutis Treatment & Management. Medscape, updated 2020-03-05",
)

VISUALDX_CALCIPHYLAXIS = Source(
    label="VisualDx: Calciphylaxis",
    url="https://visualdx.com/view/diagnosis/calciphylaxis",
    citation="VisualDx. Calciphylaxis (diagnosis page; risk factors)",
    numbered_references=False,
)

MEDSCAPE_OVERVIEW = Source(
    label="Medscape: Calcinosis Cutis (Overview)",
    url="https://emedicine.medscape.com/article/1103141-overview",
    citation="Nunley JR. Calcinosis Cutis: Overview (Pathophysiology). Medscape",
    numbered_references=False,
)
