"""The source the cards cite: the article (docs/clinical-specification.md lists every source the rules cite)."""

from cds_service.engine.authoring import Source

ARTICLE = Source(
    label="Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)",
    url="https://emedicine.medscape.com/article/1103141-treatment",
    citation="Nunley JR. Calcinosis Cutis Treatment & Management. Medscape, updated 2020-03-05",
)
