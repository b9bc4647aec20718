"""Detection matrix: every fixture document against every dezoomer, offline.

Each document is accepted by its own format only; every other dezoomer refuses it with a
reason (WrongDezoomer), never by calling it broken. In auto mode (hinted candidates first,
then registry order) the document's own format wins. Nothing can be fetched but the
fixture documents: the fetch function raises.
"""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, run_case
from dezoom_steps.dezoomers import REGISTRY, all_dezoomers, by_name
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.errors import MalformedMetadata, NoDezoomerFits

NAMES = [cls.name for cls in REGISTRY]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", case_params())
def test_each_document_is_read_only_by_its_own_format(case, name):
    dezoomer = by_name(name)
    if name == case.format:
        if case.error == "malformed":
            with pytest.raises(MalformedMetadata):
                run_case(case, [dezoomer])
        elif case.error == "wrong":
            with pytest.raises(NoDezoomerFits):
                run_case(case, [dezoomer])
        else:
            assert run_case(case, [dezoomer]).dezoomer is dezoomer
        return
    with pytest.raises(NoDezoomerFits) as refused:
        run_case(case, [dezoomer])
    (who, why), = refused.value.reasons
    assert who == name and why


@pytest.mark.parametrize("case", case_params())
def test_auto_mode_picks_the_documents_own_format(case):
    candidates = order_candidates(case.input, all_dezoomers())
    assert sorted(d.name for d in candidates) == sorted(NAMES)
    if case.error is None:
        outcome = run_case(case, candidates)
        assert outcome.dezoomer.name == case.format
        assert all(name != case.format for name, _ in outcome.reasons)
        return
    with pytest.raises((MalformedMetadata, NoDezoomerFits)) as failed:
        run_case(case, candidates)
    assert case.spec["message"] in str(failed.value)
    if case.error == "wrong":  # nobody else claimed it either
        assert isinstance(failed.value, NoDezoomerFits)
        assert sorted(n for n, _ in failed.value.reasons) == sorted(NAMES)
