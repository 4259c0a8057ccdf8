"""The whole backup story through the unmodified SDK over HTTPS."""

from __future__ import annotations

from .conftest import JOB_SECONDS, VAULT, VAULT_RG, Env, container_for, item_for, op_id_from


def test_protect_trigger_watch_job_and_list_recovery_point(env: Env) -> None:
    item = env.protect("web01")
    assert item.properties["protectionState"] == "IRPending"
    assert item.properties["lastBackupStatus"] == ""

    headers = env.trigger("web01")
    assert "/operationsStatus/" in headers["Azure-AsyncOperation"]
    assert "/operationResults/" in headers["Location"]
    assert headers["Retry-After"] == "0"

    status = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op_id_from(headers["Azure-AsyncOperation"]))
    assert status.status == "Succeeded"
    job_id = status.properties.job_id

    running = env.job(job_id)
    assert running.properties.status == "InProgress"
    assert running.properties.operation == "Backup"
    assert running.properties.entity_friendly_name == "web01"
    assert [t.status for t in running.properties.extended_info.tasks_list] == ["InProgress", "NotStarted"]
    rps = env.client.recovery_points.list(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    assert list(rps) == []

    env.clock.advance(JOB_SECONDS / 2 + 1)
    halfway = env.job(job_id)
    assert [t.status for t in halfway.properties.extended_info.tasks_list] == ["Completed", "InProgress"]

    env.clock.advance(JOB_SECONDS)
    done = env.job(job_id)
    assert done.properties.status == "Completed"
    assert done.properties.end_time is not None
    assert done.properties.duration.total_seconds() == JOB_SECONDS
    assert done.properties.extended_info.progress_percentage == 100.0

    points = list(env.client.recovery_points.list(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01")))
    assert len(points) == 1
    assert points[0].properties["recoveryPointType"] == "AppConsistent"
    assert [t["type"] for t in points[0].properties["recoveryPointTierDetails"]] == ["InstantRP", "HardenedRP"]

    protected = env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    assert protected.properties["protectionState"] == "Protected"
    assert protected.properties["lastBackupStatus"] == "Completed"  # Compute_ProtectedItem_Get.json
    assert protected.properties["lastBackupTime"] == running.properties.start_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert env.emu.trigger_count("web01") == 1
    assert env.emu.counts["backup.trigger"] == 1
