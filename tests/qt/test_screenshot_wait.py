"""`--screenshot` waits for the first evaluation, but never longer than its timeout."""

from types import SimpleNamespace

from pruneviz.qt.app import make_app, wait_for_evaluation


def test_wait_ends_by_its_timeout_when_no_result_ever_comes(qtbot):
    make_app()
    stuck = SimpleNamespace(session=SimpleNamespace(data=object()), acc=SimpleNamespace(current=None, baseline=None))
    assert wait_for_evaluation(stuck, timeout_ms=300) is False  # returned: it did not wait for ever
