/**
 * Every deploy-time setting of TrainingStack: its type, default and limits (DESIGN.md section 3).
 *
 * Only bin/ reads CDK context and calls parseSettings(); constructs get the typed result. Context
 * values from `-c key=value` arrive as strings and are coerced here. A bad value, an unknown key or
 * a run config that fails the trainer's schema throws UserInputError with one line naming the key,
 * the value and what is allowed.
 */
import { z } from 'zod';
import { BACKENDS, RUN_ID_PATTERN } from './contract';
import { UserInputError } from './errors';
import { instanceTypeInfo, SUPPORTED_INSTANCE_TYPES } from './instance-types';
import { sageMakerTypeInfo, SUPPORTED_SAGEMAKER_INSTANCE_TYPES } from './sagemaker-types';
import { defaultRunId, loadRunConfig } from './run-config';

/** Smallest root volume the Deep Learning AMIs plus the trainer image and model cache fit in. */
export const MIN_ROOT_VOLUME_GIB = 100;
export const MAX_RUNTIME_HOURS_LIMIT = 168;

/** The training type of a SageMaker run when `instanceTypes` is not given. */
export const DEFAULT_SAGEMAKER_TYPE = 'ml.g5.xlarge';

const GPU_FAMILIES = [...new Set(SUPPORTED_INSTANCE_TYPES.map((t) => t.split('.')[0]))];

/**
 * How a setting is documented. README.md's settings table is rendered from these and from the
 * schema itself (defaults, numeric limits): `make docs` regenerates it, test/docs checks it.
 */
export interface SettingDoc {
  /** What the setting does, in a sentence. */
  readonly description: string;
  /** What happens when the setting is not given; for settings without a schema default. */
  readonly whenUnset?: string;
  /** What is allowed, for settings whose limits are not numeric ranges (formats, patterns). */
  readonly allowed?: string;
}

/** The numeric limits of a setting: validation enforces them and the settings table shows them. */
export interface NumberRange {
  readonly min: number;
  /** true: the value must be greater than `min` (not equal to it). */
  readonly minExclusive?: boolean;
  /** @default - no upper limit */
  readonly max?: number;
  /** Whole numbers only. */
  readonly integer?: boolean;
  /** Unit, as the messages and the table name it: hours, minutes, USD, GiB, retries. */
  readonly unit: string;
}

/** Documentation of each setting, registered on its schema in `settingsSchema.shape`. */
export const settingDocs = z.registry<SettingDoc>();
/** Limits of the numeric settings, registered on the schema inside their `.default()`. */
export const settingRanges = z.registry<NumberRange>();

const booleanSetting = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ error: 'must be true or false' }),
);

function numberSetting(message: string) {
  return z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    z.number({ error: message }).refine(Number.isFinite, message),
  );
}

/** The limits in words, as error messages say them: "a whole number of GiB from 100 to 16384". */
export function describeRange(range: NumberRange): string {
  if (range.integer && range.max !== undefined && !range.minExclusive) {
    return `a whole number of ${range.unit} from ${range.min} to ${range.max}`;
  }
  const kind = range.integer ? 'a whole number' : 'a number';
  const lower = `${range.minExclusive ? '>' : '>='} ${range.min}`;
  const upper = range.max === undefined ? '' : ` and <= ${range.max}`;
  return `${kind} of ${range.unit} ${lower}${upper}`;
}

function inRange(n: number, range: NumberRange): boolean {
  const aboveMin = range.minExclusive ? n > range.min : n >= range.min;
  const belowMax = range.max === undefined || n <= range.max;
  return aboveMin && belowMax && (!range.integer || Number.isInteger(n));
}

function rangeSetting(range: NumberRange) {
  const message = `must be ${describeRange(range)}`;
  return numberSetting(message)
    .refine((n) => inRange(n, range), message)
    .register(settingRanges, range);
}

/** A comma-separated list (`-c subnetIds=subnet-a,subnet-b`) or a JSON array from cdk.json. */
function listSetting<T extends z.ZodType<string>>(item: T) {
  return z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : v,
    z.array(item).min(1, 'must list at least one value'),
  );
}

/** GPU families AWS sells that the table lacks (no GPU, memory and price figures checked here). */
const UNLISTED_GPU_FAMILIES = [
  ...['g4ad', 'g5g', 'g6f', 'gr6', 'g7', 'g7e'],
  ...['p4de', 'p5e', 'p5en', 'p6-b200', 'p6-b300', 'p6e-gb200'],
];
/** Volta: no current Deep Learning AMI lists it, and CUDA 13 (the trainer image) starts at Turing. */
const VOLTA_FAMILIES = ['p3', 'p3dn'];
const TABLE = 'the types of lib/instance-types.ts';

/** The prefix of SageMaker's instance types: `ml.g5.2xlarge` is a g5.2xlarge for training jobs. */
export const SAGEMAKER_TYPE_PREFIX = 'ml.';

const instanceType = z.string().superRefine((value, ctx) => {
  if (value.startsWith(SAGEMAKER_TYPE_PREFIX)) {
    // Which backend may use it is checked with the backend (checkBackend).
    if (sageMakerTypeInfo(value)) return;
    ctx.addIssue({
      code: 'custom',
      message:
        `'${value}' is not a SageMaker training type tuning-lab has figures for ` +
        `(lib/sagemaker-types.ts); use one of ${SUPPORTED_SAGEMAKER_INSTANCE_TYPES.length} such ` +
        'as ml.g5.2xlarge, ml.g6e.12xlarge or ml.p4d.24xlarge (no ml.p3: CUDA 13 needs Turing)',
    });
    return;
  }
  if (instanceTypeInfo(value)) return;
  const [family] = value.split('.');
  const sizes = SUPPORTED_INSTANCE_TYPES.filter((t) => t.startsWith(`${family}.`));
  let message: string;
  if (VOLTA_FAMILIES.includes(family)) {
    message =
      `'${value}' is a V100 (Volta) type, which tuning-lab cannot boot: no current Deep Learning ` +
      'AMI supports P3 and the trainer image (CUDA 13.0) needs Turing or newer ' +
      '(docs/external-names.md); use g6.xlarge or g5.xlarge (24 GB), g6e.xlarge (48 GB) or ' +
      'g4dn.xlarge (16 GB)';
  } else if (sizes.length > 0) {
    message = `'${value}' is not a ${family} size tuning-lab supports (${TABLE}); use one of ${sizes.join(', ')}`;
  } else if (UNLISTED_GPU_FAMILIES.includes(family)) {
    message = `'${value}' is a GPU type tuning-lab has no figures for (${TABLE}); use ${GPU_FAMILIES.join(', ')} sizes, e.g. g6e.12xlarge or p5.48xlarge`;
  } else {
    message = `'${value}' is not a GPU type; use ${GPU_FAMILIES.join(', ')} sizes, e.g. g5.xlarge`;
  }
  ctx.addIssue({ code: 'custom', message });
});

/**
 * One capacity ladder, one GPU count: a spot replacement may launch any type of the list and
 * resumes the run's checkpoint there, so every type must run the same number of trainer processes
 * (the same world size, hence the same global batch).
 */
function oneGpuCount(types: readonly string[], ctx: z.RefinementCtx): void {
  const counts = new Map<number, string[]>();
  for (const type of types) {
    const gpus = instanceTypeInfo(type)?.gpus;
    if (gpus === undefined) return; // already refused, one message at a time
    counts.set(gpus, [...(counts.get(gpus) ?? []), type]);
  }
  if (counts.size <= 1) return;
  const groups = [...counts.entries()]
    .map(([gpus, members]) => `${members.join(', ')} (${gpus} GPU${gpus === 1 ? '' : 's'})`)
    .join(' vs ');
  ctx.addIssue({
    code: 'custom',
    message:
      `mixes GPU counts: ${groups}; a run resumes on whichever type the group launches, so ` +
      'list types with the same number of GPUs',
  });
}

export const settingsSchema = z
  .object({
    region: z
      .string()
      .regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'must be an AWS region name such as us-east-1')
      .optional()
      .register(settingDocs, {
        description: 'The AWS region of the stack and its GPU instances.',
        whenUnset: "the AWS CLI's region (`AWS_REGION` or the profile's)",
        allowed: 'an AWS region name such as `eu-west-1`',
      }),
    backend: z
      .enum(BACKENDS, { error: `must be ${BACKENDS.join(' or ')}` })
      .default('ec2')
      .register(settingDocs, {
        description:
          'What trains a run: `ec2`, one GPU instance in an Auto Scaling group (SSM access, ' +
          'the host supervisor); `sagemaker`, SageMaker training jobs (managed spot, several ' +
          'nodes, its own quotas) started and watched by the job controller Lambda.',
        allowed: '`ec2` or `sagemaker`',
      }),
    createInstance: booleanSetting.default(false).register(settingDocs, {
      description:
        '`true` starts one GPU instance that trains `runConfig` (with `backend=sagemaker`: ' +
        'its training job); `false` removes it (no GPU cost) and keeps everything else.',
    }),
    runConfig: z
      .string()
      .min(1, 'must be the path of a run config YAML file')
      .optional()
      .register(settingDocs, {
        description:
          'The run config YAML, checked at synth against trainer-image/run-config.schema.json.',
        whenUnset: 'no run (required with `createInstance=true`)',
        allowed: 'a file path, relative to the working directory',
      }),
    runId: z
      .string()
      .regex(RUN_ID_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{2,62}$ (lower-case letters, digits, -)')
      .optional()
      .register(settingDocs, {
        description:
          'Names the run and its folder `runs/<runId>/`: a finished run is never trained again, ' +
          'an unfinished one resumes from its newest checkpoint. Needs `runConfig`.',
        whenUnset: '`run-` + 8 hex digits of sha256(the parsed run config + `imageTag`)',
        allowed: `\`${RUN_ID_PATTERN.source}\``,
      }),
    instanceTypes: listSetting(instanceType)
      .superRefine(oneGpuCount)
      .default(['g5.xlarge'])
      .register(settingDocs, {
        description:
          'GPU types the group may launch, across Availability Zones: spot takes the ' +
          'cheapest pool least likely to be interrupted, on-demand the first type with capacity. ' +
          `With \`backend=sagemaker\`: the one training type of the job (default ${DEFAULT_SAGEMAKER_TYPE}).`,
        allowed:
          `comma list of ${GPU_FAMILIES.join(', ')} sizes (the ${SUPPORTED_INSTANCE_TYPES.length} ` +
          'types of lib/instance-types.ts, 1 to 8 GPUs), all with the same number of GPUs; no p3 ' +
          '(no supported AMI); with `backend=sagemaker` one `ml.` type of the same sizes',
      }),
    instanceCount: rangeSetting({ min: 1, max: 16, integer: true, unit: 'instances' })
      .default(1)
      .register(settingDocs, {
        description:
          'Instances in one training job, trained together by torchrun across hosts; more ' +
          'than 1 only with `backend=sagemaker`.',
      }),
    useSpot: booleanSetting.default(true).register(settingDocs, {
      description:
        'Spot capacity (price-capacity-optimized across the types and AZs); `false` for ' +
        'on-demand (the first type with capacity).',
    }),
    maxRuntimeHours: rangeSetting({
      min: 0,
      minExclusive: true,
      max: MAX_RUNTIME_HOURS_LIMIT,
      unit: 'hours',
    })
      .default(12)
      .register(settingDocs, {
        description:
          'The supervisor stops the run (with a checkpoint) after this long on one instance; ' +
          'the safety Lambda terminates an instance that outlives it.',
      }),
    maxRunCostUsd: rangeSetting({ min: 0, minExclusive: true, unit: 'USD' })
      .optional()
      .register(settingDocs, {
        description:
          'Per-run cap on the estimated cost (every instance of the run, at its spot or ' +
          'on-demand price): the supervisor, or else the safety Lambda, stops the run there. ' +
          'With backend=sagemaker the job controller prices a live job at the on-demand price ' +
          'for its wall time since TrainingStartTime (an upper bound for spot) and an ended job ' +
          'by its BillableTimeInSeconds, stops the job there and starts none once the cap is ' +
          'reached.',
        whenUnset: 'no per-run cap',
      }),
    idleMinutes: rangeSetting({ min: 5, max: 1440, integer: true, unit: 'minutes' })
      .default(30)
      .register(settingDocs, {
        description:
          "The supervisor's idle watchdog stops a run whose GPU, CPU and step counter stay idle " +
          "this long; with backend=sagemaker the job controller does, from SageMaker's host " +
          "metrics and the trainer's logged steps.",
      }),
    monthlyBudgetUsd: rangeSetting({ min: 0, minExclusive: true, unit: 'USD' })
      .default(50)
      .register(settingDocs, {
        description:
          "AWS Budgets notifications on the whole account's monthly cost at 50, 80 and 100 % " +
          '(actual) and 100 % (forecast).',
      }),
    alertEmail: z
      .email('must be an email address such as me@example.com')
      .optional()
      .register(settingDocs, {
        description:
          'Subscribed to the alerts topic and the budget (confirm the subscription email).',
        whenUnset: 'no email; the alerts topic still receives every message',
        allowed: 'an email address',
      }),
    githubRepo: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9-]*(@\d+)?\/[A-Za-z0-9._-]+(@\d+)?$/,
        'must be owner/name, e.g. acme/llm (or owner@id/name@id, as the OIDC subject names it)',
      )
      .optional()
      .register(settingDocs, {
        description:
          'The GitHub repository whose workflow may push the trainer image (the GitHub OIDC role).',
        whenUnset: 'no GitHub role (synth warns)',
        allowed:
          '`owner/name`, or `owner@<id>/name@<id>` where the OIDC token subject names the ' +
          'repository with ids (repositories created from mid-2026)',
      }),
    githubBranch: z
      .string()
      .regex(
        /^(?!-|\/)(?!.*\.\.)[A-Za-z0-9._/-]+$/,
        'must be a branch name such as main (no wildcards)',
      )
      .default('main')
      .register(settingDocs, {
        description: 'The one branch whose workflow runs may assume the GitHub role.',
        allowed: 'a branch name, no wildcards',
      }),
    githubOidcProviderArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
        'must be the ARN of the account GitHub OIDC provider, ' +
          'arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com',
      )
      .optional()
      .register(settingDocs, {
        description:
          "The account's existing GitHub OIDC provider (an account holds one per URL). Needs " +
          '`githubRepo`.',
        whenUnset: 'a new provider is created',
        allowed: '`arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com`',
      }),
    rootVolumeGiB: rangeSetting({
      min: MIN_ROOT_VOLUME_GIB,
      max: 16384,
      integer: true,
      unit: 'GiB',
    })
      .default(200)
      .register(settingDocs, {
        description: "Size of the instance's encrypted gp3 root volume.",
      }),
    imageTag: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a container image tag such as latest')
      .default('latest')
      .register(settingDocs, {
        description:
          "The trainer image tag a run starts from; the run's first start pins it to that " +
          "image's digest (ledger `imageUri`), so every later attempt and spot replacement of " +
          'the run pulls the same image even after `latest` moves.',
        allowed: 'a tag in the repository (`latest`, or the git sha the workflow pushes)',
      }),
    vpcId: z
      .string()
      .regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id such as vpc-0123456789abcdef0')
      .optional()
      .register(settingDocs, {
        description: 'Launch into an existing VPC (with `subnetIds`).',
        whenUnset: 'a dedicated VPC: public subnets in 2 AZs, no NAT gateway',
        allowed: 'a VPC id; needs `subnetIds`',
      }),
    subnetIds: listSetting(
      z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be subnet ids such as subnet-0123abcd'),
    )
      .optional()
      .register(settingDocs, {
        description:
          'Subnets of `vpcId` to launch in, with a route to the internet or to endpoints for ' +
          'S3, ECR (api and dkr), SSM (and ssmmessages), STS, EC2, Auto Scaling, CloudWatch ' +
          'Logs and SNS.',
        whenUnset: "the dedicated VPC's subnets",
        allowed: 'comma list of subnet ids; needs `vpcId`',
      }),
    retainData: booleanSetting.default(true).register(settingDocs, {
      description:
        '`true` keeps the buckets, the image repository and the log groups when the stack is ' +
        'destroyed; `false` deletes them with it (buckets must be empty).',
    }),
    debugHoldMinutes: rangeSetting({ min: 0, max: 240, integer: true, unit: 'minutes' })
      .default(0)
      .register(settingDocs, {
        description:
          "Keep a failed run's instance this long, detached from its group, for an SSM session.",
      }),
    maxRetries: rangeSetting({ min: 0, max: 5, integer: true, unit: 'retries' })
      .default(2)
      .register(settingDocs, {
        description:
          'Trainer restarts on one instance after a failure (exit 1), each from the newest ' +
          'checkpoint; bad input (exit 2) is never retried.',
      }),
  })
  .strict();

export type SettingKey = keyof z.input<typeof settingsSchema>;
export const SETTING_KEYS = Object.keys(settingsSchema.shape) as SettingKey[];

type ParsedSettings = z.output<typeof settingsSchema>;

/** A run the stack is configured for (present when `runConfig` is given). */
export interface RunDefinition {
  readonly runId: string;
  /** Path of the run config YAML as given. */
  readonly configPath: string;
  /** The parsed and validated run config (comments dropped). */
  readonly config: Record<string, unknown>;
}

export interface Settings extends Omit<ParsedSettings, 'runConfig' | 'runId'> {
  /** Present when `runConfig` was given. */
  readonly run?: RunDefinition;
}

export interface ParseOptions {
  /** Folder relative paths (runConfig) resolve against. */
  readonly cwd: string;
  /** The trainer's JSON Schema for run configs; @default trainer-image/run-config.schema.json */
  readonly runConfigSchemaPath?: string;
}

/**
 * Keys that CDK itself or its CLI put into the context: feature flags (`@aws-cdk/...`), CLI
 * switches (`aws:cdk:...`), lookups (`availability-zones:...`) and the notices store.
 */
export function isCdkContextKey(key: string): boolean {
  return (
    key.includes(':') ||
    key.includes('/') ||
    key.startsWith('cdk-') ||
    key.startsWith('aws-cdk') ||
    key === 'acknowledged-issue-numbers'
  );
}

/** Parse CDK context into validated settings, or throw UserInputError with one clear line. */
export function parseSettings(context: Record<string, unknown>, options: ParseOptions): Settings {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (isCdkContextKey(key)) continue;
    if (!(SETTING_KEYS as string[]).includes(key)) {
      const hint = closestSetting(key);
      throw new UserInputError(
        `Unknown setting ${key}=${show(value)}` +
          (hint ? `: did you mean ${hint}?` : '') +
          ` Settings: ${SETTING_KEYS.join(', ')}.`,
      );
    }
    raw[key] = value;
  }

  const result = settingsSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = String(issue.path[0]);
    throw new UserInputError(`Invalid setting ${key}=${show(raw[key])}: ${issue.message}.`);
  }
  const parsed = result.data;
  checkCombinations(parsed, raw);

  if (parsed.backend === 'sagemaker' && raw.instanceTypes === undefined) {
    parsed.instanceTypes = [DEFAULT_SAGEMAKER_TYPE];
  }
  checkBackend(parsed, raw);

  const { runConfig, runId, ...rest } = parsed;
  if (runConfig === undefined) return rest;
  const config = loadRunConfig(runConfig, {
    cwd: options.cwd,
    schemaPath: options.runConfigSchemaPath,
  });
  return {
    ...rest,
    run: {
      runId: runId ?? defaultRunId(config, parsed.imageTag),
      configPath: runConfig,
      config,
    },
  };
}

function checkCombinations(s: ParsedSettings, raw: Record<string, unknown>): void {
  if (s.createInstance && s.runConfig === undefined) {
    throw new UserInputError(
      'Invalid setting createInstance=true: a run needs runConfig=<path to the run config YAML> ' +
        '(e.g. -c runConfig=configs/tiny-llama-lora.yaml).',
    );
  }
  if (s.runId !== undefined && s.runConfig === undefined) {
    throw new UserInputError(
      `Invalid setting runId=${show(raw.runId)}: runId names a run, so it needs runConfig too.`,
    );
  }
  if ((s.vpcId === undefined) !== (s.subnetIds === undefined)) {
    const [given, missing] =
      s.vpcId === undefined ? ['subnetIds', 'vpcId'] : ['vpcId', 'subnetIds'];
    throw new UserInputError(
      `Invalid setting ${given}=${show(raw[given])}: an existing network needs both vpcId and ` +
        `subnetIds; ${missing} is missing.`,
    );
  }
  if (s.githubOidcProviderArn !== undefined && s.githubRepo === undefined) {
    throw new UserInputError(
      `Invalid setting githubOidcProviderArn=${show(raw.githubOidcProviderArn)}: it is only used ` +
        'for the GitHub role, which needs githubRepo=<owner/name>.',
    );
  }
}

/** What each backend can train on: EC2 types for ec2, one SageMaker `ml.` type for sagemaker. */
function checkBackend(s: ParsedSettings, raw: Record<string, unknown>): void {
  const types = s.instanceTypes;
  if (s.backend === 'ec2') {
    const ml = types.find((t) => t.startsWith(SAGEMAKER_TYPE_PREFIX));
    if (ml !== undefined) {
      throw new UserInputError(
        `Invalid setting instanceTypes=${show(raw.instanceTypes)}: '${ml}' is a SageMaker ` +
          `training type; add -c backend=sagemaker, or use the EC2 type ` +
          `${ml.slice(SAGEMAKER_TYPE_PREFIX.length)}.`,
      );
    }
    if (s.instanceCount > 1) {
      throw new UserInputError(
        `Invalid setting instanceCount=${show(raw.instanceCount)}: several instances in one ` +
          'run need -c backend=sagemaker (the ec2 backend trains on one instance).',
      );
    }
    return;
  }
  const ec2 = types.find((t) => !t.startsWith(SAGEMAKER_TYPE_PREFIX));
  if (ec2 !== undefined) {
    throw new UserInputError(
      `Invalid setting instanceTypes=${show(raw.instanceTypes)}: with backend=sagemaker the ` +
        `types are SageMaker training types; use ${SAGEMAKER_TYPE_PREFIX}${ec2}.`,
    );
  }
  if (types.length > 1) {
    throw new UserInputError(
      `Invalid setting instanceTypes=${show(raw.instanceTypes)}: a SageMaker training job runs ` +
        'on one instance type; list one (e.g. ml.g5.2xlarge).',
    );
  }
  if (raw.debugHoldMinutes !== undefined && s.debugHoldMinutes > 0) {
    throw new UserInputError(
      `Invalid setting debugHoldMinutes=${show(raw.debugHoldMinutes)}: a SageMaker job's ` +
        'instances cannot be held or reached (no SSM); it applies to backend=ec2 only.',
    );
  }
}

function show(value: unknown): string {
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function closestSetting(key: string): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of SETTING_KEYS) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= 3 ? best.key : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}
