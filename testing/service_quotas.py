"""EC2's instance vCPU quotas in moto's Service Quotas, for `npx tuning-lab doctor`.

moto 5.2 serves Service Quotas for VPC only. Emulated here, and only here, is what the doctor
calls: GetServiceQuota for the EC2 quotas below, each at the value a new account has (0 vCPUs
for G/VT and P instances, on-demand and spot: DESIGN.md section 6), and
RequestServiceQuotaIncrease, approved at once, so a test raises a quota through the real SDK as
a user would through the AWS CLI. Values live in moto's backend and go with ``/moto-api/reset``.

    install()   # in the moto server's process, before it serves (testing/moto_server.py does)
"""

from __future__ import annotations

import json
import uuid

EC2_SERVICE_NAME = "Amazon Elastic Compute Cloud (Amazon EC2)"
# Quota code -> (name, a new account's value in vCPUs).
EC2_QUOTAS: dict[str, tuple[str, float]] = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5.0),
    "L-DB2E81BA": ("Running On-Demand G and VT instances", 0.0),
    "L-417A185B": ("Running On-Demand P instances", 0.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0),
    "L-3819A6DF": ("All G and VT Spot Instance Requests", 0.0),
    "L-7212CCBC": ("All P4, P3 and P2 Spot Instance Requests", 0.0),
}


def _quota(backend, code: str) -> dict:
    name, default = EC2_QUOTAS[code]
    values = backend.__dict__.setdefault("_tuning_lab_ec2_quotas", {})
    return {
        "ServiceCode": "ec2",
        "ServiceName": EC2_SERVICE_NAME,
        "QuotaArn": f"arn:aws:servicequotas:{backend.region_name}:{backend.account_id}:ec2/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": values.get(code, default),
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def install() -> None:
    """Teach moto (in this process) the EC2 quotas and quota increase requests."""
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend
    from moto.servicequotas.responses import ServiceQuotasResponse

    if getattr(ServiceQuotasBackend, "_tuning_lab_ec2", False):
        return
    moto_get = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code: str, quota_code: str) -> dict:
        if service_code == "ec2":
            if quota_code not in EC2_QUOTAS:
                raise NoSuchResource
            return _quota(self, quota_code)
        return moto_get(self, service_code, quota_code)

    def request_service_quota_increase(self) -> str:
        params = json.loads(self.body)
        code, desired = params.get("QuotaCode"), float(params.get("DesiredValue"))
        if params.get("ServiceCode") != "ec2" or code not in EC2_QUOTAS:
            raise NoSuchResource
        self.backend.__dict__.setdefault("_tuning_lab_ec2_quotas", {})[code] = desired
        quota = _quota(self.backend, code)
        requested = {
            "Id": uuid.uuid4().hex,
            "ServiceCode": "ec2",
            "ServiceName": EC2_SERVICE_NAME,
            "QuotaCode": code,
            "QuotaName": quota["QuotaName"],
            "QuotaArn": quota["QuotaArn"],
            "DesiredValue": desired,
            "Status": "APPROVED",  # the emulator approves at once; AWS takes hours to days
            "Unit": "None",
            "GlobalQuota": False,
        }
        return json.dumps({"RequestedQuota": requested})

    ServiceQuotasBackend.get_service_quota = get_service_quota
    ServiceQuotasResponse.request_service_quota_increase = request_service_quota_increase
    ServiceQuotasBackend._tuning_lab_ec2 = True
