#!/usr/bin/env python3
"""Expands a SAM template into the CloudFormation that `sam deploy` would submit.

`sam validate --lint` lints the SAM template itself and misses bad values inside events (an MSK
event's properties become an AWS::Lambda::EventSourceMapping only after the transform), so CI
lints this expansion with cfn-lint as well.

Usage: scripts/sam-translate.py template.yaml > expanded.json
"""

import json
import sys

import boto3
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

REGION = "eu-west-1"


def main(path):
    with open(path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    # `sam package` replaces local code paths with the S3 object it uploads; stand in for it.
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://packaged-by-sam/code.zip"
    # The region only fills pseudo parameters (partition, URL suffix); no AWS call is made, and
    # the managed-policy map is empty because the template attaches no managed policy by name.
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    try:
        cfn = translator.translate(sam, parameter_values={}, get_managed_policy_map=lambda: {})
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{path}: {cause.message}", file=sys.stderr)
        return 1
    json.dump(cfn, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
