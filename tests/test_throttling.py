"""ARM throttling: the emulator's token buckets (per subscription and principal, and the subscription's
global bucket), the client's pacer that mirrors them, and verifier runs that are throttled yet fail no VM.

Time is a ManualClock (the emulator's) or a fake clock (the pacer's): nothing here sleeps for real.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import RequestsTransport

from components.config import InitialBackupSettings
from emulator import Emulator, ManualClock
from emulator.errors import ApiError
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from emulator.throttle import GLOBAL_FACTOR, BucketLimit, Throttle
from protectedvm.azure_client import BackupApi, RetrySettings, make_sdk_client
from protectedvm.ids import VaultRef
from protectedvm.pacing import TOKEN_MARGIN_SECONDS, ArmPacer, Bucket, pacer_for
from protectedvm.verifier import InitialBackupVerifier

SUB = "22222222-3333-4444-5555-666666666666"
NO_JITTER = RetrySettings(sdk_total=3, backoff_factor=0.5, backoff_max=2.0, max_retry_after=30.0, jitter=0.0)


class FakeTime:
    """A clock the pacer's own sleeps move forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


# --- the emulator's buckets ------------------------------------------------------------------------


def refused(throttle: Throttle, method: str, principal: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        throttle.take(SUB, method, principal)
    return caught.value


def test_each_principal_has_its_own_bucket_and_the_subscription_a_global_one_fifteen_times_larger() -> None:
    clock = ManualClock()
    throttle = Throttle(clock, enforce=True, limits={"reads": BucketLimit(2, 1.0)})
    principals = [f"app{i}" for i in range(int(GLOBAL_FACTOR))]
    remaining = [throttle.take(SUB, "GET", p)[1] for p in principals for _ in range(2)]
    own_empty = refused(throttle, "GET", "app0")
    global_empty = refused(throttle, "GET", "app-16")  # its own bucket is full, the subscription's is not

    assert GLOBAL_FACTOR == 15.0
    assert remaining[:2] == ["1", "0"]  # the principal's bucket is the smaller one
    assert (own_empty.status, own_empty.headers["Retry-After"]) == (429, "1")
    assert own_empty.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    # The global bucket (30, refilled 15/s) is empty after 15 principals x 2 reads.
    assert (global_empty.status, global_empty.headers["Retry-After"]) == (429, "1")
    assert throttle.refused == {"reads": 2}


def test_a_refused_request_spends_no_token_and_tokens_come_back_at_the_refill_rate() -> None:
    clock = ManualClock()
    throttle = Throttle(clock, enforce=True, limits={"writes": BucketLimit(2, 0.5)})
    throttle.take(SUB, "POST")
    throttle.take(SUB, "PUT")
    first = refused(throttle, "POST", "emulator")
    second = refused(throttle, "POST", "emulator")
    clock.advance(2)
    after = throttle.take(SUB, "POST")

    assert (first.headers["Retry-After"], second.headers["Retry-After"]) == ("2", "2")
    assert after == ("x-ms-ratelimit-remaining-subscription-writes", "0")
    assert throttle.refused == {"writes": 2}


def test_another_subscription_and_another_operation_type_are_other_buckets() -> None:
    throttle = Throttle(ManualClock(), enforce=True, limits={"reads": BucketLimit(1, 1.0), "writes": BucketLimit(1, 1)})
    throttle.take(SUB, "GET")
    assert throttle.take(SUB.replace("2", "9"), "GET") == ("x-ms-ratelimit-remaining-subscription-reads", "0")
    assert throttle.take(SUB, "POST") == ("x-ms-ratelimit-remaining-subscription-writes", "0")
    assert refused(throttle, "GET", "emulator").status == 429


# --- the client's pacer --------------------------------------------------------------------------


def test_pacer_spends_its_bucket_then_waits_one_refill_per_request() -> None:
    fake = FakeTime()
    pacer = ArmPacer({"writes": Bucket(3, 2.0)}, clock=fake.clock, sleep=fake.sleep, jitter=0.0)
    waits = [pacer.acquire("writes") for _ in range(5)]

    # The fourth waits for one token (0.5 s) and a hair; the fifth for the rest of its token.
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.5 + TOKEN_MARGIN_SECONDS, 0.5])
    assert fake.now == pytest.approx(1.0 + TOKEN_MARGIN_SECONDS)
    assert pacer.acquire("reads") == 0.0  # a kind it does not mirror is not paced


def test_pacer_lowers_its_mirror_to_what_the_remaining_header_says_less_its_own_requests_in_flight() -> None:
    fake = FakeTime()
    pacer = ArmPacer({"reads": Bucket(250, 25.0)}, clock=fake.clock, sleep=fake.sleep, jitter=0.0)
    for _ in range(3):
        pacer.acquire("reads")
    # Another process spent most of the budget: ARM says 2 are left after this answer; 2 of ours
    # are still in flight, so nothing is left for a new request until tokens come back.
    pacer.observe("reads", 200, {"x-ms-ratelimit-remaining-subscription-reads": "2"}, None)

    assert pacer.acquire("reads") == pytest.approx(1 / 25 + TOKEN_MARGIN_SECONDS)


def test_a_429_that_says_the_budget_is_spent_holds_every_request_until_its_retry_after() -> None:
    fake = FakeTime()
    pacer = ArmPacer({"writes": Bucket(200, 10.0)}, clock=fake.clock, sleep=fake.sleep, jitter=0.0)
    pacer.acquire("writes")
    pacer.observe("writes", 429, {"x-ms-ratelimit-remaining-subscription-writes": "0"}, 7.0)

    assert pacer.acquire("writes") == 7.0
    assert pacer.throttled == {"writes": 1}


def test_a_429_that_leaves_budget_concerns_its_own_request_only() -> None:
    fake = FakeTime()
    pacer = ArmPacer({"writes": Bucket(200, 10.0)}, clock=fake.clock, sleep=fake.sleep, jitter=0.0)
    pacer.acquire("writes")
    pacer.observe("writes", 429, {"x-ms-ratelimit-remaining-subscription-writes": "150"}, 3600.0)

    assert pacer.acquire("writes") == 0.0


def test_pacer_jitter_spreads_threads_woken_for_the_same_token() -> None:
    fake = FakeTime()
    pacer = ArmPacer({"writes": Bucket(1, 1.0)}, clock=fake.clock, sleep=fake.sleep, jitter=0.5)
    pacer.acquire("writes")
    waited = pacer.acquire("writes")

    assert 1.0 <= waited <= 1.5 * (1.0 + TOKEN_MARGIN_SECONDS)


def test_every_client_of_one_subscription_in_a_process_shares_one_pacer() -> None:
    a = pacer_for("https://127.0.0.1:1/", SUB)
    b = pacer_for("https://127.0.0.1:1", SUB.upper())

    assert a is b
    assert pacer_for("https://127.0.0.1:2", SUB) is not a
    assert pacer_for("https://127.0.0.1:1", SUB.replace("2", "8")) is not a


# --- verifier runs under ARM's limits -------------------------------------------------------------


@pytest.fixture
def throttled_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """ARM's throttling enforced with small buckets on a ManualClock; the SDK's Retry-After sleeps
    move that clock instead of sleeping."""
    with Emulator(job_duration=120.0, clock=ManualClock(), page_size=20, throttling=True) as emulator:
        monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: manual_sleep(emulator)(seconds))
        yield emulator


SMALL = {"reads": (10, 2.0), "writes": (5, 1.0)}


def run_vaults(emu: Emulator, vaults: list[VaultRef], per_vault: int, pacer: ArmPacer | bool) -> list[dict[str, str]]:
    """One verifier per vault, concurrently in threads, as one process verifies several vaults."""
    refs = {v.name: protect(emu, v, vm_ids(SUB, f"rg-{v.name}", per_vault)) for v in vaults}
    emu.throttle = Throttle(emu.clock, enforce=True, limits={k: BucketLimit(*v) for k, v in SMALL.items()})
    emu.reset_counts()
    settings = InitialBackupSettings(verify="completed", retain_days=30, timeout_minutes=60, poll_seconds=30)
    outcomes: list[dict[str, str]] = [{} for _ in vaults]

    def verify(index: int) -> None:
        vault = vaults[index]
        api = BackupApi(
            make_sdk_client(
                SUB,
                emu.credential(),
                retry=NO_JITTER,
                base_url=emu.base_url,
                connection_verify=emu.ca_path,
                pacing=pacer,
            ),
            vault,
            retry=NO_JITTER,
            sleep=manual_sleep(emu),
        )
        verifier = InitialBackupVerifier(
            api, settings, vault_name=vault.name, clock=emulator_clock(emu), sleep=manual_sleep(emu)
        )
        outcomes[index] = {key: r.status for key, r in verifier.run(refs[vault.name]).items()}

    threads = [threading.Thread(target=verify, args=(i,)) for i in range(len(vaults))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def emulator_pacer(emu: Emulator) -> ArmPacer:
    return ArmPacer(
        {k: Bucket(*v) for k, v in SMALL.items()}, clock=emu.clock.now, sleep=manual_sleep(emu), jitter=0.0
    )


def test_a_throttled_fleet_run_of_two_vaults_paced_by_one_client_pacer_fails_no_vm(
    throttled_emu: Emulator,
) -> None:
    emu = throttled_emu
    vaults = [VaultRef(SUB, "rg-backup", f"rsv-{i}") for i in range(2)]
    start = emu.state.now()

    outcomes = run_vaults(emu, vaults, 12, emulator_pacer(emu))

    assert [set(o.values()) for o in outcomes] == [{"Completed"}, {"Completed"}]
    assert sum(len(o) for o in outcomes) == 24
    starts = sorted(j.start_time for j in emu.jobs if j.operation == "Backup")
    assert len(starts) == 24 and all(emu.trigger_count(f"vm{i:03d}") == 2 for i in range(1, 13))
    # 24 writes through a bucket of 5 refilled 1/s: the last trigger cannot come before 19 s.
    assert starts[-1] - start >= dt.timedelta(seconds=19)
    # (On this manual clock a request can stay in flight for many clock seconds while other threads'
    # sleeps move time, so the odd 429 may still be answered; on the real clock the benchmark counts 0.)


def test_a_throttled_run_without_client_pacing_rides_out_the_429s_and_fails_no_vm(throttled_emu: Emulator) -> None:
    emu = throttled_emu
    [vault] = [VaultRef(SUB, "rg-backup", "rsv-unpaced")]

    [outcome] = run_vaults(emu, [vault], 12, False)

    assert set(outcome.values()) == {"Completed"} and len(outcome) == 12
    assert emu.throttle.refused["writes"] > 0  # ARM did refuse triggers...
    assert all(emu.trigger_count(f"vm{i:03d}") == 1 for i in range(1, 13))  # ...and each VM was triggered once


# --- the SDK's retries: jitter and the time budget ------------------------------------------------


@pytest.fixture
def plain_emu() -> Iterator[Emulator]:
    with Emulator(clock=ManualClock()) as emulator:
        yield emulator


def sdk_api(emu: Emulator, retry: RetrySettings, vault: VaultRef) -> BackupApi:
    client = make_sdk_client(
        SUB, emu.credential(), retry=retry, base_url=emu.base_url, connection_verify=emu.ca_path, pacing=False
    )
    return BackupApi(client, vault, retry=retry, sleep=manual_sleep(emu))


def test_the_sdk_sleeps_retry_after_plus_jitter_so_threads_throttled_together_come_back_apart(
    plain_emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: slept.append(seconds))
    vault = VaultRef(SUB, "rg-backup", "rsv-jitter")
    protect(plain_emu, vault, [])
    plain_emu.faults.http("jobs.list", 429, retry_after=3, times=3)
    api = sdk_api(plain_emu, RetrySettings(sdk_total=5, max_retry_after=30.0, jitter=0.5), vault)
    now = plain_emu.state.now()

    assert api.list_backup_jobs(now - dt.timedelta(hours=1), now) == []
    assert len(slept) == 3 and all(3.0 <= s <= 4.5 for s in slept)
    assert len(set(slept)) > 1


def test_the_sdk_does_not_sleep_a_retry_after_that_does_not_fit_the_time_left(
    plain_emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: slept.append(seconds))
    vault = VaultRef(SUB, "rg-backup", "rsv-budget")
    protect(plain_emu, vault, [])
    plain_emu.faults.http("jobs.list", 429, retry_after=3)
    api = sdk_api(plain_emu, NO_JITTER, vault)
    api.set_time_budget(lambda: 2.0)
    now = plain_emu.state.now()

    with pytest.raises(HttpResponseError) as caught:
        api.list_backup_jobs(now - dt.timedelta(hours=1), now)
    assert caught.value.status_code == 429
    assert slept == []
