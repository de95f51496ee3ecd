"""The host actions: the tmux session users attach to, and the shutdown request."""

from __future__ import annotations

import pytest
from harness import FAKES

from tuning_runtime.host import Host


@pytest.fixture
def tmux_log(tmp_path, monkeypatch):
    log = tmp_path / "tmux.log"
    monkeypatch.setenv("FAKE_TMUX_LOG", str(log))
    return log


def test_tmux_session_training_follows_the_training_log(tmux_log):
    Host(tmux=str(FAKES / "tmux.sh")).follow_in_tmux("/var/log/training.log")

    assert tmux_log.read_text().splitlines() == [
        "kill-session -t training",
        "new-session -d -s training tail -n +1 -F /var/log/training.log",
    ]


def test_missing_tmux_is_not_fatal(tmp_path):
    Host(tmux=str(tmp_path / "no-tmux")).follow_in_tmux("/var/log/training.log")


def test_shutdown_runs_the_configured_command(fakes):
    Host(shutdown_command=(str(FAKES / "shutdown.sh"), "-h", "now")).shutdown()

    assert [args for _, args in fakes.shutdown_calls()] == ["-h now"]
