"""The IAM actions kpyops calls, by phase. Create and delete are checked together by
``kpyops doctor`` so that a cluster one can create, one can also delete (kops#7203)."""

from __future__ import annotations

READ = [
    "sts:GetCallerIdentity",
    "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypes", "ec2:DescribeImages",
    "ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeSubnets",
    "ec2:DescribeInternetGateways", "ec2:DescribeRouteTables", "ec2:DescribeAddresses",
    "ec2:DescribeNatGateways", "ec2:DescribeSecurityGroups", "ec2:DescribeKeyPairs",
    "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeNetworkInterfaces",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTags",
    "iam:GetRole", "iam:GetRolePolicy", "iam:ListRoleTags", "iam:ListRoles",
    "iam:GetInstanceProfile", "iam:ListInstanceProfiles",
    "route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
]
CREATE = [
    "ec2:CreateVpc", "ec2:ModifyVpcAttribute", "ec2:CreateTags", "ec2:CreateSubnet",
    "ec2:ModifySubnetAttribute", "ec2:CreateInternetGateway", "ec2:AttachInternetGateway",
    "ec2:CreateRouteTable", "ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute",
    "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable", "ec2:AllocateAddress",
    "ec2:CreateNatGateway", "ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress", "ec2:ImportKeyPair", "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:RunInstances",
    "iam:CreateRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:TagRole",
    "iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
    "iam:PassRole",
    "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddTags",
    "route53:ChangeResourceRecordSets",
]
DELETE = [
    "ec2:TerminateInstances", "ec2:DeleteNatGateway", "ec2:ReleaseAddress",
    "ec2:DeleteLaunchTemplate", "ec2:DeleteKeyPair", "ec2:RevokeSecurityGroupIngress",
    "ec2:DeleteSecurityGroup", "ec2:DisassociateRouteTable", "ec2:DeleteRouteTable",
    "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway", "ec2:DeleteSubnet",
    "ec2:DeleteVolume", "ec2:DeleteVpc", "ec2:DeleteTags",
    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
    "iam:ListRolePolicies", "iam:DeleteRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:DetachRolePolicy", "iam:ListInstanceProfilesForRole",
    "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:DeleteRole",
    "route53:ChangeResourceRecordSets",
]
STATE_STORE = [
    "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
    "s3:GetBucketVersioning", "s3:GetBucketPublicAccessBlock", "s3:GetEncryptionConfiguration",
]


def all_actions() -> list[str]:
    return sorted(set(READ) | set(CREATE) | set(DELETE))
