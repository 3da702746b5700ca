"""Security checks on the expanded CloudFormation template (what `sam deploy` submits):

1. every route of every HTTP API requires IAM (SigV4) authorization, and the question route exists;
2. no IAM policy statement allows `*` actions on `*` resources, and none allows `*` alone
   as its action (service-wide `service:*` on `*` is refused too);
3. every Lambda function has an execution role defined in this template (no shared admin role).

usage: check-template-security.py EXPANDED_TEMPLATE.json
Exits 1 listing every violation.
"""
import json
import sys

ROUTE = "/llm/questions/generate-for-content-service"


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(resource):
    props = resource.get("Properties", {})
    documents = []
    if "AssumeRolePolicyDocument" in props:
        pass  # trust policies name principals, not permissions
    for policy in props.get("Policies", []):
        documents.append((policy.get("PolicyName", "?"), policy.get("PolicyDocument", {})))
    if "PolicyDocument" in props:
        documents.append((props.get("PolicyName", "?"), props["PolicyDocument"]))
    for name, document in documents:
        for statement in as_list(document.get("Statement", [])):
            yield name, statement


def main(path):
    template = json.load(open(path))
    resources = template.get("Resources", {})
    problems = []

    apis = [(k, v) for k, v in resources.items() if v["Type"] == "AWS::ApiGatewayV2::Api"]
    if not apis:
        problems.append("no HTTP API in the template")
    seen_route = False
    for name, api in apis:
        for route, methods in api["Properties"].get("Body", {}).get("paths", {}).items():
            for method, operation in methods.items():
                seen_route |= route == ROUTE and method == "post"
                schemes = {key for entry in operation.get("security", []) for key in entry}
                if "AWS_IAM" not in schemes:
                    problems.append(f"{name}: {method.upper()} {route} does not require AWS_IAM")
    for name, route in ((k, v) for k, v in resources.items() if v["Type"] == "AWS::ApiGatewayV2::Route"):
        if route["Properties"].get("AuthorizationType") != "AWS_IAM":
            problems.append(f"{name}: route without AWS_IAM authorization")
    if not seen_route:
        problems.append(f"POST {ROUTE} is not routed")

    for name, resource in resources.items():
        if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        for policy, statement in statements(resource):
            if statement.get("Effect") != "Allow":
                continue
            actions = as_list(statement.get("Action", []))
            targets = as_list(statement.get("Resource", []))
            wildcard_action = any(a == "*" or (isinstance(a, str) and a.endswith(":*")) for a in actions)
            if "*" in actions:
                problems.append(f"{name}/{policy}: allows every action")
            if wildcard_action and "*" in targets:
                problems.append(f"{name}/{policy}: allows {actions} on every resource")

    for name, function in ((k, v) for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"):
        role = function["Properties"].get("Role")
        refs = json.dumps(role)
        if not any(f'"{other}"' in refs for other, r in resources.items() if r["Type"] == "AWS::IAM::Role"):
            problems.append(f"{name}: its role is not one defined in this template")

    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"template security: {len(apis)} HTTP API(s) all IAM-authorized; IAM statements scoped; "
          f"{sum(1 for v in resources.values() if v['Type'] == 'AWS::Lambda::Function')} functions with own roles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
