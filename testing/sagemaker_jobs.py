"""SageMaker training jobs in moto as far as the job controller needs them, and no further.

moto 5.2 stores a CreateTrainingJob request and marks the job Completed at once; it has no
StopTrainingJob, keeps no Environment or RetryStrategy, replaces a job created again under the
same name and never reports billable time or a failure reason. Emulated here, and only here:

- CreateTrainingJob keeps Environment and RetryStrategy (so a test reads back the request the
  controller sent), refuses a name that exists (``ResourceInUse``: SageMaker keeps training job
  names unique in an account and region; the exact error code of the real service was not
  confirmed, and the controller does not rely on it: it describes the job after any refusal),
  and leaves the job ``InProgress`` (secondary status ``Training``, training started at creation);
- StopTrainingJob ends an ``InProgress`` job as ``Stopped`` at once (SageMaker passes through
  ``Stopping`` while the container has its 120 s after SIGTERM), with its billable time;
- ``POST /moto-api/tuning-lab/sagemaker/training-job`` moves a job to any state a test names,
  as time and the trainer would: ``{"TrainingJobName", "TrainingJobStatus", "SecondaryStatus",
  "FailureReason", "BillableTimeInSeconds", "CreationTime", "TrainingStartTime"}`` (times in
  seconds since the epoch; ``region`` defaults to us-east-1); a new secondary status is appended
  to the job's SecondaryStatusTransitions (``Interrupted``: a managed spot interruption), at
  ``TransitionTime`` (seconds since the epoch) when given, else now.

And in moto's CloudFormation: it runs a custom resource's Lambda only in Docker, which this
machine lacks, so a stack with the job guard (``Custom::TuningLabJobGuard``, lib/sagemaker.ts)
would never finish creating. The guard does nothing on Create (lambda/jobs/handler.ts), so the
emulator answers that Create itself, as the guard would: created, no data. Its Update and Delete
(what it is for) are not run by moto at all; test/jobs-lambda.test.ts runs them in-process.

    install()   # in the moto server's process, before it serves (testing/moto_server.py does)
"""

from __future__ import annotations

import datetime as dt
import json

CONTROL_PATH = "/moto-api/tuning-lab/sagemaker/training-job"
JOB_GUARD_TYPE = "Custom::TuningLabJobGuard"  # lib/sagemaker.ts
_ENDED = ("Completed", "Failed", "Stopped")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _billable(job) -> int:
    start, end = job.training_start_time, job.training_end_time or _now()
    return max(0, int((end - start).total_seconds())) if start else 0


def _set_state(job, body: dict) -> None:
    status = body.get("TrainingJobStatus", job.training_job_status)
    job.training_job_status = status
    job.secondary_status = body.get("SecondaryStatus", status)
    for field, attr in (
        ("CreationTime", "creation_time"),
        ("TrainingStartTime", "training_start_time"),
    ):
        if field in body:
            setattr(
                job,
                attr,
                dt.datetime.fromtimestamp(body[field], dt.UTC).replace(tzinfo=None),
            )
    if status in _ENDED:
        job.training_end_time = job.training_end_time or _now()
        job.billable_time_in_seconds = body.get("BillableTimeInSeconds", _billable(job))
    else:
        job.training_end_time = None
        if "BillableTimeInSeconds" in body:
            job.billable_time_in_seconds = body["BillableTimeInSeconds"]
    if "FailureReason" in body:
        job.failure_reason = body["FailureReason"]
    if job.secondary_status != (job.secondary_status_transitions or [{}])[-1].get("Status"):
        at = body.get("TransitionTime")
        start = dt.datetime.fromtimestamp(at, dt.UTC).replace(tzinfo=None) if at else _now()
        job.secondary_status_transitions.append(
            {"Status": job.secondary_status, "StartTime": start, "StatusMessage": "(emulated)"}
        )
    job.last_modified_time = _now()


def install() -> None:
    """Teach moto (in this process) the training job behaviour above."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.responses import EmptyResult
    from moto.moto_api._internal import urls as moto_api_urls
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerResponse, "_tuning_lab_jobs", False):
        return
    moto_create = SageMakerResponse.create_training_job

    def create_training_job(self):
        name = self._get_param("TrainingJobName")
        if name in self.sagemaker_backend.training_jobs:
            raise ResourceInUseException(f"Training job {name} already exists")
        result = moto_create(self)
        job = self.sagemaker_backend.training_jobs[name]
        job.environment = self._get_param("Environment")
        job.retry_strategy = self._get_param("RetryStrategy")
        job.training_job_status = "InProgress"
        job.secondary_status = "Training"
        job.training_start_time = job.creation_time
        job.training_end_time = None
        job.final_metric_data_list = None
        return result

    def stop_training_job(self):
        name = self._get_param("TrainingJobName")
        job = self.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message=f"Could not find training job '{name}'.")
        if job.training_job_status == "InProgress":
            _set_state(job, {"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"})
        return EmptyResult()

    def control(request, full_url, headers):
        raw = request.data if hasattr(request, "data") else request.body
        body = json.loads(raw or b"{}")
        backend = sagemaker_backends[body.get("account_id", DEFAULT_ACCOUNT_ID)][
            body.get("region", "us-east-1")
        ]
        job = backend.training_jobs.get(body.get("TrainingJobName", ""))
        if job is None:
            return 404, {}, json.dumps({"message": "no such training job"})
        _set_state(job, body)
        return 200, {}, json.dumps({"TrainingJobStatus": job.training_job_status})

    SageMakerResponse.create_training_job = create_training_job
    SageMakerResponse.stop_training_job = stop_training_job
    moto_api_urls.url_paths["{0}" + CONTROL_PATH] = control
    _answer_job_guard_creates()
    SageMakerResponse._tuning_lab_jobs = True


def _answer_job_guard_creates() -> None:
    from moto.cloudformation.custom_model import CustomModel

    moto_create = CustomModel.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        if kwargs.get("ResourceType") != JOB_GUARD_TYPE:
            return moto_create(
                cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
            )
        guard = cls(region_name, "emulated", kwargs["LogicalId"], resource_name)
        guard.set_data({})  # the guard's answer to Create: SUCCESS, no data
        return guard

    CustomModel.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
