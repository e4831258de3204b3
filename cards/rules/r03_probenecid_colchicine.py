"""R03: probenecid and colchicine have helped some individuals.

Article: "Probenecid and colchicine have been beneficial in some individuals." (no reference cited). Fires for every
patient in scope (gate G0) as a low-evidence option. With renal insufficiency (A4) the card adds a caution (outside the
article): colchicine needs renal dose adjustment and has CYP3A4/P-gp interaction toxicity; probenecid loses efficacy
at low GFR. With severe renal insufficiency no medication is proposed. A drug the patient already takes is not
proposed again.
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, medication_proposal, rule

from ..definitions import gate_conditions, renal_insufficiency, severe_renal_insufficiency
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, inline_list


PROBENECID = ("8698", "probenecid")  # RxNorm ingredient, VERIFIED (S11)


@rule(
    id="R03",
    title="Probenecid or colchicine",
    article="Probenecid and colchicine have been beneficial in some individuals.",
    evidence_level="Anecdotal (\"beneficial in some individuals\"; no reference cited)",
    evidence_grade="Anecdotal",
    exclusions=("Severe renal insufficiency: listed, no medication proposed",
                "A drug the patient already takes is not proposed again"),
    trigger=(
        "Calcinosis (any patient in scope). With renal insufficiency: a renal caution; with severe renal "
        "insufficiency: no medication proposal"
    ),
    priority=70,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def probenecid_colchicine(facts, ctx):
    gate = [c.reference for c in gate_conditions(facts)]
    notes, brief = [], []  # what matters for this patient, on its own card and as its line on a grouped card
    evidence: list[dict] = []
    ri, severe = renal_insufficiency(facts), severe_renal_insufficiency(facts)
    if ri:
        evidence.extend({"flag": "renal insufficiency", **item} for item in ri.evidence)
        notes.append("Renal caution " + OUTSIDE_ARTICLE + ": colchicine needs renal dose adjustment and has "
                     "CYP3A4/P-glycoprotein interaction toxicity; probenecid loses efficacy at low GFR.")
        brief.append("Renal caution " + OUTSIDE_ARTICLE + ": adjust colchicine; probenecid weak at low GFR.")
        if severe:
            notes.append("Severe renal insufficiency: no medication is proposed.")
            brief.append("Not proposed: severe renal insufficiency.")
    taking = {}
    for name, value_set in (("probenecid", "med-probenecid"), ("colchicine", "med-colchicine")):
        found = facts.taking(value_set)
        if found:
            taking[name] = found
            evidence.extend({"flag": f"already taking {name}", **item} for item in found.evidence)
    if taking:
        notes.append("Already taking " + " and ".join(taking) + " (not proposed again).")
        brief.append(notes[-1])
    detail = "Probenecid or colchicine have helped some patients; no dose or regimen is given. " + OPTION_NOT_STANDARD
    if ri:
        detail += f"\n\n**Renal insufficiency:** {inline_list(list(ri.evidence))}."
    detail += "".join(f"\n\n{note}" for note in notes)
    suggestions = []
    if not severe:
        note = "No dose: the article gives none. Off-label for calcinosis cutis."
        if "probenecid" not in taking:
            resource = medication_proposal(facts.patient_id, rxnorm=PROBENECID, text="Probenecid (dose to be set by the clinician)",
                                                     reason_references=gate, note=note)
            suggestions.append(Suggestion("Propose probenecid (no dose)", (Action("create", "Probenecid, dose left to the clinician (proposal)", resource=resource),), key="probenecid"))
        if "colchicine" not in taking:
            # Colchicine's RxNorm ingredient code is UNVERIFIED (clinical specification §1.4): the proposal names it in text only.
            resource = medication_proposal(facts.patient_id, rxnorm=None, text="Colchicine (dose to be set by the clinician)",
                                                     reason_references=gate, note=note)
            suggestions.append(Suggestion("Propose colchicine (no dose)", (Action("create", "Colchicine, dose left to the clinician (proposal)", resource=resource),), key="colchicine"))
    if not evidence:
        evidence.append({"basis": "every patient with calcinosis cutis (low-evidence option)"})
    return Recommendation(
        indicator="info",
        summary="Option: probenecid or colchicine have helped some patients with calcinosis cutis (low-level evidence).",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="at-most-one",
        group="treatment-options",
        group_line="Probenecid or colchicine",
        brief=" ".join(brief) or None,
    )
