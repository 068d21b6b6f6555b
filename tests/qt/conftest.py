"""Sessions and a ready main window for the GUI tests (demo model + demo digits, on the CPU)."""

from __future__ import annotations

import gc

import pytest

from pruneviz.core.session import Session


@pytest.fixture(scope="session")
def _heap_before_the_gui_tests():
    """Collect once, then freeze what is alive (imported modules, the core tests' caches): the
    collection after each GUI test then walks only that test's objects (a full walk of the heap
    took 0.2-1.5 s a test once torch, Qt and the core suite's caches were loaded)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _collect_qt_garbage_here(_heap_before_the_gui_tests):
    """Collect each test's cyclic garbage (windows, dialogs) on the main thread when it ends: a
    worker thread of the next test must never be the one that destroys a Qt object."""
    yield
    gc.collect()


def open_demo(name: str = "mlp") -> Session:
    return Session.open(f"demo:{name}", data="demo:digits", device="cpu")


def demo_opener(model, data, arch=None, trust=False):
    """Session opener for MainWindow (File > Open) that stays on the CPU in tests."""
    return Session.open(model, data=data, arch=arch, trust=trust, device="cpu")


@pytest.fixture
def mlp_session():
    return open_demo("mlp")


@pytest.fixture
def window(qtbot, mlp_session):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(mlp_session, open_session=demo_opener)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None, timeout=30_000)
    yield w
    w.runner.shutdown(5000)


@pytest.fixture
def bare_window(qtbot):
    """A window on demo:mlp without evaluation data (so files of other shapes can be opened)."""
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(Session.open("demo:mlp", device="cpu"), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.runner.shutdown(5000)


# The GUI tests of the quick loop (``pytest -m "not slow"``): the edit loop, the views, the worker
# and its cancel, export, scores in the worker, opening a lesson. Every other test in tests/qt is
# marked slow at collection: each opens a real window and waits for its first evaluation (1-2 s of
# CPU each; the 155 of them took three minutes). Left to the full run on purpose: the cancel-during-
# evaluation windows (3-4 s each; quick: test_job_runner's cancel), training, the classroom and the
# screen-fit layouts, the CLI's --screenshot (quick: test_decide_plots renders figures).
# A new GUI test is slow until it is named here; the full run (.ci/run) runs them all.
QUICK = {
    "test_app.py": {"test_bad_size_is_one_line"},
    "test_main_window.py": {"test_prune_neuron_updates_browser_accuracy_and_undo_redo", "test_layer_heatmap_matches_view_shape"},
    "test_views.py": {"test_pruned_neurons_shown_grey_at_original_height"},
    "test_kernels.py": {"test_kernel_layout_locates_columns"},
    "test_layer_browser.py": {"test_filter_keeps_matches_and_their_groups"},
    "test_job_runner.py": {"test_items_and_return_value_arrive_in_order_on_the_gui_thread", "test_cancel_closes_the_generator_in_the_worker", "test_a_keyed_job_is_stale_after_a_change_dropped_or_requeued"},
    "test_files.py": {"test_export_writes_loadable_state_dict_and_report"},
    "test_lesson_safety_qt.py": {"test_shipped_lessons_open_without_a_prompt"},
    "test_decide_plots.py": {"test_sensitivity_and_knockout_figures"},
    "test_recovery.py": {"test_clean_close_leaves_nothing_to_recover"},
    "test_live_path.py": {"test_histogram_counts_follow_edits_and_undo_exactly"},
    "test_status_macs.py": {"test_human_count"},
    "test_scores_in_worker.py": {"test_prune_by_taylor_scores_in_the_worker_and_equals_the_verb"},
    "test_plain_text.py": {"test_literal_shows_every_text_as_itself"},
    "test_screenshots_fresh.py": {"test_screenshots_are_younger_than_the_code_they_show", "test_every_readme_screenshot_is_made_by_the_script"},
    "test_units_combo.py": {"test_two_four_from_the_dialog_prunes_to_the_pattern"},
    "test_error_hints.py": {"test_missing_data_names_the_menu_not_the_flag"},
    "test_window_parts.py": {"test_state_says_what_changed_and_a_new_layer_clears_the_selection",
                             "test_registry_keeps_menus_in_menu_bar_order_whoever_asks_first",
                             "test_registry_refuses_a_second_action_for_a_verb_and_names_the_known_ones"},
    "test_lesson_charts_qt.py": {"test_an_epoch_axis_has_whole_number_ticks", "test_one_colour_per_arm_whatever_the_chart"},
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.path
        if path.parent.name == "qt" and path.parent.parent.name == "tests" and item.originalname not in QUICK.get(path.name, ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _large_screen():
    """The offscreen platform's screen is 800×800, and the window keeps itself inside its screen:
    tests that size the window themselves get a large screen; the screen-fit tests set their own."""
    from PySide6.QtCore import QRect

    from pruneviz.qt.screen_fit import set_available_geometry

    set_available_geometry(QRect(0, 0, 3840, 2160))
    yield
    set_available_geometry(None)
