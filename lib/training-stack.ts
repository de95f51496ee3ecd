import { Annotations, CfnOutput, Stack, Token, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { TrainingCompute } from './compute';
import { TrainingDashboard } from './dashboard';
import type { Settings } from './config';
import {
  runPrefix,
  SAGEMAKER_TRAINING_LOG_GROUP,
  SCHEMA_VERSION,
  trainingJobStackPrefix,
} from './contract';
import { UserInputError } from './errors';
import { onDemandPrice, OTHER_REGION_FACTOR, PRICE_TABLE_DATE, TABLE_REGIONS } from './pricing';
import { TrainingRegistry } from './registry';
import { RunSettingsParameter } from './run-settings';
import { TrainingSafety } from './safety';
import { TrainingJobs } from './sagemaker';
import { SAGEMAKER_OTHER_REGION_FACTOR, sageMakerTrainingPrice } from './sagemaker-types';
import { TrainingStorage } from './storage';

export interface TrainingStackProps extends StackProps {
  /** The validated deploy-time settings (lib/config.ts). */
  readonly settings: Settings;
}

/**
 * tuning-lab: one GPU training run at a time, safely and cheaply (docs/design.md section 2).
 *
 * Layers in order, each handed the objects it needs: storage (buckets), registry (image, GitHub
 * role), safety (topic, safety Lambda, alarm, budget: the instances report to its topic), then
 * the backend: compute (network, role, launch template, GPU capacity) and the run settings the
 * instance reads, or SageMaker training jobs (execution role, job settings, job controller);
 * last the run dashboard over all of them.
 */
export class TrainingStack extends Stack {
  public readonly storage: TrainingStorage;
  public readonly registry: TrainingRegistry;
  public readonly safety: TrainingSafety;
  /** The SageMaker backend (`backend=sagemaker`). */
  public readonly jobs?: TrainingJobs;
  public readonly dashboard: TrainingDashboard;
  public readonly runSettings?: RunSettingsParameter;
  private readonly ec2Compute?: TrainingCompute;

  /** The EC2 backend's compute layer; a stack with `backend=sagemaker` has none. */
  public get compute(): TrainingCompute {
    if (!this.ec2Compute) {
      throw new UserInputError('backend=sagemaker: the stack has no EC2 compute layer.');
    }
    return this.ec2Compute;
  }

  constructor(scope: Construct, id: string, props: TrainingStackProps) {
    super(scope, id, props);
    const s = props.settings;

    this.storage = new TrainingStorage(this, 'Storage', { retainData: s.retainData });

    this.registry = new TrainingRegistry(this, 'Registry', {
      githubRepo: s.githubRepo,
      githubBranch: s.githubBranch,
      githubOidcProviderArn: s.githubOidcProviderArn,
      retainImages: s.retainData,
    });

    this.safety = new TrainingSafety(this, 'Safety', {
      outputsBucket: this.storage.outputsBucket,
      defaultMaxRuntimeHours: s.maxRuntimeHours,
      monthlyBudgetUsd: s.monthlyBudgetUsd,
      alertEmail: s.alertEmail,
      retainLogs: s.retainData,
    });

    if (s.backend === 'sagemaker') {
      this.jobs = this.sageMakerJobs(s);
      this.dashboard = new TrainingDashboard(this, 'Dashboard', {
        safetyFunction: this.safety.function,
        safetyLogGroup: this.safety.functionLogGroup,
      });
      this.outputs(s);
      return;
    }

    this.ec2Compute = new TrainingCompute(this, 'Compute', {
      dataBucket: this.storage.dataBucket,
      outputsBucket: this.storage.outputsBucket,
      repository: this.registry.repository,
      alertsTopic: this.safety.topic,
      instanceTypes: s.instanceTypes,
      useSpot: s.useSpot,
      createInstance: s.createInstance,
      run: s.run && {
        runId: s.run.runId,
        maxRuntimeHours: s.maxRuntimeHours,
        maxRunCostUsd: s.maxRunCostUsd,
      },
      rootVolumeGiB: s.rootVolumeGiB,
      network: s.vpcId && s.subnetIds ? { vpcId: s.vpcId, subnetIds: s.subnetIds } : undefined,
      retainLogs: s.retainData,
    });

    if (s.run && this.compute.trainerRole) {
      this.runSettings = new RunSettingsParameter(this, 'RunSettings', {
        readers: [this.compute.instanceRole],
        document: {
          schemaVersion: SCHEMA_VERSION,
          stackName: this.stackName,
          region: this.region,
          runId: s.run.runId,
          imageUri: this.registry.repository.repositoryUriForTag(s.imageTag),
          trainerRoleArn: this.compute.trainerRole.roleArn,
          runConfig: s.run.config,
          dataRootUri: `s3://${this.storage.dataBucket.bucketName}/`,
          outputUri: `s3://${this.storage.outputsBucket.bucketName}/${runPrefix(s.run.runId)}`,
          logGroupName: this.compute.logGroup.logGroupName,
          topicArn: this.safety.topic.topicArn,
          maxRuntimeHours: s.maxRuntimeHours,
          maxRunCostUsd: s.maxRunCostUsd ?? null,
          idleMinutes: s.idleMinutes,
          maxRetries: s.maxRetries,
          debugHoldMinutes: s.debugHoldMinutes,
          onDemandUsdPerHour: this.onDemandPrices(s.instanceTypes),
        },
      });
      // An instance must not boot before it may read its settings and use its grants.
      this.compute.group.node.addDependency(this.runSettings);
    }
    this.compute.group.node.addDependency(this.compute.instanceRole);

    this.dashboard = new TrainingDashboard(this, 'Dashboard', {
      group: this.compute.group,
      safetyFunction: this.safety.function,
      safetyLogGroup: this.safety.functionLogGroup,
    });

    this.outputs(s);
  }

  private sageMakerJobs(s: Settings): TrainingJobs {
    const instanceType = s.instanceTypes[0];
    const region = Token.isUnresolved(this.region) ? 'unknown' : this.region;
    const price = sageMakerTrainingPrice(instanceType, region);
    if (s.maxRunCostUsd !== undefined && price === undefined) {
      // The cap is enforced from SageMaker's billable seconds times this price.
      throw new UserInputError(
        `Invalid setting maxRunCostUsd=${s.maxRunCostUsd}: lib/sagemaker-types.ts has no price for ` +
          `${instanceType}, so the job controller could not enforce the cap; add its price ` +
          'there or deploy without maxRunCostUsd.',
      );
    }
    if (price === undefined) {
      Annotations.of(this).addWarningV2(
        'tuning-lab:no-job-price',
        `No price of ${instanceType} in lib/sagemaker-types.ts: the run's ledger and messages show no ` +
          'cost estimate.',
      );
    } else if (price.estimated) {
      Annotations.of(this).addWarningV2(
        'tuning-lab:estimated-prices',
        `No price of ${instanceType} in region ${region} in lib/sagemaker-types.ts: cost estimates ` +
          `use the us-east-1 price times ${SAGEMAKER_OTHER_REGION_FACTOR}.`,
      );
    }
    return new TrainingJobs(this, 'TrainingJobs', {
      dataBucket: this.storage.dataBucket,
      outputsBucket: this.storage.outputsBucket,
      repository: this.registry.repository,
      alertsTopic: this.safety.topic,
      schedule: this.safety.schedule,
      run: s.run && {
        runId: s.run.runId,
        runConfig: s.run.config,
        createJob: s.createInstance,
        imageTag: s.imageTag,
        instanceType,
        instanceCount: s.instanceCount,
        volumeSizeGiB: s.rootVolumeGiB,
        useSpot: s.useSpot,
        maxRuntimeHours: s.maxRuntimeHours,
        maxRunCostUsd: s.maxRunCostUsd,
        maxRetries: s.maxRetries,
        idleMinutes: s.idleMinutes,
        usdPerHour: price?.usdPerHour,
      },
      retainLogs: s.retainData,
    });
  }

  private onDemandPrices(instanceTypes: readonly string[]): Record<string, number> {
    const region = Token.isUnresolved(this.region) ? 'unknown' : this.region;
    const prices: Record<string, number> = {};
    const estimated: string[] = [];
    for (const type of instanceTypes) {
      const price = onDemandPrice(type, region);
      if (!price) continue;
      prices[type] = price.usdPerHour;
      if (price.estimated) estimated.push(type);
    }
    if (estimated.length > 0) {
      Annotations.of(this).addWarningV2(
        'tuning-lab:estimated-prices',
        `No on-demand price of ${estimated.join(', ')} in region ${region} in lib/pricing.ts ` +
          `(tables of ${PRICE_TABLE_DATE} for ${TABLE_REGIONS.join(', ')}): cost estimates use ` +
          `the us-east-1 price times ${OTHER_REGION_FACTOR}, above every regional markup found. ` +
          'Pass -c region=<region> if the region is not known at synth.',
      );
    }
    return prices;
  }

  private outputs(s: Settings): void {
    new CfnOutput(this, 'DataBucketName', { value: this.storage.dataBucket.bucketName });
    new CfnOutput(this, 'OutputsBucketName', { value: this.storage.outputsBucket.bucketName });
    new CfnOutput(this, 'RepositoryUri', { value: this.registry.repository.repositoryUri });
    new CfnOutput(this, 'GitHubRoleArn', {
      value: this.registry.githubRole?.roleArn ?? 'none: deploy with -c githubRepo=owner/name',
    });
    if (this.jobs) {
      new CfnOutput(this, 'Backend', { value: 'sagemaker' });
      new CfnOutput(this, 'LogGroupName', { value: SAGEMAKER_TRAINING_LOG_GROUP });
      new CfnOutput(this, 'TrainingJobPrefix', {
        description: "Every training job of this stack's runs starts with it",
        value: trainingJobStackPrefix(this.stackName),
      });
      new CfnOutput(this, 'JobControllerFunctionName', { value: this.jobs.function.functionName });
      this.commonOutputs(s);
      return;
    }
    const group = this.compute.group.autoScalingGroupName;
    new CfnOutput(this, 'GpuGroupName', { value: group });
    // For `eval "$(out SsmSessionCommand)"` in bash or zsh: with no instance in service it says
    // so (status 1) instead of starting a session with `--target None`; never `exit`s the shell.
    new CfnOutput(this, 'SsmSessionCommand', {
      description: "Opens a shell on the run's instance (then: sudo tmux attach -t training)",
      value:
        `tuning_lab_instance=$(aws autoscaling describe-auto-scaling-groups --region ${this.region} ` +
        `--auto-scaling-group-names ${group} ` +
        '--query "AutoScalingGroups[0].Instances[?LifecycleState==\'InService\'] | [0].InstanceId" ' +
        '--output text); case "$tuning_lab_instance" in i-*) aws ssm start-session ' +
        `--region ${this.region} --target "$tuning_lab_instance" ;; *) echo "no instance of ` +
        `${group} is in service, so there is no shell to open (npx tuning-lab status shows the ` +
        'run)" >&2; false ;; esac',
    });
    new CfnOutput(this, 'LogGroupName', { value: this.compute.logGroup.logGroupName });
    this.commonOutputs(s);
  }

  private commonOutputs(s: Settings): void {
    new CfnOutput(this, 'AlertsTopicArn', { value: this.safety.topic.topicArn });
    new CfnOutput(this, 'SafetyFunctionName', { value: this.safety.function.functionName });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'The run dashboard: loss, tokens/s, GPU, capacity, safety decisions',
      value: this.dashboard.url,
    });
    if (s.run) new CfnOutput(this, 'RunId', { value: s.run.runId });
  }
}
