"""Who may ask for `high`: it outranks other tenants' jobs (in Kueue mode it preempts them)."""

from __future__ import annotations

import pytest

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.models import Outputs, Priority
from vidpipe_api.options import JobOptions, permitted

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("priority", list(Priority))
def test_only_admins_may_ask_for_high_unless_the_platform_allows_everyone(
    priority: Priority,
) -> None:
    # Fails if a tenant key got `high` by default, if low/normal were refused to anyone, or if
    # the platform's "everyone" choice were ignored.
    asked = JobOptions(Outputs(), priority)
    assert permitted(asked, admin=True, high_admins_only=True) is asked
    assert permitted(asked, admin=False, high_admins_only=False) is asked
    if priority is Priority.HIGH:
        with pytest.raises(VidpipeError) as refused:
            permitted(asked, admin=False, high_admins_only=True)
        assert refused.value.code == ErrorCode.FORBIDDEN and refused.value.http_status == 403
    else:
        assert permitted(asked, admin=False, high_admins_only=True) is asked
