"""Issue 14 item 9: the batch's progress counts a running job by the share its engine has done."""

import pytest

from tasks.progress import note_share_done, shares_done

pytestmark = pytest.mark.unit


def test_running_jobs_count_by_their_share_done_and_are_forgotten_after_the_batch():
    note_share_done(101, 0.25)
    note_share_done(102, 0.5)
    note_share_done(102, 0.75)  # the latest share wins
    note_share_done(103, 1.5)  # clamped to a whole job
    assert shares_done([101, 102, 103, 104]) == pytest.approx(2.0)  # 104 has not started
    assert shares_done(iter([101, 102]), forget=True) == pytest.approx(1.0)
    assert shares_done([101, 102, 103]) == pytest.approx(1.0)  # only 103 is left
    shares_done([103], forget=True)
