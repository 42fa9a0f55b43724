"""moto's server, with STS AssumeRole checking the role's trust policy as AWS does.

moto's AssumeRole hands out credentials for any role ARN, whether or not the role exists
or trusts the caller. Hookline's AWS destinations depend on that check (a role that does not
trust Hookline's principal, or wants another external id, must be refused), so this wrapper
makes moto's AssumeRole:

- refuse a role that does not exist in moto's IAM (AccessDenied, as AWS answers);
- refuse unless a statement of its trust policy Allows sts:AssumeRole to the caller's
  account root or the caller's ARN;
- refuse unless every StringEquals condition on sts:ExternalId of that statement matches.

Other conditions and operators are not evaluated; the tests use only these.

And, for the tests of delivery under failures: SendMessage to a queue whose name contains
"-flaky-" is throttled (RequestThrottled) every other time, counting only messages that do not
carry the `hookline-test` attribute (the check on save). Everything else is moto unchanged. Usage: python tests/moto_server.py -H 127.0.0.1 -p PORT (moto_server's flags).
"""

import json
import sys
from urllib.parse import unquote

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.sqs import models as sqs_models
from moto.sts import models as sts_models


class AccessDenied(ServiceException):
    code = "AccessDenied"


def _principals(statement):
    principal = statement.get("Principal", {})
    if principal == "*":
        return ["*"]
    aws = principal.get("AWS", []) if isinstance(principal, dict) else []
    return [aws] if isinstance(aws, str) else list(aws)


def _actions(statement):
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _external_id_ok(statement, external_id):
    equals = statement.get("Condition", {}).get("StringEquals", {})
    wanted = equals.get("sts:ExternalId")
    if wanted is None:
        return True
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    return external_id in wanted


def _trusts(document, caller_account, external_id):
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    root = f"arn:aws:iam::{caller_account}:root"
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in _actions(s)):
            continue
        principals = _principals(s)
        if not any(p in ("*", root, caller_account) for p in principals):
            continue
        if _external_id_ok(s, external_id):
            return True
    return False


_assume_role = sts_models.STSBackend.assume_role


def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        raise AccessDenied(f"{role_arn} is not a role")
    account, partition = parts[4], parts[1]
    try:
        role = iam_backends[account][partition].get_role_by_arn(role_arn)
    except Exception:
        raise AccessDenied(
            f"User: arn:aws:sts::{self.account_id}:caller is not authorized to perform: "
            f"sts:AssumeRole on resource: {role_arn} (no such role)"
        )
    if not _trusts(role.assume_role_policy_document, self.account_id, external_id):
        raise AccessDenied(
            f"User: arn:aws:iam::{self.account_id}:root is not authorized to perform: "
            f"sts:AssumeRole on resource: {role_arn}"
        )
    return _assume_role(
        self,
        region_name=region_name,
        role_session_name=role_session_name,
        role_arn=role_arn,
        policy=policy,
        duration=duration,
        external_id=external_id,
    )


sts_models.STSBackend.assume_role = assume_role


class RequestThrottled(ServiceException):
    code = "RequestThrottled"


_send_message = sqs_models.SQSBackend.send_message
_sends = {}


def send_message(self, queue_name, message_body, message_attributes=None, *args, **kwargs):
    attributes = message_attributes or {}
    if "-flaky-" in queue_name and "hookline-test" not in attributes:
        _sends[queue_name] = _sends.get(queue_name, 0) + 1
        if _sends[queue_name] % 2 == 1:
            raise RequestThrottled("Request is throttled (tests/moto_server.py: a flaky queue)")
    return _send_message(self, queue_name, message_body, message_attributes, *args, **kwargs)


sqs_models.SQSBackend.send_message = send_message

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
