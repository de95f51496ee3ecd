import { ArnFormat, Aws, type CfnElement, CustomResource, Duration, Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, type IConstruct } from 'constructs';
import { join } from 'node:path';
import { JOBS_ENV } from '../lambda/jobs/env';
import { newApiFunction } from './api-function';
import {
  finalPrefix,
  jobRunConfigKey,
  jobSettingsParameterName,
  leaseKey,
  ledgerKey,
  MANIFEST_NAME,
  messagesPrefix,
  metricsKey,
  progressKey,
  runPrefix,
  SAGEMAKER_TRAINING_LOG_GROUP,
  SCHEMA_VERSION,
  stopRequestKey,
  trainingJobStackPrefix,
} from './contract';
import {
  acknowledgeAlertsKeyUse,
  acknowledgeApiOnlyFunction,
  acknowledgeFinding,
  acknowledgeGrantPolicy,
  nagArnPrefix,
} from './nag';
import { RunSettingsParameter } from './run-settings';

export const JOBS_HANDLER_ENTRY = join(__dirname, '..', 'lambda', 'jobs', 'handler.ts');
/** The event SageMaker sends to EventBridge at each status change of a training job. */
export const TRAINING_JOB_EVENT = {
  source: 'aws.sagemaker',
  detailType: 'SageMaker Training Job State Change',
} as const;
/** The job guard's CloudFormation type (lambda/jobs/handler.ts, `guardJobs`). */
export const JOB_GUARD_TYPE = 'Custom::TuningLabJobGuard';
/** The controller's timeout: the job guard waits this long, less a margin, for jobs to stop. */
const CONTROLLER_TIMEOUT = Duration.minutes(15);

/** The run the jobs train, with what its job settings need (contract section 14). */
export interface TrainingJobRun {
  readonly runId: string;
  /** The parsed run config, written to the run's prefix for the trainer at each start. */
  readonly runConfig: Record<string, unknown>;
  /** Start (or keep) the run's job; false stops it. */
  readonly createJob: boolean;
  /** The trainer image tag; the first job pins it to a digest. */
  readonly imageTag: string;
  /** One SageMaker training type, `ml.` prefixed. */
  readonly instanceType: string;
  readonly instanceCount: number;
  readonly volumeSizeGiB: number;
  readonly useSpot: boolean;
  readonly maxRuntimeHours: number;
  /** @default - no per-run cost cap */
  readonly maxRunCostUsd?: number;
  readonly maxRetries: number;
  /** Stop a job whose hosts and steps stay idle this long. */
  readonly idleMinutes: number;
  /** On-demand USD per instance-hour of `instanceType`; undefined when the table has none. */
  readonly usdPerHour?: number;
}

export interface TrainingJobsProps {
  /** Datasets: the job may read all of it. */
  readonly dataBucket: s3.IBucket;
  /** Runs: the job reads and writes `runs/<run-id>/`, the controller the ledger and messages. */
  readonly outputsBucket: s3.IBucket;
  /** The trainer image: the job pulls it, the controller pins its tag to a digest. */
  readonly repository: ecr.IRepository;
  /** Where the controller sends run messages. */
  readonly alertsTopic: sns.ITopic;
  /** The safety layer's schedule: the controller is a second target of it. */
  readonly schedule: events.Rule;
  /**
   * The configured run; without it there is no execution role, no job settings, and the
   * controller only stops jobs of this stack that are still running.
   * @default - no run
   */
  readonly run?: TrainingJobRun;
  /**
   * Keep the controller's log group when the stack is deleted.
   * @default true
   */
  readonly retainLogs?: boolean;
}

/**
 * The SageMaker backend: the execution role a run's training jobs use, the job settings, and
 * the job controller Lambda that starts, watches and stops them (docs/architecture.md, "The
 * SageMaker backend").
 *
 * The controller runs on the safety schedule and at every state change of this stack's jobs
 * (EventBridge), with a pure decision core (lambda/jobs/decide.ts) like the safety Lambda. No
 * Step Functions and no custom resource that starts jobs: a deploy only writes settings, and
 * the same pass that starts a job enforces its limits. One custom resource, the job guard,
 * runs the controller when a deploy changes the run or removes the backend (`cdk destroy`,
 * `backend=ec2`): it stops the jobs of runs no longer asked for and waits for them, so nothing
 * the stack started outlives it. The EC2 default stack has none (it deploys into the emulator
 * unchanged).
 */
export class TrainingJobs extends Construct {
  /** The role SageMaker assumes for the run's jobs (present with a run). */
  public readonly executionRole?: iam.Role;
  public readonly settingsParameter?: RunSettingsParameter;
  public readonly function: lambda.IFunction;
  public readonly functionLogGroup: logs.ILogGroup;
  /** The EventBridge rule for this stack's training job state changes. */
  public readonly stateChangeRule: events.Rule;
  /** The job guard: a custom resource whose every change runs the controller (see the class). */
  public readonly guard: CustomResource;

  constructor(scope: Construct, id: string, props: TrainingJobsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const retainLogs = props.retainLogs ?? true;
    const jobPrefix = trainingJobStackPrefix(stack.stackName);
    const outputs = props.outputsBucket;

    const { fn, role, logGroup } = newApiFunction(this, {
      ids: { function: 'ControllerFunction', role: 'ControllerRole', logs: 'ControllerLogs' },
      description: "Starts, watches and stops the stack's SageMaker training jobs (tuning-lab)",
      roleDescription:
        'tuning-lab job controller: starts, watches and stops SageMaker training jobs',
      entry: JOBS_HANDLER_ENTRY,
      // A pass takes seconds; the job guard waits for stopping jobs (lambda/jobs/handler.ts).
      timeout: CONTROLLER_TIMEOUT,
      environment: {
        [JOBS_ENV.stackName]: stack.stackName,
        [JOBS_ENV.stackId]: Aws.STACK_ID,
        [JOBS_ENV.topicArn]: props.alertsTopic.topicArn,
        [JOBS_ENV.outputsBucket]: outputs.bucketName,
        [JOBS_ENV.jobSettingsParameter]: jobSettingsParameterName(stack.stackName),
      },
      alertsTopic: props.alertsTopic,
      retainLogs,
    });
    this.functionLogGroup = logGroup;
    this.function = fn;

    if (props.run) {
      this.executionRole = this.newExecutionRole(props, props.run.runId, jobPrefix);
      this.settingsParameter = new RunSettingsParameter(this, 'JobSettings', {
        parameterName: jobSettingsParameterName(stack.stackName),
        readers: [role],
        document: {
          schemaVersion: SCHEMA_VERSION,
          stackName: stack.stackName,
          region: stack.region,
          runId: props.run.runId,
          createJob: props.run.createJob,
          imageUri: props.repository.repositoryUriForTag(props.run.imageTag),
          executionRoleArn: this.executionRole.roleArn,
          runConfig: props.run.runConfig,
          dataRootUri: `s3://${props.dataBucket.bucketName}/`,
          outputUri: `s3://${outputs.bucketName}/${runPrefix(props.run.runId)}`,
          topicArn: props.alertsTopic.topicArn,
          instanceType: props.run.instanceType,
          instanceCount: props.run.instanceCount,
          volumeSizeGiB: props.run.volumeSizeGiB,
          useSpot: props.run.useSpot,
          maxRuntimeHours: props.run.maxRuntimeHours,
          maxRunCostUsd: props.run.maxRunCostUsd ?? null,
          maxRetries: props.run.maxRetries,
          idleMinutes: props.run.idleMinutes,
          usdPerHour: props.run.usdPerHour ?? null,
        },
      });
      // No pass sees the settings (and starts a job) before the run's role has its grants: a
      // job denied its image or data would fail for good (a ClientError is not retried).
      this.settingsParameter.node.addDependency(this.executionRole.node.findChild('DefaultPolicy'));
      // Only SageMaker, and only for this stack's jobs, may be handed the execution role.
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['iam:PassRole'],
          resources: [this.executionRole.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
        }),
      );
    }

    // This stack's jobs only: every name starts with the stack's prefix.
    const jobsArn = stack.formatArn({
      service: 'sagemaker',
      resource: 'training-job',
      resourceName: `${jobPrefix}*`,
    });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sagemaker:CreateTrainingJob',
          'sagemaker:DescribeTrainingJob',
          'sagemaker:StopTrainingJob',
          // CreateTrainingJob with Tags needs it on the job.
          'sagemaker:AddTags',
        ],
        resources: [jobsArn],
      }),
    );
    // Listing has no resource scope in IAM; the controller filters by the name prefix.
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:ListTrainingJobs'], resources: ['*'] }),
    );
    // The first job of a run pins the image tag to its digest.
    props.repository.grant(role, 'ecr:DescribeImages');
    // The ledger it keeps, the lease it holds for the run's live job, the run config it hands
    // each job, and the progress it publishes from the job's log streams (what the supervisor
    // does on EC2); below, the stop request and final manifest it reads, and the messages it
    // keeps, write only.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [
          ledgerKey('*'),
          leaseKey('*'),
          jobRunConfigKey('*'),
          progressKey('*'),
          metricsKey('*'),
        ].map((k) => outputs.arnForObjects(k)),
      }),
    );
    const trainingLogs = stack.formatArn({
      service: 'logs',
      resource: 'log-group',
      resourceName: SAGEMAKER_TRAINING_LOG_GROUP,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    fn.addToRolePolicy(
      // The group's ARN in both forms IAM documents for log-group actions (with and without :*).
      new iam.PolicyStatement({
        actions: ['logs:DescribeLogStreams'],
        resources: [trainingLogs, `${trainingLogs}:*`],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['logs:GetLogEvents'],
        resources: [`${trainingLogs}:log-stream:*`],
      }),
    );
    // Its own stack's status: no job starts while the stack is deleted or cleaned up.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['cloudformation:DescribeStacks'],
        resources: [Aws.STACK_ID],
      }),
    );
    // SageMaker's per-host GPU and CPU metrics, for the idle check (no resource scope in IAM).
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [stopRequestKey('*'), `${finalPrefix('*')}${MANIFEST_NAME}`].map((k) =>
          outputs.arnForObjects(k),
        ),
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [outputs.arnForObjects(`${messagesPrefix('*')}*`)],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [outputs.bucketArn],
        conditions: {
          StringLike: {
            's3:prefix': [
              ledgerKey('*'),
              leaseKey('*'),
              stopRequestKey('*'),
              progressKey('*'),
              metricsKey('*'),
              `${finalPrefix('*')}${MANIFEST_NAME}`,
            ],
          },
        },
      }),
    );
    props.alertsTopic.grantPublish(fn);

    props.schedule.addTarget(new targets.LambdaFunction(fn, { retryAttempts: 0 }));
    this.stateChangeRule = new events.Rule(this, 'JobStateChangeRule', {
      description: "Runs the tuning-lab job controller when one of this stack's jobs changes",
      eventPattern: {
        source: [TRAINING_JOB_EVENT.source],
        detailType: [TRAINING_JOB_EVENT.detailType],
        detail: { TrainingJobName: [{ prefix: jobPrefix }] },
      },
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
    });

    this.acknowledgeControllerFindings(role, fn, outputs, jobPrefix);
    this.guard = this.newJobGuard(fn, props);
  }

  private newJobGuard(fn: lambda.IFunction, props: TrainingJobsProps): CustomResource {
    const guard = new CustomResource(this, 'JobGuard', {
      serviceToken: fn.functionArn,
      resourceType: JOB_GUARD_TYPE,
      // A new run id is an Update: the jobs of the old run are stopped while its role exists.
      properties: { RunId: props.run?.runId ?? '' },
      serviceTimeout: CONTROLLER_TIMEOUT.plus(Duration.minutes(1)),
    });
    // Deleted first on `cdk destroy` (or a switch to backend=ec2), while everything a stopping
    // job and the controller use still exists: the run's role, the bucket, the image, the topic,
    // the settings; the function (with its role and policy) through the ServiceToken already.
    for (const used of [
      this.executionRole,
      props.outputsBucket,
      props.dataBucket,
      props.repository,
      props.alertsTopic,
      this.settingsParameter,
    ]) {
      if (used) guard.node.addDependency(used);
    }
    return guard;
  }

  /**
   * The role SageMaker assumes for the run's jobs: read the datasets, read and write its own
   * run (checkpoints, final model, SageMaker's output archives), pull the image, write its logs
   * and metrics. Like the EC2 trainer role, never the ledger, the lease, the stop request or
   * what the controller and supervisor report: the container runs code the stack does not
   * control.
   */
  private newExecutionRole(props: TrainingJobsProps, runId: string, jobPrefix: string): iam.Role {
    const stack = Stack.of(this);
    const outputs = props.outputsBucket;
    // One role per run (its id names the run): a deploy with a new run id creates the new role
    // and CloudFormation deletes the old one only after the job guard has stopped the old run's
    // job, so that job can still publish its last checkpoint under its own grants.
    const role = new iam.Role(this, `ExecutionRole-${runId}`, {
      description: `SageMaker training jobs of run ${runId}: read datasets, write its run, pull, log`,
      // Only SageMaker training jobs of this stack may assume it (confused deputy prevention).
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com', {
        conditions: {
          ArnLike: {
            'aws:SourceArn': stack.formatArn({
              service: 'sagemaker',
              resource: 'training-job',
              resourceName: `${jobPrefix}*`,
            }),
          },
        },
      }),
    });
    props.dataBucket.grantRead(role);
    const prefix = runPrefix(runId);
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [outputs.arnForObjects(`${prefix}/*`)],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [outputs.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}/*`, prefix] } },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject', 's3:DeleteObject'],
        resources: [
          ledgerKey(runId),
          leaseKey(runId),
          stopRequestKey(runId),
          progressKey(runId),
          metricsKey(runId),
          jobRunConfigKey(runId),
          `${messagesPrefix(runId)}*`,
        ].map((key) => outputs.arnForObjects(key)),
      }),
    );
    props.repository.grantPull(role);
    const logGroupArn = stack.formatArn({
      service: 'logs',
      resource: 'log-group',
      resourceName: SAGEMAKER_TRAINING_LOG_GROUP,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogGroup', 'logs:DescribeLogStreams'],
        resources: [`${logGroupArn}:*`],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [`${logGroupArn}:log-stream:*`],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
      }),
    );
    this.acknowledgeExecutionRoleFindings(role, props, prefix);
    return role;
  }

  private logicalIdOf(construct: IConstruct): string {
    return Stack.of(this).getLogicalId(construct.node.defaultChild as CfnElement);
  }

  private acknowledgeExecutionRoleFindings(
    role: iam.Role,
    props: TrainingJobsProps,
    prefix: string,
  ): void {
    const policy = role.node.findChild('DefaultPolicy');
    const stack = Stack.of(this);
    for (const action of ['s3:GetBucket*', 's3:GetObject*', 's3:List*']) {
      acknowledgeFinding(
        policy,
        `AwsSolutions::AwsSolutions-IAM5[Action::${action}]`,
        'bucket.grantRead on the data bucket: the job reads datasets and base models anywhere ' +
          'in it, nothing else.',
      );
    }
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.logicalIdOf(props.dataBucket)}.Arn>/*]`,
      'Datasets may live under any key of the data bucket, which holds nothing but datasets.',
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.logicalIdOf(props.outputsBucket)}.Arn>/${prefix}/*]`,
      'Checkpoints, the final model and SageMaker output archives are many objects under the ' +
        'one run prefix; the ledger and what the controller reports are denied.',
    );
    acknowledgeFinding(
      policy,
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource scope; metrics ' +
        "are limited to SageMaker's namespaces by condition.",
      'CKV_AWS_111',
    );
    const logs = `${nagArnPrefix(stack, 'logs')}:log-group:${SAGEMAKER_TRAINING_LOG_GROUP}`;
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${logs}:*]`,
      "SageMaker writes every job's output to its one log group, a stream per job and host.",
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${logs}:log-stream:*]`,
      'Stream names (<job>/algo-<n>-<time>) are made by SageMaker when each host starts.',
    );
    acknowledgeGrantPolicy(policy);
  }

  private acknowledgeControllerFindings(
    role: iam.Role,
    fn: lambda.Function,
    outputs: s3.IBucket,
    jobPrefix: string,
  ): void {
    const policy = role.node.findChild('DefaultPolicy');
    const stack = Stack.of(this);
    const outputsArn = `<${this.logicalIdOf(outputs)}.Arn>`;
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${nagArnPrefix(stack, 'sagemaker')}:training-job/${jobPrefix}*]`,
      "Job names are made per attempt; the prefix is this stack's and no one else's.",
    );
    acknowledgeFinding(
      policy,
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      'sagemaker:ListTrainingJobs and cloudwatch:GetMetricData have no resource-level ' +
        "permissions; the controller filters by this stack's name prefix and reads only its " +
        "jobs' hosts.",
      'CKV_AWS_111',
    );
    const logs = `${nagArnPrefix(stack, 'logs')}:log-group:${SAGEMAKER_TRAINING_LOG_GROUP}`;
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${logs}:*]`,
      "SageMaker writes every job's output to its one log group; the controller lists the " +
        "streams of its run's job to read the trainer's metric lines.",
    );
    acknowledgeFinding(
      policy,
      `AwsSolutions::AwsSolutions-IAM5[Resource::${logs}:log-stream:*]`,
      'Stream names (<job>/algo-<n>-<time>) are made by SageMaker when each host starts; read only.',
    );
    for (const key of [
      ledgerKey('*'),
      leaseKey('*'),
      jobRunConfigKey('*'),
      progressKey('*'),
      metricsKey('*'),
      stopRequestKey('*'),
      `${finalPrefix('*')}${MANIFEST_NAME}`,
      `${messagesPrefix('*')}*`,
    ]) {
      acknowledgeFinding(
        policy,
        `AwsSolutions::AwsSolutions-IAM5[Resource::${outputsArn}/${key}]`,
        'One named object per run (the run id is in the key): the ledger, the lease, the job run config, ' +
          'the progress it publishes, the stop request, the final manifest, and the messages it ' +
          'sends.',
      );
    }
    acknowledgeAlertsKeyUse(policy);
    acknowledgeGrantPolicy(policy);
    acknowledgeApiOnlyFunction(fn, this.functionLogGroup, {
      overlap: 'overlapping passes are harmless: job names and ledger writes are idempotent.',
      environment: 'names (stack, topic, bucket, parameter)',
    });
  }
}
