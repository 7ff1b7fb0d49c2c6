"""ECR adapter: the image repository (scan on push, lifecycle, tags), image look-ups, registry login, deletion."""

from __future__ import annotations

import base64
import json

from llmctl.aws.errors import AWS_ERRORS, aws_call, aws_error, error_code
from llmctl.aws.tagging import tag_list, tags
from llmctl.plan import Action, Step

REPOSITORY_NOT_FOUND = "RepositoryNotFoundException"


def lifecycle_policy(keep_images: int) -> dict:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the last {keep_images} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_images},
                "action": {"type": "expire"},
            }
        ]
    }


def describe_repository(ecr, name: str) -> dict | None:
    return aws_call(f"looking up ECR repository {name}",
                    lambda: ecr.describe_repositories(repositoryNames=[name])["repositories"][0], absent=REPOSITORY_NOT_FOUND)


def repository_tags(ecr, arn: str) -> dict[str, str]:
    return aws_call(f"reading the tags of ECR repository {arn}",
                    lambda: tags(ecr.list_tags_for_resource(resourceArn=arn).get("tags")))


def repositories(ecr) -> list[dict]:
    """Every repository in the region, its tags as a dict under `"tags"` (moto's Tagging API has no ECR)."""
    listing = aws_call("listing ECR repositories", lambda: [
        repo for page in ecr.get_paginator("describe_repositories").paginate() for repo in page.get("repositories", [])])
    return [{**repo, "tags": repository_tags(ecr, repo["repositoryArn"])} for repo in listing]


def repository_step(ecr, name: str, keep_images: int, wanted_tags: dict[str, str]) -> Step:
    """Ensure the repository: scan on push, a keep-last-N lifecycle policy, tags."""
    wanted_policy = lifecycle_policy(keep_images)

    def drift(repo: dict) -> set[str]:
        found: set[str] = set()
        if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
            found.add("scan-on-push")
        try:
            text = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
            if json.loads(text) != wanted_policy:
                found.add("lifecycle")
        except AWS_ERRORS as exc:
            if error_code(exc) != "LifecyclePolicyNotFoundException":
                raise
            found.add("lifecycle")
        current = tags(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags"))
        if any(current.get(k) != v for k, v in wanted_tags.items()):
            found.add("tags")
        return found

    def observe() -> Action:
        repo = describe_repository(ecr, name)
        if repo is None:
            return "create"
        try:
            return "update" if drift(repo) else "none"
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"checking ECR repository {name}") from None

    def apply() -> str | None:
        try:
            repo = describe_repository(ecr, name)
            if repo is None:
                # MUTABLE: `latest` moves to each new build (deploys pin the digest, not a tag).
                repo = ecr.create_repository(
                    repositoryName=name,
                    imageTagMutability="MUTABLE",
                    imageScanningConfiguration={"scanOnPush": True},
                    encryptionConfiguration={"encryptionType": "AES256"},
                    tags=tag_list(wanted_tags),
                )["repository"]
            changed = drift(repo)
            if "scan-on-push" in changed:
                ecr.put_image_scanning_configuration(repositoryName=name, imageScanningConfiguration={"scanOnPush": True})
            if "lifecycle" in changed:
                ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(wanted_policy, sort_keys=True))
            if "tags" in changed:
                ecr.tag_resource(resourceArn=repo["repositoryArn"], tags=tag_list(wanted_tags))
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"configuring ECR repository {name}") from None
        return ", ".join(sorted(changed)) if changed else None

    return Step(f"ECR repository {name}", "ecr-repository", observe, apply, detail=f"scan on push, keep {keep_images}")


def image_digest(ecr, repository: str, tag: str) -> str | None:
    """The `sha256:...` digest of repository:tag, or None when there is no such image."""
    try:
        images = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    except AWS_ERRORS as exc:
        if error_code(exc) in ("ImageNotFoundException", REPOSITORY_NOT_FOUND):
            return None
        raise aws_error(exc, f"looking up image {repository}:{tag}") from None
    return images[0]["imageDigest"] if images else None


def registry_credentials(ecr) -> tuple[str, str]:
    """User name and password for the repository's registry: what `aws ecr get-login-password`
    prints (the password) and the user name `AWS`, from GetAuthorizationToken (valid 12 hours)."""
    data = aws_call("getting an ECR login token", ecr.get_authorization_token)["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return username, password


def image_bytes(ecr, repository: str) -> int:
    """What the repository's images occupy (ECR bills storage by it)."""
    total = 0
    try:
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository):
            total += sum(image.get("imageSizeInBytes", 0) for image in page.get("imageDetails", []))
    except AWS_ERRORS as exc:
        if error_code(exc) == REPOSITORY_NOT_FOUND:
            return 0
        raise aws_error(exc, f"listing the images of ECR repository {repository}") from None
    return total


def delete_repository(ecr, name: str) -> None:
    """The repository and every image in it."""
    aws_call(f"deleting ECR repository {name}", lambda: ecr.delete_repository(repositoryName=name, force=True),
             absent=REPOSITORY_NOT_FOUND)
