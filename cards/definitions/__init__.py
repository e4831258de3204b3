"""The clinical definitions every rule shares, each defined once; the rules import them from here.

| definition | module | decision |
|---|---|---|
| scope gate G0 (kinds, confirmed or provisional), calciphylaxis, tumoral calcinosis | scope.py | A1, A17, A18 |
| dystrophic calcinosis, words describing the calcinosis | calcinosis.py | A1 |
| renal insufficiency, severe renal insufficiency, dialysis, eGFR (reported or calculated), known renal function | renal.py | A4, A13, A14 |
| high and low lab values, comparators, adult default limits, a missing work-up | labs.py | A3, A19 |
| which calcium counts, hypercalcemia, hyperphosphatemia, Ca x P | minerals.py | A3, A19, §3.8 |
| age limits, children (no medication or diet proposed), pregnancy | patient.py | A3, A9, A16 |
| recurrent infections, recent specialist care | history.py | A8, §3.15 |

Each module's docstring names the rules that use its definitions; tests/test_clinical_definitions.py checks them
one by one on facts built from a few resources.
"""

from .calcinosis import (
    GATE_VALUE_SETS,
    calciphylaxis,
    calcinosis,
    calcinosis_described_as,
    dystrophic_context,
    gate_conditions,
    scope,
    tumoral_calcinosis,
)
from .history import RECENT_CARE_DAYS, recurrent
from .labs import (
    ADULT_DEFAULT_HIGH,
    WORKUP_ANALYTES,
    HighAssessment,
    assess_high,
    exceeds,
    falls_below,
    lab_below,
    lab_high,
    latest_judged,
    metabolic_workup_missing,
)
from .minerals import (
    calcium_above,
    calcium_high,
    calcium_measure,
    calcium_phosphate_product,
    corrected_calcium,
    hypercalcemia,
    hyperphosphatemia,
)
from .patient import ADULT_AGE_YEARS, age_under, is_child, paediatric, pregnancy_status, pregnant
from .renal import (
    BEDSIDE_SCHWARTZ,
    CKD_EPI_2021,
    EGFR_RENAL_INSUFFICIENCY,
    EGFR_SEVERE,
    RenalReading,
    bedside_schwartz,
    ckd_epi_2021,
    dialysis,
    egfr,
    egfr_below,
    renal_function_known_normal,
    renal_insufficiency,
    renal_reading,
    severe_renal_insufficiency,
)

__all__ = [
    "GATE_VALUE_SETS", "calcinosis", "gate_conditions", "calciphylaxis", "tumoral_calcinosis", "scope",
    "calcinosis_described_as", "dystrophic_context",
    "RECENT_CARE_DAYS", "recurrent",
    "ADULT_DEFAULT_HIGH", "WORKUP_ANALYTES", "HighAssessment", "assess_high", "exceeds", "falls_below", "lab_high",
    "lab_below", "latest_judged", "metabolic_workup_missing",
    "corrected_calcium", "calcium_measure", "calcium_high", "calcium_phosphate_product", "hyperphosphatemia",
    "hypercalcemia", "calcium_above",
    "ADULT_AGE_YEARS", "is_child", "paediatric", "age_under", "pregnant", "pregnancy_status",
    "EGFR_RENAL_INSUFFICIENCY", "EGFR_SEVERE", "CKD_EPI_2021", "BEDSIDE_SCHWARTZ", "RenalReading", "ckd_epi_2021",
    "bedside_schwartz", "renal_reading", "egfr", "egfr_below", "dialysis", "renal_insufficiency",
    "severe_renal_insufficiency", "renal_function_known_normal",
]
