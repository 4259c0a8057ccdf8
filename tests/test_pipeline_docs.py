"""The pipeline examples in docs/ stay in step with the repository.

``docs/github-actions.yml`` and ``docs/azure-pipelines.yml`` are copied into real CI systems, where a
typo shows up only at the first deploy. These tests read them as data (matrices and the Azure
Pipelines ``${{ each }}`` loop expanded) and check what a reviewer would: every stack and policy
config they name exists and every stack is rehearsed and deployed; pull requests rehearse with no
Azure login; ``main`` deploys dev -> staging -> prod, each ``pulumi up`` with ``--policy-pack policies``
and its own config, then runs the verify command the CLI really accepts; OIDC is requested only where
it is used; job timeouts outlast ``initialBackup.timeoutMinutes``; the CLI is new enough; the embedded
scripts are valid bash; the markdown's links and JSON resolve.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from protectedvm.cli import build_parser as verify_parser
from rehearsal.__main__ import build_parser as rehearsal_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GITHUB = DOCS / "github-actions.yml"
AZURE_PIPELINES = DOCS / "azure-pipelines.yml"
#: Stack files that are examples, not environments the pipelines promote (the fleet topology).
EXAMPLE_STACKS = {"fleet"}
STACKS = sorted(
    name
    for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
    if (name := p.name.removeprefix("Pulumi.").removesuffix(".yaml")) not in EXAMPLE_STACKS
)
#: The promotion order both pipelines must follow.
PROMOTION = ("dev", "staging", "prod")

GH_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
ADO_MACRO = re.compile(r"\$\((\w+)\)")
ADO_EACH = re.compile(r"^\$\{\{\s*each\s+(\w+)\s+in\s+parameters\.(\w+)\s*\}\}$")


# --- loading and expanding ----------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def substitute(value: Any, bindings: dict[str, str], pattern: re.Pattern[str] = GH_EXPR) -> Any:
    """Replace bound expressions (``${{ matrix.stack }}``, ``$(stack)``) in every string, keys included."""
    if isinstance(value, str):
        return pattern.sub(lambda m: bindings.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(item, bindings, pattern) for item in value]
    if isinstance(value, dict):
        return {substitute(k, bindings, pattern): substitute(v, bindings, pattern) for k, v in value.items()}
    return value


def gh_triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), "the workflow has no `on:` mapping"
    return triggers


def gh_jobs(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every job instance: a job once per combination of its matrix, with ``matrix.*`` substituted."""
    for job_id, job in workflow["jobs"].items():
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        axes = {key: values for key, values in matrix.items() if isinstance(values, list)}
        if not axes:
            yield job_id, job
            continue
        for combo in itertools.product(*axes.values()):
            yield job_id, substitute(job, {f"matrix.{key}": str(v) for key, v in zip(axes, combo, strict=True)})


def ado_stages(pipeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages with ``${{ each x in parameters.p }}`` expanded from the parameter defaults."""
    parameters = {p["name"]: p.get("default") for p in pipeline.get("parameters", [])}
    stages: list[dict[str, Any]] = []
    for item in pipeline["stages"]:
        loop = ADO_EACH.match(next(iter(item))) if len(item) == 1 else None
        if loop is None:
            stages.append(item)
            continue
        variable, parameter = loop.groups()
        for element in parameters[parameter]:
            bindings = {f"{variable}.{key}": str(value) for key, value in element.items()}
            stages.extend(substitute(item[loop.group(0)], bindings))
    return stages


def ado_jobs(stage: dict[str, Any]) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(job, steps) per job instance of a stage, matrix ``$(var)`` macros substituted."""
    for job in stage.get("jobs", []):
        runs = [job]
        matrix = (job.get("strategy") or {}).get("matrix")
        if isinstance(matrix, dict):
            runs = [substitute(job, {k: str(v) for k, v in leg.items()}, ADO_MACRO) for leg in matrix.values()]
        for run in runs:
            if "deployment" in run:
                yield run, run["strategy"]["runOnce"]["deploy"]["steps"]
            else:
                yield run, run.get("steps", [])


def script_of(step: dict[str, Any]) -> str:
    """The shell text a step runs (GitHub ``run``, Azure Pipelines ``script``/``bash``/``inlineScript``)."""
    for key in ("run", "script", "bash"):
        if isinstance(step.get(key), str):
            return str(step[key])
    return str((step.get("inputs") or {}).get("inlineScript") or "")


def command_lines(script: str, prefix: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip().startswith(prefix)]


def rehearsed_stack(script: str) -> str | None:
    lines = command_lines(script, "make rehearse")
    if not lines:
        return None
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    stacks = [w.removeprefix("STACK=") for w in words if w.startswith("STACK=")]
    assert len(stacks) == 1, f"`{lines[0]}` must pass exactly one STACK="
    return stacks[0]


def option(words: list[str], name: str) -> str:
    values = [words[i + 1] for i, word in enumerate(words[:-1]) if word == name]
    assert len(values) == 1, f"expected exactly one {name} in `{shlex.join(words)}`"
    return values[0]


def check_verify_line(script: str, stack: str) -> None:
    """``pulumi stack output --json --stack <stack> | venv/bin/python -m protectedvm verify ...``, accepted
    by the real CLI parser, reading the outputs from stdin."""
    lines = [line for line in command_lines(script, "pulumi stack output") if "protectedvm verify" in line]
    assert len(lines) == 1, f"no single verify pipe in:\n{script}"
    producer, consumer = (shlex.split(part) for part in lines[0].split("|"))
    assert producer[:3] == ["pulumi", "stack", "output"] and "--json" in producer
    assert option(producer, "--stack") == stack
    assert consumer[:3] == ["venv/bin/python", "-m", "protectedvm"], consumer
    args = verify_parser().parse_args(consumer[3:])
    assert args.command == "verify" and args.stack_outputs == "-"


def stack_timeout_minutes(stack: str) -> int:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))["config"]
    return int((config.get("protected-vm:initialBackup") or {}).get("timeoutMinutes", 120))


def version(text: str) -> tuple[int, ...]:
    match = re.search(r"\d+(?:\.\d+)*", text)
    assert match, f"no version in {text!r}"
    return tuple(int(part) for part in match.group(0).split("."))


def pulumi_sdk_floor() -> tuple[int, ...]:
    match = re.search(r"^pulumi>=([\d.]+)", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M)
    assert match, "requirements.txt has no pulumi>= floor"
    return version(match.group(1))


# --- GitHub Actions -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load(GITHUB)


def gh_deploys(workflow: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """stack -> (job id, job, the pulumi/actions `up` step)."""
    deploys: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for job_id, job in gh_jobs(workflow):
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("pulumi/actions@") and step.get("with", {}).get("command") == "up":
                stack = str(step["with"]["stack-name"]).split("/")[-1]
                assert stack not in deploys, f"{stack} is deployed twice"
                deploys[stack] = (job_id, job, step)
    return deploys


def test_github_workflow_parses_and_triggers_on_prs_and_main(workflow: dict[str, Any]) -> None:
    triggers = gh_triggers(workflow)
    assert triggers["pull_request"]["branches"] == ["main"]
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}, "no OIDC token by default; jobs opt in"


def test_github_pr_path_rehearses_every_stack_without_azure(workflow: dict[str, Any]) -> None:
    rehearsed = []
    for job_id, job in gh_jobs(workflow):
        stacks = [s for s in (rehearsed_stack(script_of(step)) for step in job.get("steps", [])) if s]
        if not stacks:
            continue
        rehearsed += stacks
        assert "if" not in job, f"{job_id} must run on pull requests"
        assert "id-token" not in (job.get("permissions") or {}), f"{job_id} must not get an OIDC token"
        uses = [str(step.get("uses", "")) for step in job["steps"]]
        assert not [u for u in uses if u.startswith(("azure/login", "Azure/login", "pulumi/"))], uses
        text = json.dumps(job)
        assert "secrets." not in text and "ARM_" not in text and "AZURE_" not in text, f"{job_id} sees credentials"
    assert sorted(rehearsed) == STACKS


def test_github_main_path_deploys_in_order_with_policy_pack_and_verify(workflow: dict[str, Any]) -> None:
    assert set(PROMOTION) == set(STACKS)
    deploys = gh_deploys(workflow)
    assert sorted(deploys) == STACKS
    previous = "rehearse"
    for stack in PROMOTION:
        job_id, job, up = deploys[stack]
        assert "github.event_name == 'push'" in job["if"] and "refs/heads/main" in job["if"]
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert previous in needs, f"{job_id} must wait for {previous}"
        environment = job["environment"]
        assert (environment["name"] if isinstance(environment, dict) else environment) == stack
        assert up["with"]["policyPacks"] == "policies"
        assert up["with"]["policyPackConfigs"] == f"policies/config.{stack}.json"
        steps = job["steps"]
        names = [str(step.get("uses", "")) for step in steps]
        login = next(i for i, u in enumerate(names) if u.lower().startswith("azure/login@"))
        assert steps[login]["with"]["client-id"], "azure/login must use OIDC (client-id, no creds secret)"
        deploy = steps.index(up)
        verify = next(i for i, step in enumerate(steps) if "protectedvm verify" in script_of(step))
        assert login < deploy < verify
        check_verify_line(script_of(steps[verify]), stack)
        assert job["env"]["ARM_USE_OIDC"] == "true"
        previous = job_id


def test_github_oidc_token_only_where_azure_is_used(workflow: dict[str, Any]) -> None:
    for job_id, job in gh_jobs(workflow):
        text = json.dumps(job)
        talks_to_azure = "ARM_USE_OIDC" in text or "azure/login" in text.lower()
        assert ((job.get("permissions") or {}).get("id-token") == "write") == talks_to_azure, job_id
    for stack, (job_id, job, _) in gh_deploys(workflow).items():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}, f"{job_id} ({stack})"


def test_github_deploy_jobs_are_the_same_job_per_stack(workflow: dict[str, Any]) -> None:
    """staging and prod are dev with the stack name changed (a fix in one must reach all three)."""

    def normalized(stack: str, job: dict[str, Any]) -> str:
        text = json.dumps({"steps": job["steps"], "env": job["env"], "permissions": job["permissions"]})
        return re.sub(rf"(?<![\w/]){re.escape(stack)}(?![\w/])", "<stack>", text)

    shapes = {stack: normalized(stack, job) for stack, (_, job, _) in gh_deploys(workflow).items()}
    assert len(set(shapes.values())) == 1, "deploy jobs differ in more than the stack name"


def test_github_timeouts_and_cli_version(workflow: dict[str, Any]) -> None:
    for stack, (job_id, job, up) in gh_deploys(workflow).items():
        assert int(job["timeout-minutes"]) > stack_timeout_minutes(stack), f"{job_id} would be killed mid-wait"
        assert version(str(up["with"]["pulumi-version"])) >= pulumi_sdk_floor()
        assert job["concurrency"]["cancel-in-progress"] is False, "never cancel a running `pulumi up`"
    for _, job in gh_jobs(workflow):
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("pulumi/actions@") and step.get("with", {}).get("policyPacks"):
                config = step["with"]["policyPackConfigs"]
                assert (ROOT / config).is_file(), config


# --- Azure Pipelines ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return load(AZURE_PIPELINES)


def ado_deploys(pipeline: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """stack -> (stage, deployment job, steps) for stages whose steps run `pulumi up`."""
    deploys: dict[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = {}
    for stage in ado_stages(pipeline):
        for job, steps in ado_jobs(stage):
            for step in steps:
                for line in command_lines(script_of(step), "pulumi up"):
                    stack = option(shlex.split(line), "--stack").split("/")[-1]
                    assert stack not in deploys, f"{stack} is deployed twice"
                    deploys[stack] = (stage, job, steps)
    return deploys


def test_azure_pipeline_parses_and_triggers_on_prs_and_main(pipeline: dict[str, Any]) -> None:
    assert pipeline["trigger"]["branches"]["include"] == ["main"]
    assert pipeline["pr"]["branches"]["include"] == ["main"]


def test_azure_pr_path_rehearses_every_stack_without_azure(pipeline: dict[str, Any]) -> None:
    rehearsed = []
    for stage in ado_stages(pipeline):
        for job, steps in ado_jobs(stage):
            stacks = [s for s in (rehearsed_stack(script_of(step)) for step in steps) if s]
            if not stacks:
                continue
            rehearsed += stacks
            assert "condition" not in stage and "condition" not in job, "the rehearsal must run on PR builds"
            text = json.dumps({"stage": {k: v for k, v in stage.items() if k != "jobs"}, "job": job})
            assert "AzureCLI" not in text and "azureSubscription" not in text and "PULUMI_ACCESS_TOKEN" not in text
    assert sorted(rehearsed) == STACKS


def test_azure_main_path_deploys_in_order_with_policy_pack_and_verify(pipeline: dict[str, Any]) -> None:
    deploys = ado_deploys(pipeline)
    assert sorted(deploys) == STACKS
    previous = "Rehearse"
    for stack in PROMOTION:
        stage, job, steps = deploys[stack]
        assert stage["dependsOn"] == previous, f"{stage['stage']} must depend on {previous}"
        condition = " ".join(str(stage["condition"]).split())
        assert "refs/heads/main" in condition and "ne(variables['Build.Reason'], 'PullRequest')" in condition
        assert job["environment"] == f"protected-vm-{stack}", "approvals live on the environment"
        assert int(job["timeoutInMinutes"]) > stack_timeout_minutes(stack)
        up_index = next(i for i, step in enumerate(steps) if command_lines(script_of(step), "pulumi up"))
        up = steps[up_index]
        assert up["task"] == "AzureCLI@2" and up["inputs"]["azureSubscription"], "workload identity service connection"
        assert up["inputs"]["addSpnToEnvironment"] is True
        words = shlex.split(command_lines(script_of(up), "pulumi up")[0])
        assert "--yes" in words
        assert option(words, "--policy-pack") == "policies"
        assert option(words, "--policy-pack-config") == f"policies/config.{stack}.json"
        assert (ROOT / f"policies/config.{stack}.json").is_file()
        verify_index = next(i for i, step in enumerate(steps) if "protectedvm verify" in script_of(step))
        assert verify_index > up_index
        check_verify_line(script_of(steps[verify_index]), stack)
        assert steps[verify_index]["task"] == "AzureCLI@2"
        for step in (up, steps[verify_index]):
            assert step["env"]["PULUMI_ACCESS_TOKEN"] == "$(PULUMI_ACCESS_TOKEN)", "secrets must be mapped"
        previous = stage["stage"]


def test_azure_pipeline_installs_a_new_enough_cli(pipeline: dict[str, Any]) -> None:
    variables = {v["name"]: v["value"] for v in pipeline["variables"] if "name" in v}
    assert version(str(variables["pulumiVersion"])) >= pulumi_sdk_floor()
    for stack, (_, _, steps) in ado_deploys(pipeline).items():
        installs = [script_of(s) for s in steps if "get.pulumi.com" in script_of(s)]
        assert len(installs) == 1 and "--version" in installs[0] and "$(pulumiVersion)" in installs[0], stack


# --- both ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [GITHUB, AZURE_PIPELINES], ids=lambda p: p.name)
def test_every_stack_and_policy_config_named_exists(path: Path) -> None:
    document = load(path)
    expanded = (
        [job for _, job in gh_jobs(document)]
        if path == GITHUB
        else [job for stage in ado_stages(document) for job in ado_jobs(stage)]
    )
    text = json.dumps(expanded)
    named = set(re.findall(r"STACK=([\w-]+)", text)) | set(re.findall(r"--stack ([\w-]+)", text))
    named |= set(re.findall(r'"stack-name": "([\w/-]+)"', text))
    assert named, "no stack names found"
    assert {name.split("/")[-1] for name in named} <= set(STACKS)
    configs = set(re.findall(r"policies/config\.([^\s\"']+)\.json", text))
    assert configs == set(STACKS), configs
    for stack in configs:
        assert (ROOT / "policies" / f"config.{stack}.json").is_file()


def test_rehearse_target_and_cli_accept_what_the_pipelines_run() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^rehearse:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target and "-m rehearsal --stack $(STACK)" in target.group(1)
    for stack in STACKS:
        assert rehearsal_parser().parse_args(["--stack", stack]).stack == stack


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("path", [GITHUB, AZURE_PIPELINES], ids=lambda p: p.name)
def test_embedded_scripts_are_valid_bash(path: Path) -> None:
    document = load(path)
    steps = (
        [step for _, job in gh_jobs(document) for step in job.get("steps", [])]
        if path == GITHUB
        else [step for stage in ado_stages(document) for _, steps in ado_jobs(stage) for step in steps]
    )
    scripts = {GH_EXPR.sub("placeholder", script_of(step)) for step in steps} - {""}
    assert scripts
    for script in scripts:
        result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{result.stderr}\n{script}"


def github_slug(heading: str) -> str:
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


@pytest.mark.parametrize("name", ["pipelines.md", "rbac.md"])
def test_markdown_links_and_json_resolve(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path).resolve()
        assert file.is_file(), f"{name} links to missing {target}"
        if anchor:
            headings = re.findall(r"^#+\s+(.*)$", file.read_text(encoding="utf-8"), re.M)
            assert anchor in {github_slug(h) for h in headings}, f"{name}: no heading for #{anchor} in {path}"
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        role = json.loads(block)
        assert role["Actions"] and all(isinstance(action, str) and "/" in action for action in role["Actions"])


# --- the weekly restore drill (issue 18) ----------------------------------------------------------

CRON_WEEKLY = re.compile(r"^\d+ \d+ \* \* [0-6]$")


def check_drill_line(script: str, stack: str) -> argparse.Namespace:
    """``pulumi stack output --json --stack <stack> | venv/bin/python -m protectedvm drill ...``,
    accepted by the real CLI parser, reading the outputs from stdin; returns the parsed options."""
    lines = [line for line in command_lines(script, "pulumi stack output") if "protectedvm drill" in line]
    assert len(lines) == 1, f"no single drill pipe in:\n{script}"
    producer, consumer = (shlex.split(GH_EXPR.sub("x", part)) for part in lines[0].split("|"))
    assert producer[:3] == ["pulumi", "stack", "output"] and "--json" in producer
    assert option(producer, "--stack") == stack
    assert consumer[:3] == ["venv/bin/python", "-m", "protectedvm"], consumer
    args = verify_parser().parse_args(consumer[3:])
    assert args.command == "drill" and args.stack_outputs == "-"
    assert args.staging_resource_group and args.staging_storage_account
    assert args.max_rp_age_hours is not None, "a drill of a stale recovery point should fail"
    return args


def test_github_drills_every_stack_weekly_with_its_own_identity(workflow: dict[str, Any]) -> None:
    [schedule] = gh_triggers(workflow)["schedule"]
    assert CRON_WEEKLY.match(schedule["cron"]), schedule
    drills = {}
    for job_id, job in gh_jobs(workflow):
        scripts = [script_of(step) for step in job.get("steps", [])]
        if not any("protectedvm drill" in script for script in scripts):
            continue
        stack = job["environment"].removeprefix("drill-")
        drills[stack] = job
        assert "schedule" in job["if"] and "push" not in job["if"], f"{job_id} must run on the schedule only"
        assert not any(command_lines(script, "pulumi up") for script in scripts)
        args = check_drill_line(next(s for s in scripts if "protectedvm drill" in s), stack)
        assert int(job["timeout-minutes"]) > args.timeout_minutes, "the drill must time out (and clean up) first"
        login = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("azure/login@"))
        assert login["with"]["client-id"] == "${{ vars.AZURE_DRILL_CLIENT_ID }}"
        assert job["env"]["AZURE_CLIENT_ID"] == "${{ vars.AZURE_DRILL_CLIENT_ID }}"
        assert job["concurrency"]["cancel-in-progress"] is False
    assert sorted(drills) == STACKS
    # Deploys never run on the schedule, and never with the drill identity.
    for job_id, job, _ in gh_deploys(workflow).values():
        assert "github.event_name == 'push'" in job["if"], job_id
        assert "DRILL" not in json.dumps(job), job_id


def test_azure_drills_every_stack_weekly_with_its_own_service_connection(pipeline: dict[str, Any]) -> None:
    [schedule] = pipeline["schedules"]
    assert CRON_WEEKLY.match(schedule["cron"]) and schedule["always"] is True
    assert schedule["branches"]["include"] == ["main"]
    deploy_connections = {}
    for stack, (stage, _, steps) in ado_deploys(pipeline).items():
        condition = " ".join(str(stage["condition"]).split())
        assert "ne(variables['Build.Reason'], 'Schedule')" in condition, f"{stage['stage']} would deploy weekly"
        deploy_connections[stack] = {s["inputs"]["azureSubscription"] for s in steps if s.get("task") == "AzureCLI@2"}
    drills = {}
    for stage in ado_stages(pipeline):
        for job, steps in ado_jobs(stage):
            drill_steps = [s for s in steps if "protectedvm drill" in script_of(s)]
            if not drill_steps:
                continue
            stack = stage["stage"].removeprefix("Drill_")
            drills[stack] = stage
            assert "eq(variables['Build.Reason'], 'Schedule')" in " ".join(str(stage["condition"]).split())
            assert stage["dependsOn"] == [], "a drill does not wait for (or depend on) a deploy"
            [step] = drill_steps
            args = check_drill_line(script_of(step), stack)
            assert args.staging_resource_group == f"rg-pvm-drill-{stack}"
            assert int(job["timeoutInMinutes"]) > args.timeout_minutes
            connection = step["inputs"]["azureSubscription"]
            assert connection == f"sc-protected-vm-drill-{stack}" and connection not in deploy_connections[stack]
            assert step["env"]["PULUMI_ACCESS_TOKEN"] == "$(PULUMI_ACCESS_TOKEN)"
    assert sorted(drills) == STACKS


def test_rbac_documents_the_drill_identity_apart_from_the_deployer() -> None:
    text = (DOCS / "rbac.md").read_text(encoding="utf-8")
    section = text[text.index("## Restore drill identity") : text.index("## Credentials, not roles")]
    for role in ("Backup Operator", "Virtual Machine Contributor", "Storage Account Contributor", "Contributor"):
        assert role in section
    assert "never the deployer's" in section
    assert "protectedvm-drill" in section
