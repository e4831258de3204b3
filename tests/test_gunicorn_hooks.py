"""The start-up objects are frozen out of the workers' garbage collections, under both ways of serving."""

import gc
import runpy
from pathlib import Path

from cds_service.service import cli
from cds_service.service.gunicorn_hooks import child_exit, pre_fork

ROOT = Path(__file__).resolve().parent.parent


def test_pre_fork_freezes_what_start_up_built():
    try:
        pre_fork(server=None, worker=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_image_config_and_the_cli_both_use_the_hook(monkeypatch, tmp_path):
    monkeypatch.setenv("CDS_SKIP_SETTINGS_CHECK", "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # else the config makes its own
    config = runpy.run_path(str(ROOT / "docker" / "gunicorn.conf.py"))
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    config["pre_fork"](None, None)
    assert frozen == [True]
    assert (tmp_path / "metrics").is_dir() and callable(config["child_exit"])
    config["on_exit"](None)
    assert (tmp_path / "metrics").is_dir()  # the operator's directory is not removed


def test_calcinosis_cds_serve_sets_the_hook(monkeypatch, tmp_path):
    from argparse import Namespace

    from gunicorn.app.base import BaseApplication

    seen = {}
    monkeypatch.setenv("CDS_AUTH", "off")
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # else serve makes its own
    monkeypatch.setattr(BaseApplication, "run",
                        lambda self: seen.update(pre_fork=self.cfg.pre_fork, child_exit=self.cfg.child_exit))
    assert cli.serve_command(Namespace(host="127.0.0.1", port=0, workers=1, threads=1)) == 0
    assert seen["pre_fork"] is pre_fork
    assert seen["child_exit"] is child_exit  # a dead worker's metrics files are marked (multiprocess mode)


def test_start_up_sets_the_collector_thresholds_for_large_bodies():
    """A request body parses into many containers without cycles: the collector must not walk them every 700
    allocations (docs/performance.md). Set at start-up, so that gunicorn's preloaded workers inherit it."""
    from cds_service.service.warm_up import COLLECTOR_THRESHOLDS, warm_up

    warm_up()
    assert gc.get_threshold() == COLLECTOR_THRESHOLDS
    assert COLLECTOR_THRESHOLDS[0] >= 50_000 and gc.isenabled()  # cycles are still collected
