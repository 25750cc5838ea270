"""Build API builds interrupted by a restart of the API are failed at the next start."""

from __future__ import annotations

from dockyard.control.accounts import create_user
from dockyard.control.builds import output_file, recover
from dockyard.control.context import STACK, Platform


def test_recovery_fails_builds_left_pending_with_their_output(platform: Platform) -> None:
    owner = create_user(platform, "owner@example.com")
    with platform.store.transaction() as tx:
        app = tx.create_app("shop", owner.account.id, STACK)
        interrupted = tx.create_build(app.id, user_id=owner.account.id, source_version=None)
        from_a_push = tx.create_build(app.id, user_id=owner.account.id, source_version="abc")
    path = output_file(platform, interrupted.id)
    path.parent.mkdir(parents=True)
    path.write_text("-----> Fetching the source tarball\n")

    assert recover(platform) == [interrupted.id]

    with platform.store.read() as tx:
        failed = tx.get_build(app.id, interrupted.id)
        assert tx.get_build(app.id, from_a_push.id).status == "pending"  # a hook still runs it
    assert failed.status == "failed"
    assert failed.output.startswith("-----> Fetching the source tarball\n")
    assert "interrupted" in failed.output
    assert not path.exists()
    assert recover(platform) == []
