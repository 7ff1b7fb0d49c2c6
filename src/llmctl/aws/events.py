"""EventBridge adapter: the rules that feed Karpenter's interruption queue (spot interruption, rebalance,
state change, scheduled change), found by their target and removed (targets first, as EventBridge requires)."""

from __future__ import annotations

from llmctl.aws.errors import aws_call

NOT_FOUND = "ResourceNotFoundException"


def rules_targeting(events, target_arn: str) -> list[dict]:
    """{"name", "arn"} of every rule (on the default bus) with a target `target_arn`."""
    names: list[str] = []
    token = None
    while True:
        kwargs = {"TargetArn": target_arn, **({"NextToken": token} if token else {})}
        page = aws_call(f"listing EventBridge rules of {target_arn}", lambda: events.list_rule_names_by_target(**kwargs))
        names += page.get("RuleNames", [])
        token = page.get("NextToken")
        if not token:
            break
    rules = []
    for name in names:
        rule = aws_call(f"reading EventBridge rule {name}", lambda: events.describe_rule(Name=name), absent=NOT_FOUND)
        if rule is not None:
            rules.append({"name": name, "arn": rule["Arn"]})
    return rules


def delete_rule(events, name: str) -> None:
    targets = aws_call(f"listing the targets of EventBridge rule {name}",
                       lambda: events.list_targets_by_rule(Rule=name).get("Targets", []), absent=NOT_FOUND, default=[])
    if targets:
        aws_call(f"removing the targets of EventBridge rule {name}",
                 lambda: events.remove_targets(Rule=name, Ids=[t["Id"] for t in targets]), absent=NOT_FOUND)
    aws_call(f"deleting EventBridge rule {name}", lambda: events.delete_rule(Name=name), absent=NOT_FOUND)
