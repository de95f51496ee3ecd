/**
 * Every deploy-time setting of TrainingStack: its type, default and limits (DESIGN.md section 3).
 *
 * Only bin/ reads CDK context and calls parseSettings(); constructs get the typed result. Context
 * values from `-c key=value` arrive as strings and are coerced here. A bad value, an unknown key or
 * a run config that fails the trainer's schema throws UserInputError with one line naming the key,
 * the value and what is allowed.
 */
import { z } from 'zod';
import { RUN_ID_PATTERN } from './contract';
import { UserInputError } from './errors';
import { SUPPORTED_INSTANCE_TYPES } from './pricing';
import { defaultRunId, loadRunConfig } from './run-config';

/** Smallest root volume the Deep Learning AMIs plus the trainer image and model cache fit in. */
export const MIN_ROOT_VOLUME_GIB = 100;
export const MAX_RUNTIME_HOURS_LIMIT = 168;

const GPU_FAMILIES = [...new Set(SUPPORTED_INSTANCE_TYPES.map((t) => t.split('.')[0]))];

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

function integerSetting(min: number, max: number, unit: string) {
  const message = `must be a whole number of ${unit} from ${min} to ${max}`;
  return numberSetting(message).refine((n) => Number.isInteger(n) && n >= min && n <= max, message);
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

const instanceType = z.string().superRefine((value, ctx) => {
  if (SUPPORTED_INSTANCE_TYPES.includes(value)) return;
  const [family] = value.split('.');
  const sizes = SUPPORTED_INSTANCE_TYPES.filter((t) => t.startsWith(`${family}.`));
  ctx.addIssue({
    code: 'custom',
    message:
      sizes.length > 0
        ? `'${value}' is not a ${family} size tuning-lab supports; use one of ${sizes.join(', ')}`
        : `'${value}' is not a GPU type; use g4dn, g5, g6, g6e, p3, p4d or p5 sizes ` +
          `(families: ${GPU_FAMILIES.join(', ')}), e.g. g5.xlarge`,
  });
});

export const settingsSchema = z
  .object({
    region: z
      .string()
      .regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'must be an AWS region name such as us-east-1')
      .optional(),
    createInstance: booleanSetting.default(false),
    runConfig: z.string().min(1, 'must be the path of a run config YAML file').optional(),
    runId: z
      .string()
      .regex(RUN_ID_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{2,62}$ (lower-case letters, digits, -)')
      .optional(),
    instanceTypes: listSetting(instanceType).default(['g5.xlarge']),
    useSpot: booleanSetting.default(true),
    maxRuntimeHours: numberSetting(
      `must be a number of hours > 0 and <= ${MAX_RUNTIME_HOURS_LIMIT}`,
    )
      .refine(
        (n) => n > 0 && n <= MAX_RUNTIME_HOURS_LIMIT,
        `must be a number of hours > 0 and <= ${MAX_RUNTIME_HOURS_LIMIT} (one week)`,
      )
      .default(12),
    maxRunCostUsd: numberSetting('must be a number of USD > 0')
      .refine((n) => n > 0, 'must be a number of USD > 0')
      .optional(),
    idleMinutes: integerSetting(5, 1440, 'minutes').default(30),
    monthlyBudgetUsd: numberSetting('must be a number of USD > 0')
      .refine((n) => n > 0, 'must be a number of USD > 0')
      .default(50),
    alertEmail: z.email('must be an email address such as me@example.com').optional(),
    githubRepo: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9-]*\/[A-Za-z0-9._-]+$/, 'must be owner/name, e.g. acme/llm')
      .optional(),
    githubBranch: z
      .string()
      .regex(
        /^(?!-|\/)(?!.*\.\.)[A-Za-z0-9._/-]+$/,
        'must be a branch name such as main (no wildcards)',
      )
      .default('main'),
    githubOidcProviderArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
        'must be the ARN of the account GitHub OIDC provider, ' +
          'arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com',
      )
      .optional(),
    rootVolumeGiB: integerSetting(MIN_ROOT_VOLUME_GIB, 16384, 'GiB').default(200),
    imageTag: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a container image tag such as latest')
      .default('latest'),
    vpcId: z
      .string()
      .regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id such as vpc-0123456789abcdef0')
      .optional(),
    subnetIds: listSetting(
      z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be subnet ids such as subnet-0123abcd'),
    ).optional(),
    retainData: booleanSetting.default(true),
    debugHoldMinutes: integerSetting(0, 240, 'minutes').default(0),
    maxRetries: integerSetting(0, 5, 'retries').default(2),
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
  const volta = s.instanceTypes.filter((t) => t.startsWith('p3.'));
  if (volta.length > 0 && volta.length < s.instanceTypes.length) {
    throw new UserInputError(
      `Invalid setting instanceTypes=${show(raw.instanceTypes)}: p3 (V100) needs a different ` +
        'Deep Learning AMI than the other GPU families, so list p3 types alone or none.',
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
