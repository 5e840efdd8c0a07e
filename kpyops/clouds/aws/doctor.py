"""`kpyops doctor --cloud aws`: can this identity create and delete a cluster, here?

Permissions are checked with IAM's policy simulator; where it is not available (some
endpoints, or no iam:SimulatePrincipalPolicy) the identity's own policies are read and
evaluated locally, by action only (conditions and resource scopes are not considered).
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from dataclasses import dataclass

from kpyops.clouds.aws import permissions, preflight
from kpyops.clouds.aws.errors import AwsError, BadCredentials
from kpyops.clouds.aws.resource import Context
from kpyops.spec.model import Cluster


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def principal_arn(caller_arn: str) -> str:
    """The IAM principal behind an STS caller ARN (an assumed role becomes its role)."""
    if ":assumed-role/" in caller_arn:
        account = caller_arn.split(":")[4]
        role = caller_arn.split(":assumed-role/")[1].split("/")[0]
        return f"arn:aws:iam::{account}:role/{role}"
    return caller_arn


def simulate(ctx: Context, arn: str, actions: list[str]) -> tuple[list[str], str]:
    """(denied actions, how it was checked)."""
    try:
        denied = []
        for i in range(0, len(actions), 50):
            res = ctx.call("iam", "simulate_principal_policy", PolicySourceArn=arn,
                           ActionNames=actions[i : i + 50])
            denied += [r["EvalActionName"] for r in res["EvaluationResults"]
                       if r["EvalDecision"] != "allowed"]
        return denied, "IAM policy simulation"
    except AwsError:
        return evaluate_locally(ctx, arn, actions), "the identity's policies, read and evaluated locally"


def _doc(v) -> dict:
    return json.loads(urllib.parse.unquote(v)) if isinstance(v, str) else v


def policies_of(ctx: Context, arn: str) -> list[dict]:
    name = arn.split("/")[-1]
    docs = []
    if ":user/" in arn:
        for p in ctx.pages("iam", "list_user_policies", "PolicyNames", UserName=name):
            docs.append(_doc(ctx.call("iam", "get_user_policy", UserName=name, PolicyName=p)["PolicyDocument"]))
        attached = list(ctx.pages("iam", "list_attached_user_policies", "AttachedPolicies", UserName=name))
        for g in ctx.pages("iam", "list_groups_for_user", "Groups", UserName=name):
            gn = g["GroupName"]
            for p in ctx.pages("iam", "list_group_policies", "PolicyNames", GroupName=gn):
                docs.append(_doc(ctx.call("iam", "get_group_policy", GroupName=gn, PolicyName=p)["PolicyDocument"]))
            attached += list(ctx.pages("iam", "list_attached_group_policies", "AttachedPolicies", GroupName=gn))
    elif ":role/" in arn:
        for p in ctx.pages("iam", "list_role_policies", "PolicyNames", RoleName=name):
            docs.append(_doc(ctx.call("iam", "get_role_policy", RoleName=name, PolicyName=p)["PolicyDocument"]))
        attached = list(ctx.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name))
    else:
        raise AwsError(f"cannot read the policies of {arn}")
    for a in attached:
        pol = ctx.call("iam", "get_policy", PolicyArn=a["PolicyArn"])["Policy"]
        ver = ctx.call("iam", "get_policy_version", PolicyArn=a["PolicyArn"],
                       VersionId=pol["DefaultVersionId"])["PolicyVersion"]
        docs.append(_doc(ver["Document"]))
    return docs


def _listify(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])


def _statements(doc: dict) -> list[dict]:
    st = doc.get("Statement")
    return [st] if isinstance(st, dict) else [x for x in st or [] if isinstance(x, dict)]


def _matches(action: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _listify(patterns))


def decide(docs: list[dict], action: str) -> bool:
    """Allowed by some statement and denied by none (actions only)."""
    allowed = False
    for doc in docs:
        for st in _statements(doc):
            if "Action" in st:
                match = _matches(action, st["Action"])
            else:
                match = not _matches(action, st.get("NotAction"))
            if match and st.get("Effect") == "Deny":
                return False
            allowed = allowed or (match and st.get("Effect") == "Allow")
    return allowed


def evaluate_locally(ctx: Context, arn: str, actions: list[str]) -> list[str]:
    docs = policies_of(ctx, arn)
    return [a for a in actions if not decide(docs, a)]


def run_doctor(ctx: Context, cluster: Cluster | None = None, *, region: str,
               state_bucket: str | None = None) -> list[Check]:
    checks: list[Check] = []
    try:
        ident = ctx.call("sts", "get_caller_identity")
    except BadCredentials as err:
        return [Check("credentials", False, str(err))]
    except AwsError as err:
        return [Check("credentials", False, str(err))]
    arn = ident["Arn"]
    checks.append(Check("credentials", True, f"account {ident['Account']}, {arn}"))

    actions = permissions.all_actions()
    if state_bucket:
        actions = sorted(set(actions) | set(permissions.STATE_STORE))
    try:
        denied, how = simulate(ctx, principal_arn(arn), actions)
        if ident["Arn"].endswith(":root"):
            denied, how = [], "the account's root user may do everything"
        checks.append(Check(
            "permissions", not denied,
            f"all {len(actions)} actions for plan, create and delete allowed ({how})" if not denied
            else f"missing {len(denied)}: {', '.join(denied)} ({how})",
        ))
    except AwsError as err:
        checks.append(Check("permissions", False, f"could not check: {err}"))

    if cluster is not None and cluster.spec.aws is not None:
        aws = cluster.spec.aws
        for name, fn in (
            ("zones", lambda: preflight.check_zones(ctx, aws.region, aws.zones)),
            ("instance types", lambda: preflight.check_instance_types(
                ctx, aws.region, preflight.instance_types(cluster))),
            ("image", lambda: preflight.find_image(ctx, aws)),
        ):
            try:
                result = fn()
                checks.append(Check(name, True, getattr(result, "id", None) or "ok"))
            except AwsError as err:
                checks.append(Check(name, False, str(err)))
    if state_bucket:
        checks.append(check_bucket(ctx, state_bucket))
    return checks


def check_bucket(ctx: Context, bucket: str) -> Check:
    try:
        problems = []
        v = ctx.call("s3", "get_bucket_versioning", Bucket=bucket)
        if v.get("Status") != "Enabled":
            problems.append("versioning is off")
        try:
            pab = ctx.call("s3", "get_public_access_block", Bucket=bucket)["PublicAccessBlockConfiguration"]
            if not all(pab.values()):
                problems.append("public access is not fully blocked")
        except AwsError:
            problems.append("no public access block")
        try:
            ctx.call("s3", "get_bucket_encryption", Bucket=bucket)
        except AwsError:
            problems.append("no default encryption")
    except AwsError as err:
        if err.code in ("NoSuchBucket", "404", "NotFound"):  # before the first create: a note
            return Check("state bucket", True, f"s3://{bucket} does not exist yet: the first "
                         "create makes it (versioned, private, encrypted)")
        return Check("state bucket", False, str(err))
    if problems:
        return Check("state bucket", False, f"s3://{bucket}: " + ", ".join(problems))
    return Check("state bucket", True, f"s3://{bucket}: versioned, private, encrypted")
