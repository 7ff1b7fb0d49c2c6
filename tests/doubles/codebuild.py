"""Make moto's CodeBuild behave like a real build, inside the in-process moto server.

moto reports SUCCEEDED at the first poll, writes no logs and pushes nothing. This double
patches moto's backend (class attributes, so the server thread sees it) so that each poll
advances one phase, the scripted log lines land in moto's CloudWatch Logs stream of the build,
and a successful build pushes an image with the requested IMAGE_TAG into moto's ECR, as the
real buildspec's post_build does; a repeated StartBuild `idempotencyToken` returns the build it
started, as CodeBuild does. Outcomes: SUCCEEDED, FAILED (in `fail_phase`), TIMED_OUT,
IN_PROGRESS (never ends).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

PHASES = ["SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS", "FINALIZING", "COMPLETED"]
ACCOUNT = "123456789012"


@dataclass
class SimulatedBuild:
    id: str
    region: str
    env: dict[str, str]
    buildspec: str
    source_location: str
    polls: int = 0
    pushed: bool = False


@dataclass
class CodeBuildSimulator:
    outcome: str = "SUCCEEDED"
    fail_phase: str = "BUILD"
    fail_message: str = "Error while executing command: docker build . Reason: exit status 1"
    # Lines written to the build's log stream when the phase they are keyed by runs.
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    builds: dict[str, SimulatedBuild] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # StartBuild idempotencyToken -> build id

    def install(self, monkeypatch) -> CodeBuildSimulator:
        from moto.codebuild.models import CodeBuildBackend
        from moto.codebuild.responses import CodeBuildResponse

        simulator = self
        original_start = CodeBuildResponse.start_build

        def start_build(response):
            token = response._get_param("idempotencyToken")
            if token and token in simulator.tokens:  # CodeBuild: a repeated token returns the build it started
                from moto.core.responses import ActionResult

                build_id = simulator.tokens[token]
                history = response.codebuild_backend.build_metadata_history[response._get_param("projectName")]
                return ActionResult({"build": next(b for b in history if b["id"] == build_id)})
            result = original_start(response)
            build = response.codebuild_backend.build_metadata[response._get_param("projectName")].build_metadata
            env = {v["name"]: v["value"] for v in response._get_param("environmentVariablesOverride") or []}
            if token:
                simulator.tokens[token] = build["id"]
            simulator.builds[build["id"]] = SimulatedBuild(
                build["id"], response.region, env, response._get_param("buildspecOverride") or "", response._get_param("sourceLocationOverride") or ""
            )
            build["environment"]["environmentVariables"] = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()]
            project = response.codebuild_backend.codebuild_projects[build["projectName"]].project_metadata
            group = project.get("logsConfig", {}).get("cloudWatchLogs", {}).get("groupName")
            build["logs"] = {"groupName": group, "streamName": build["id"].split(":", 1)[1], "cloudWatchLogs": {"status": "ENABLED"}}
            return result

        def batch_get_builds(backend, ids):
            found = []
            for history in backend.build_metadata_history.values():
                for build in history:
                    if build["id"] in ids:
                        simulator._advance(build, simulator.builds.get(build["id"]))
                        found.append(build)
            return found

        monkeypatch.setattr(CodeBuildResponse, "start_build", start_build)
        monkeypatch.setattr(CodeBuildBackend, "batch_get_builds", batch_get_builds)
        return self

    # --- one poll ---------------------------------------------------------------------------
    def _advance(self, build: dict, sim: SimulatedBuild | None) -> None:
        if sim is None or build["buildStatus"] != "IN_PROGRESS":
            return
        sim.polls += 1
        # Poll n finishes phase n+1 (SUBMITTED is done at start).
        index = min(sim.polls + 1, len(PHASES) - 1)
        stop_at = PHASES.index(self.fail_phase) if self.outcome in ("FAILED", "TIMED_OUT", "IN_PROGRESS") else None
        phases = []
        for i, name in enumerate(PHASES[: index + 1]):
            if stop_at is not None and i == stop_at:
                if self.outcome == "IN_PROGRESS":
                    phases.append({"phaseType": name})
                    build["currentPhase"] = name
                    self._log(sim, name)
                    break
                phases.append({"phaseType": name, "phaseStatus": self.outcome, "durationInSeconds": 3,
                               "contexts": [{"statusCode": "COMMAND_EXECUTION_ERROR", "message": self.fail_message}]})
                self._log(sim, name)
                build["currentPhase"] = "COMPLETED"
                build["buildStatus"] = self.outcome
                build["buildComplete"] = True
                break
            done = i < index or name == "COMPLETED"
            phases.append({"phaseType": name, "phaseStatus": "SUCCEEDED", "durationInSeconds": 1} if done else {"phaseType": name})
            self._log(sim, name)
            if done and name == "POST_BUILD" and not sim.pushed:
                sim.pushed = True
                self._push_image(build, sim)
            build["currentPhase"] = name
        build["phases"] = phases
        if build["currentPhase"] == "COMPLETED" and build["buildStatus"] == "IN_PROGRESS":
            build["buildStatus"] = "SUCCEEDED"
            build["buildComplete"] = True

    def _log(self, sim: SimulatedBuild, phase: str) -> None:
        lines = self.log_lines.get(phase)
        if not lines or getattr(sim, f"logged_{phase}", False):
            return
        setattr(sim, f"logged_{phase}", True)
        from moto.logs.models import logs_backends

        backend = logs_backends[ACCOUNT][sim.region]
        group, stream = next(
            (b["logs"]["groupName"], b["logs"]["streamName"]) for h in _codebuild(sim).build_metadata_history.values() for b in h if b["id"] == sim.id
        )
        if stream not in backend.groups[group].streams:
            backend.create_log_stream(group, stream)
        now = int(time.time() * 1000)
        backend.put_log_events(group, stream, [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])

    def _push_image(self, build: dict, sim: SimulatedBuild) -> None:
        from moto.ecr.models import ecr_backends

        repo_uri, tag = sim.env["IMAGE_REPO_URI"], sim.env["IMAGE_TAG"]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"digest": f"sha256:{tag}"}})
        image = ecr_backends[ACCOUNT][sim.region].put_image(repo_uri.split("/", 1)[1], manifest, tag)
        build["exportedEnvironmentVariables"] = [{"name": "IMAGE_DIGEST", "value": image.get_image_digest()}]


def _codebuild(sim: SimulatedBuild):
    from moto.codebuild.models import codebuild_backends

    return codebuild_backends[ACCOUNT][sim.region]
