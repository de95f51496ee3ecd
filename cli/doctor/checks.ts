/**
 * What `tuning-lab doctor` checks before any money is spent, one function per check, each with
 * the AWS SDK v3 clients it needs and returning lines of PASS / WARN / FAIL with the fix.
 *
 * These replace the checks the README used to ask for by hand: credentials and account, region,
 * CDK bootstrap, the G/VT and P vCPU quotas of the market the run uses against the types' vCPUs,
 * which Availability Zones of the subnets offer each type, the AMI parameter, the image tag, the
 * budget, and an estimate of the run's time and cost. With backend sagemaker the quotas are
 * SageMaker's per-type training quotas (cli/doctor/sagemaker-quotas.ts) against the job's
 * instance count, and the EC2-only checks (zone offerings, the Deep Learning AMI) are left out.
 */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { BudgetsClient, DescribeBudgetsCommand } from '@aws-sdk/client-budgets';
import {
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { DescribeImagesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { GetServiceQuotaCommand, ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { GPU_AMI } from '../../lib/ami';
import type { Settings } from '../../lib/config';
import { STACK_OUTPUTS, type Market } from '../../lib/contract';
import { OTHER_REGION_FACTOR, TABLE_REGIONS } from '../../lib/pricing';
import { sageMakerTypeInfo, SUPPORTED_SAGEMAKER_INSTANCE_TYPES } from '../../lib/sagemaker-types';
import { estimateRun, runShape, type RunEstimate } from './estimate';
import { increaseCommand, vcpuQuota, type VcpuQuota } from './quotas';
import {
  findQuotaCommand,
  SAGEMAKER_SERVICE_CODE,
  trainingIncreaseCommand,
  trainingQuota,
} from './sagemaker-quotas';

export type Verdict = 'PASS' | 'WARN' | 'FAIL';

/** Where a run trains: an EC2 Auto Scaling group, or SageMaker training jobs. */
export type Backend = 'ec2' | 'sagemaker';
export const BACKENDS: readonly Backend[] = ['ec2', 'sagemaker'];

export interface CheckLine {
  readonly verdict: Verdict;
  /** What was checked, in a word or two: `credentials`, `quota`, `offering`. */
  readonly check: string;
  readonly detail: string;
  /** What to do about a WARN or FAIL: a command where there is one. */
  readonly fix?: string;
}

export interface DoctorClients {
  readonly sts: STSClient;
  readonly quotas: ServiceQuotasClient;
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly ecr: ECRClient;
  readonly budgets: BudgetsClient;
  readonly autoscaling: AutoScalingClient;
}

export interface DoctorInput {
  /** The deploy-time settings: cdk.json's context, `-c key=value`, `--run-config FILE`. */
  readonly settings: Settings;
  /** The region the commands (and so `cdk deploy`) use. */
  readonly region: string;
  readonly stackName: string;
  /** The deployed stack's outputs; undefined when the stack is not deployed. */
  readonly outputs?: Readonly<Record<string, string>>;
  /** Steps `tuning-trainer validate` planned, when the run config does not fix them. */
  readonly plannedSteps?: number;
  /** Where the run trains. @default 'ec2' */
  readonly backend?: Backend;
  /** Instances of one SageMaker job (several nodes). @default 1 */
  readonly instanceCount?: number;
}

/** The CDK bootstrap version parameter of the default qualifier (`cdk bootstrap` writes it). */
export const BOOTSTRAP_VERSION_PARAMETER = '/cdk-bootstrap/hnb659fds/version';

const pass = (check: string, detail: string): CheckLine => ({ verdict: 'PASS', check, detail });
const warn = (check: string, detail: string, fix?: string): CheckLine => ({
  verdict: 'WARN',
  check,
  detail,
  fix,
});
const fail = (check: string, detail: string, fix?: string): CheckLine => ({
  verdict: 'FAIL',
  check,
  detail,
  fix,
});

function errorText(error: unknown): string {
  const e = error as Error;
  return e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : String(e.message ?? error);
}

/** Every check, in order; without credentials the rest cannot run and are left out. */
export async function runDoctor(clients: DoctorClients, input: DoctorInput): Promise<CheckLine[]> {
  const identity = await checkCredentials(clients.sts);
  const lines = [identity.line];
  if (identity.account === undefined) return lines;
  lines.push(...checkRegion(input));
  lines.push(await checkBootstrap(clients.ssm, identity.account, input.region));
  if (input.backend === 'sagemaker') {
    lines.push(...(await checkSageMakerQuotas(clients.quotas, input)));
  } else {
    lines.push(...(await checkQuotas(clients, input)));
    lines.push(...(await checkOfferings(clients, input)));
    lines.push(await checkAmi(clients.ssm, input.region));
  }
  lines.push(await checkImage(clients.ecr, input));
  lines.push(await checkBudget(clients.budgets, identity.account, input));
  lines.push(...checkEstimate(input));
  return lines;
}

export async function checkCredentials(
  sts: STSClient,
): Promise<{ line: CheckLine; account?: string }> {
  try {
    const who = await sts.send(new GetCallerIdentityCommand({}));
    return {
      line: pass('credentials', `account ${who.Account} as ${who.Arn}`),
      account: who.Account,
    };
  } catch (error) {
    return {
      line: fail(
        'credentials',
        `no usable AWS credentials (${errorText(error)})`,
        'aws configure, or aws sso login --profile <name> and AWS_PROFILE=<name>',
      ),
    };
  }
}

export function checkRegion(input: DoctorInput): CheckLine[] {
  const lines: CheckLine[] = [];
  const configured = input.settings.region;
  if (configured !== undefined && configured !== input.region) {
    lines.push(
      fail(
        'region',
        `-c region=${configured}, but the AWS CLI and these commands use ${input.region}`,
        `export AWS_REGION=${configured} (or pass --region ${configured})`,
      ),
    );
  } else if (!TABLE_REGIONS.includes(input.region)) {
    lines.push(
      warn(
        'region',
        `${input.region}: no price table in lib/pricing.ts, so cost caps and estimates use the ` +
          `us-east-1 price x ${OTHER_REGION_FACTOR}`,
        `a region with a table (${TABLE_REGIONS.join(', ')}), or accept the higher estimate`,
      ),
    );
  } else {
    lines.push(pass('region', input.region));
  }
  return lines;
}

export async function checkBootstrap(
  ssm: SSMClient,
  account: string,
  region: string,
): Promise<CheckLine> {
  try {
    const found = await ssm.send(new GetParameterCommand({ Name: BOOTSTRAP_VERSION_PARAMETER }));
    return pass('CDK bootstrap', `version ${found.Parameter?.Value} in ${region}`);
  } catch (error) {
    const missing = (error as Error).name === 'ParameterNotFound';
    return fail(
      'CDK bootstrap',
      missing
        ? `${region} of account ${account} is not bootstrapped for the CDK`
        : `cannot read ${BOOTSTRAP_VERSION_PARAMETER} (${errorText(error)})`,
      `npx cdk bootstrap aws://${account}/${region}`,
    );
  }
}

/** vCPUs of each instance type (EC2's own figures). */
export async function instanceVcpus(
  ec2: EC2Client,
  types: readonly string[],
): Promise<Map<string, number>> {
  const found = await ec2.send(
    new DescribeInstanceTypesCommand({ InstanceTypes: [...types] as _InstanceType[] }),
  );
  const vcpus = new Map<string, number>();
  for (const info of found.InstanceTypes ?? []) {
    if (info.InstanceType && info.VCpuInfo?.DefaultVCpus) {
      vcpus.set(info.InstanceType, info.VCpuInfo.DefaultVCpus);
    }
  }
  return vcpus;
}

/**
 * The vCPU quota of the market the run launches in, for each quota class of the configured
 * types, against the types' vCPUs (one instance at a time: the group's maximum is 1).
 */
export async function checkQuotas(
  clients: DoctorClients,
  input: DoctorInput,
): Promise<CheckLine[]> {
  const market: Market = input.settings.useSpot ? 'spot' : 'on-demand';
  const types = input.settings.instanceTypes;
  const vcpus = await instanceVcpus(clients.ec2, types);
  const byQuota = new Map<string, { quota: VcpuQuota; types: string[] }>();
  const lines: CheckLine[] = [];
  for (const type of types) {
    const quota = vcpuQuota(type, market);
    if (!quota) {
      lines.push(warn('quota', `${type}: no G/VT or P quota applies; not checked`));
      continue;
    }
    const entry = byQuota.get(quota.code) ?? { quota, types: [] };
    entry.types.push(type);
    byQuota.set(quota.code, entry);
  }
  for (const { quota, types: members } of byQuota.values()) {
    const sized = members.map((type) => ({ type, vcpus: vcpus.get(type) ?? 0 }));
    const largest = Math.max(...sized.map((s) => s.vcpus));
    const smallest = Math.min(...sized.map((s) => s.vcpus));
    const label = `${market} ${quota.name} (${quota.code})`;
    let value: number;
    try {
      const found = await clients.quotas.send(
        new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: quota.code }),
      );
      value = found.Quota?.Value ?? 0;
    } catch (error) {
      lines.push(
        warn(
          'quota',
          `${label}: cannot read it (${errorText(error)})`,
          'check it in the Service Quotas console (EC2)',
        ),
      );
      continue;
    }
    const needs = sized.map((s) => `${s.type} ${s.vcpus}`).join(', ');
    const ask = increaseCommand(quota, largest, input.region);
    if (value >= largest) {
      lines.push(pass('quota', `${label}: ${value} vCPUs; the types need ${needs}`));
    } else if (value >= smallest) {
      const fit = sized.filter((s) => s.vcpus <= value).map((s) => s.type);
      lines.push(
        warn(
          'quota',
          `${label}: ${value} vCPUs; only ${fit.join(', ')} can launch (the types need ${needs})`,
          ask,
        ),
      );
    } else {
      lines.push(
        fail(
          'quota',
          `${label}: ${value} vCPUs; no instance can launch (the types need ${needs})`,
          `${ask}   (approval takes hours to days; a new account starts at 0)`,
        ),
      );
    }
  }
  return lines;
}

/** The SageMaker training type of a configured type: `ml.g5.2xlarge`, or `g5.2xlarge`'s `ml.` twin. */
export function sageMakerTypeOf(instanceType: string): string | undefined {
  if (sageMakerTypeInfo(instanceType)) return instanceType;
  return sageMakerTypeInfo(`ml.${instanceType}`) ? `ml.${instanceType}` : undefined;
}

/**
 * SageMaker's per-type training quota of the market the job uses (on-demand, or managed spot),
 * in instances, against the job's instance count. A job runs on one type, so a type that does
 * not fit is a WARN while another configured type fits, and a FAIL when none does.
 */
export async function checkSageMakerQuotas(
  quotas: ServiceQuotasClient,
  input: DoctorInput,
): Promise<CheckLine[]> {
  const market: Market = input.settings.useSpot ? 'spot' : 'on-demand';
  const count = input.instanceCount ?? 1;
  const needs = `a job needs ${count} instance${count === 1 ? '' : 's'}`;
  const checked: { type: string; label: string; value?: number; fix?: string; line?: CheckLine }[] =
    [];
  for (const configured of input.settings.instanceTypes) {
    const type = sageMakerTypeOf(configured);
    if (!type) {
      checked.push({
        type: configured,
        label: configured,
        line: fail(
          'quota',
          `${configured}: not a SageMaker training type tuning-lab accepts`,
          `-c instanceTypes=<one of ${SUPPORTED_SAGEMAKER_INSTANCE_TYPES.slice(0, 3).join(', ')}, ...>`,
        ),
      });
      continue;
    }
    const quota = trainingQuota(type, market);
    if (!quota) continue; // every accepted type has one (sagemaker-quotas.ts checks at load)
    const label = `${market} SageMaker ${quota.name}${quota.code ? ` (${quota.code})` : ''}`;
    if (!quota.code) {
      checked.push({
        type,
        label,
        line: warn(
          'quota',
          `${label}: no source confirmed this quota's code, so it is not checked (${needs})`,
          `find it: ${findQuotaCommand(quota, input.region)}`,
        ),
      });
      continue;
    }
    try {
      const found = await quotas.send(
        new GetServiceQuotaCommand({ ServiceCode: SAGEMAKER_SERVICE_CODE, QuotaCode: quota.code }),
      );
      checked.push({
        type,
        label,
        value: found.Quota?.Value ?? 0,
        fix: trainingIncreaseCommand({ ...quota, code: quota.code }, count, input.region),
      });
    } catch (error) {
      checked.push({
        type,
        label,
        line: warn(
          'quota',
          `${label}: cannot read it (${errorText(error)})`,
          'check it in the Service Quotas console (Amazon SageMaker)',
        ),
      });
    }
  }
  const fitting = checked
    .filter((c) => c.value !== undefined && c.value >= count)
    .map((c) => c.type);
  return checked.map((c) => {
    if (c.line) return c.line;
    const detail = `${c.label}: ${c.value} instances; ${needs}`;
    if (c.value !== undefined && c.value >= count) return pass('quota', detail);
    if (fitting.length > 0) {
      return warn('quota', `${detail}; only ${fitting.join(', ')} can start`, c.fix);
    }
    return fail(
      'quota',
      `${detail}; no job can start`,
      `${c.fix}   (approval takes hours to days; SageMaker quotas are separate from EC2's)`,
    );
  });
}

/** The Availability Zones the group launches in: its subnets', or the dedicated VPC's two. */
export async function launchZones(
  clients: DoctorClients,
  input: DoctorInput,
): Promise<{ zones: string[]; source: string }> {
  const zonesOfSubnets = async (subnetIds: string[]) => {
    const found = await clients.ec2.send(new DescribeSubnetsCommand({ SubnetIds: subnetIds }));
    return [...new Set((found.Subnets ?? []).map((s) => s.AvailabilityZone as string))].sort();
  };
  if (input.settings.subnetIds) {
    const subnets = [...input.settings.subnetIds];
    return { zones: await zonesOfSubnets(subnets), source: `subnets ${subnets.join(', ')}` };
  }
  const groupName = input.outputs?.[STACK_OUTPUTS.groupName];
  if (groupName) {
    const found = await clients.autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
    );
    const subnets = (found.AutoScalingGroups?.[0]?.VPCZoneIdentifier ?? '')
      .split(',')
      .filter((s) => s !== '');
    if (subnets.length > 0) {
      return { zones: await zonesOfSubnets(subnets), source: "the deployed group's subnets" };
    }
  }
  // The dedicated VPC (lib/compute.ts) takes the region's first two zones.
  // (Filtered here: moto's DescribeAvailabilityZones lacks some of EC2's filters.)
  const found = await clients.ec2.send(new DescribeAvailabilityZonesCommand({}));
  const zones = (found.AvailabilityZones ?? [])
    .filter((z) => (z.OptInStatus ?? 'opt-in-not-required') === 'opt-in-not-required')
    .filter((z) => z.State === undefined || z.State === 'available')
    .map((z) => z.ZoneName as string)
    .sort()
    .slice(0, 2);
  return { zones, source: "the dedicated VPC's zones" };
}

/** Which of the launch zones offer each configured type. */
export async function checkOfferings(
  clients: DoctorClients,
  input: DoctorInput,
): Promise<CheckLine[]> {
  const { zones, source } = await launchZones(clients, input);
  const types = input.settings.instanceTypes;
  const found = await clients.ec2.send(
    new DescribeInstanceTypeOfferingsCommand({
      LocationType: 'availability-zone',
      Filters: [
        { Name: 'instance-type', Values: [...types] },
        { Name: 'location', Values: zones },
      ],
    }),
  );
  const offered = new Map<string, Set<string>>();
  for (const offering of found.InstanceTypeOfferings ?? []) {
    const type = offering.InstanceType as string;
    offered.set(type, (offered.get(type) ?? new Set()).add(offering.Location as string));
  }
  const lookUp =
    'aws ec2 describe-instance-type-offerings --location-type availability-zone ' +
    `--filters Name=instance-type,Values=%s --region ${input.region}`;
  return types.map((type) => {
    const yes = zones.filter((z) => offered.get(type)?.has(z));
    const no = zones.filter((z) => !offered.get(type)?.has(z));
    if (yes.length === zones.length) {
      return pass('offering', `${type} in ${yes.join(', ')} (${source})`);
    }
    const where = lookUp.replace('%s', type);
    if (yes.length === 0) {
      return fail(
        'offering',
        `${type} is offered in none of ${zones.join(', ')} (${source}): it can never launch`,
        `another type (-c instanceTypes=...), or subnets in zones that offer it: ${where}`,
      );
    }
    return warn(
      'offering',
      `${type} in ${yes.join(', ')} but not ${no.join(', ')} (${source}): fewer places to find capacity`,
      `add subnets in zones that offer it: ${where}`,
    );
  });
}

export async function checkAmi(ssm: SSMClient, region: string): Promise<CheckLine> {
  try {
    const found = await ssm.send(new GetParameterCommand({ Name: GPU_AMI.parameterName }));
    return pass('AMI', `${found.Parameter?.Value} (${GPU_AMI.description})`);
  } catch (error) {
    return fail(
      'AMI',
      `${GPU_AMI.parameterName} does not resolve in ${region} (${errorText(error)})`,
      `a region that publishes the ${GPU_AMI.description}: aws ssm get-parameter --name ` +
        `${GPU_AMI.parameterName} --region <region>`,
    );
  }
}

export async function checkImage(ecr: ECRClient, input: DoctorInput): Promise<CheckLine> {
  const tag = input.settings.imageTag;
  const uri = input.outputs?.[STACK_OUTPUTS.repositoryUri];
  if (!uri) {
    return warn(
      'image',
      `stack ${input.stackName} is not deployed, so its repository cannot be checked for :${tag}`,
      `npx cdk deploy ${input.stackName}, then push the image (README, step 3)`,
    );
  }
  const repositoryName = uri.slice(uri.indexOf('/') + 1);
  try {
    const found = await ecr.send(
      new DescribeImagesCommand({ repositoryName, imageIds: [{ imageTag: tag }] }),
    );
    const image = found.imageDetails?.[0];
    const pushed = image?.imagePushedAt ? `, pushed ${image.imagePushedAt.toISOString()}` : '';
    return pass('image', `${repositoryName}:${tag} is ${image?.imageDigest}${pushed}`);
  } catch (error) {
    return fail(
      'image',
      `${repositoryName}:${tag} is not in the repository (${errorText(error)})`,
      'push it (git push to the branch the workflow builds, or docker push ' +
        `${uri}:${tag}), or deploy with -c imageTag=<a pushed tag>`,
    );
  }
}

export async function checkBudget(
  budgets: BudgetsClient,
  account: string,
  input: DoctorInput,
): Promise<CheckLine> {
  const wanted = input.settings.monthlyBudgetUsd;
  const deploy = `npx cdk deploy ${input.stackName} -c monthlyBudgetUsd=${wanted}`;
  try {
    const found = await budgets.send(new DescribeBudgetsCommand({ AccountId: account }));
    const monthly = (found.Budgets ?? []).filter(
      (b) => b.BudgetType === 'COST' && b.TimeUnit === 'MONTHLY',
    );
    if (monthly.length === 0) {
      return warn('budget', 'no monthly cost budget in the account', `${deploy} (creates one)`);
    }
    const limits = monthly.map((b) => Number(b.BudgetLimit?.Amount ?? 0));
    const text = monthly.map((b, i) => `${b.BudgetName} ${limits[i]} USD`).join(', ');
    if (!limits.includes(wanted)) {
      return warn('budget', `monthly budgets ${text}; none of ${wanted} USD`, deploy);
    }
    return pass('budget', `monthly ${text} (notifications at 50/80/100 % to the alerts topic)`);
  } catch (error) {
    return warn('budget', `cannot read the budgets (${errorText(error)})`, 'check AWS Budgets');
  }
}

function money(usd: number): string {
  return `$${usd.toFixed(2)}`;
}

/** The run's time and cost, an ESTIMATE (cli/doctor/estimate.ts), against its limits. */
export function checkEstimate(input: DoctorInput): CheckLine[] {
  const s = input.settings;
  if (!s.run) {
    return [warn('estimate', 'no run config, so no cost estimate', 'pass --run-config FILE')];
  }
  const shape = runShape(s.run.config, input.plannedSteps);
  if (!shape) {
    return [
      warn(
        'estimate',
        'the run config sets no training.max_steps, and tuning-trainer validate gave no plan',
        `tuning-trainer validate --config ${s.run.configPath} (prints the steps), or set ` +
          'training.max_steps',
      ),
    ];
  }
  const types =
    input.backend === 'sagemaker'
      ? s.instanceTypes.map((type) => sageMakerTypeOf(type) ?? type)
      : s.instanceTypes;
  const estimates = types
    .map((type) => estimateRun(shape, type, input.region))
    .filter((e): e is RunEstimate => e !== undefined);
  const tokens = (shape.steps * shape.tokensPerStep) / 1e6;
  return estimates.map((e) => {
    const detail =
      `ESTIMATE ${e.instanceType}: ${shape.steps} steps x ${shape.tokensPerStep} tokens ` +
      `(${tokens.toFixed(1)}M) at an assumed ${e.tokensPerSecond} tokens/s (7B LoRA) ~ ` +
      `${e.hours.toFixed(1)} h, ~ ${money(e.usd)} at on-demand ${money(e.usdPerHour)}/h ` +
      '(spot is usually less)';
    if (s.maxRunCostUsd !== undefined && e.usd > s.maxRunCostUsd) {
      return warn(
        'estimate',
        `${detail}; maxRunCostUsd=${s.maxRunCostUsd} would stop it first`,
        `-c maxRunCostUsd=${Math.ceil(e.usd * 1.2)} (or fewer steps)`,
      );
    }
    if (e.hours > s.maxRuntimeHours) {
      return warn(
        'estimate',
        `${detail}; maxRuntimeHours=${s.maxRuntimeHours} stops each instance first (a redeploy ` +
          'resumes)',
        `-c maxRuntimeHours=${Math.min(168, Math.ceil(e.hours * 1.2))}`,
      );
    }
    if (e.usd > s.monthlyBudgetUsd) {
      return warn(
        'estimate',
        `${detail}; more than the ${s.monthlyBudgetUsd} USD monthly budget`,
        `-c monthlyBudgetUsd=${Math.ceil(e.usd * 1.5)}`,
      );
    }
    return pass('estimate', detail);
  });
}
