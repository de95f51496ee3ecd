"""EC2's instance vCPU quotas and SageMaker's training quotas in moto's Service Quotas, for
`npx tuning-lab doctor`.

moto 5.2 serves Service Quotas for VPC only. Emulated here, and only here, is what the doctor
calls: GetServiceQuota for the EC2 quotas below, each at the value a new account has (0 vCPUs
for G/VT and P instances, on-demand and spot: DESIGN.md section 6), and for any SageMaker quota
code (service code ``sagemaker``: the doctor asks only for the per-type "ml.X for [spot]
training job usage" quotas of cli/doctor/sagemaker-quotas.ts) at 0 instances, the value the
public accounts cited in docs/external-names.md reported for GPU training types; and
RequestServiceQuotaIncrease for both services, approved at once, so a test raises a quota through
the real SDK as a user would through the AWS CLI. The emulator does not know SageMaker's quota
names or which codes exist: a wrong code in the doctor's table is not caught here.
Values live in moto's backend and go with ``/moto-api/reset``.

    install()   # in the moto server's process, before it serves (testing/moto_server.py does)
"""

from __future__ import annotations

import json
import re
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

SAGEMAKER_SERVICE_NAME = "Amazon SageMaker"
# A new account's value of an emulated SageMaker training quota, in instances.
SAGEMAKER_DEFAULT_INSTANCES = 0.0
_QUOTA_CODE = re.compile(r"^L-[0-9A-F]{8}$")


def _emulated(service_code: str | None, quota_code: str | None) -> bool:
    if service_code == "ec2":
        return quota_code in EC2_QUOTAS
    return service_code == "sagemaker" and bool(_QUOTA_CODE.match(quota_code or ""))


def _quota(backend, service: str, code: str) -> dict:
    if service == "ec2":
        name, default, service_name = *EC2_QUOTAS[code], EC2_SERVICE_NAME
    else:
        name, default = f"SageMaker quota {code} (emulated)", SAGEMAKER_DEFAULT_INSTANCES
        service_name = SAGEMAKER_SERVICE_NAME
    values = backend.__dict__.setdefault("_tuning_lab_quotas", {})
    arn = f"arn:aws:servicequotas:{backend.region_name}:{backend.account_id}:{service}/{code}"
    return {
        "ServiceCode": service,
        "ServiceName": service_name,
        "QuotaArn": arn,
        "QuotaCode": code,
        "QuotaName": name,
        "Value": values.get((service, code), default),
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
        if service_code in ("ec2", "sagemaker"):
            if not _emulated(service_code, quota_code):
                raise NoSuchResource
            return _quota(self, service_code, quota_code)
        return moto_get(self, service_code, quota_code)

    def request_service_quota_increase(self) -> str:
        params = json.loads(self.body)
        service, code = params.get("ServiceCode"), params.get("QuotaCode")
        desired = float(params.get("DesiredValue"))
        if not _emulated(service, code):
            raise NoSuchResource
        self.backend.__dict__.setdefault("_tuning_lab_quotas", {})[(service, code)] = desired
        quota = _quota(self.backend, service, code)
        requested = {
            "Id": uuid.uuid4().hex,
            "ServiceCode": service,
            "ServiceName": quota["ServiceName"],
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
