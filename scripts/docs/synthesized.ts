/**
 * TrainingStack synthesized the way `cdk synth` does it (cdk.json's flags, cdk-nag's AwsSolutions
 * and NIST 800-53 rev 5 packs as validation plugins), for the generated parts of
 * docs/security.md. Lambda bundling is skipped: it changes no IAM and no finding.
 */
import { App } from 'aws-cdk-lib';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTrainingApp, STACK_NAME } from '../../lib/app';
import { parseSettings } from '../../lib/config';

export const ROOT = join(__dirname, '..', '..');
export const REGION = 'us-east-1';

/**
 * The configurations the docs describe, in the order "when" is decided: a finding or a grant
 * present without any setting is there always (or with the dedicated VPC), the others appear
 * with the first configuration that adds them.
 */
export const CONFIGURATIONS = {
  defaults: {},
  githubRepo: { githubRepo: 'acme/llm' },
  run: {
    githubRepo: 'acme/llm',
    createInstance: 'true',
    runConfig: 'configs/tiny-llama-lora.yaml',
    maxRunCostUsd: '20',
  },
  existingNetwork: {
    vpcId: 'vpc-0123456789abcdef0',
    subnetIds: 'subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2',
  },
  sagemaker: {
    githubRepo: 'acme/llm',
    backend: 'sagemaker',
    createInstance: 'true',
    runConfig: 'configs/tiny-llama-lora.yaml',
    instanceTypes: 'ml.g5.2xlarge',
    instanceCount: '2',
    maxRunCostUsd: '20',
  },
} as const satisfies Record<string, Record<string, string>>;

export type ConfigurationName = keyof typeof CONFIGURATIONS;

/** A finding cdk-nag raised and the stack acknowledged (validation-report.json). */
export interface SuppressedFinding {
  /** AwsSolutions or NIST.800.53.R5. */
  readonly pack: string;
  /** e.g. AwsSolutions-IAM5[Resource::*] */
  readonly rule: string;
  /** cdk-nag's description of the rule. */
  readonly description: string;
  /** Construct path of the resource, e.g. TrainingStack/Storage/DataBucket/Resource. */
  readonly path: string;
  readonly reason: string;
}

/** An acknowledgement as the cloud assembly's metadata records it. */
export interface Acknowledgement {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

export interface Synthesis {
  readonly template: {
    Resources: Record<
      string,
      { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> }
    >;
  };
  readonly suppressed: SuppressedFinding[];
  /** cdk-nag acknowledgements only (AwsSolutions, NIST), not CDK's own. */
  readonly acknowledged: Acknowledgement[];
  /** Logical id -> construct path (without the leading slash). */
  readonly paths: ReadonlyMap<string, string>;
  /** The run id when a run is configured. */
  readonly runId?: string;
}

interface ValidationReport {
  pluginReports: {
    pluginName: string;
    suppressedViolations?: {
      ruleName: string;
      description: string;
      reason: string;
      violatingConstructs: { constructPath: string }[];
    }[];
  }[];
}

const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(join(ROOT, 'cdk.json'), 'utf8'),
).context;

/** Synthesize TrainingStack with `context` (as `-c` values) into a scratch folder. */
export function synthesize(context: Record<string, string>): Synthesis {
  const outdir = mkdtempSync(join(tmpdir(), 'tuning-lab-docs-'));
  try {
    const settings = parseSettings(context, { cwd: ROOT });
    const app = new App({
      outdir,
      context: { ...CDK_JSON_CONTEXT, ...context, 'aws:cdk:bundling-stacks': [] },
    });
    buildTrainingApp(app, settings, REGION);
    const assembly = quietly(() => app.synth());
    const stack = assembly.getStackArtifact(STACK_NAME);
    const report: ValidationReport = JSON.parse(
      readFileSync(join(assembly.directory, 'validation-report.json'), 'utf8'),
    );
    const suppressed = report.pluginReports.flatMap((plugin) =>
      (plugin.suppressedViolations ?? []).flatMap((violation) =>
        violation.violatingConstructs.map((construct) => ({
          pack: plugin.pluginName,
          rule: violation.ruleName,
          description: violation.description,
          path: construct.constructPath,
          reason: violation.reason,
        })),
      ),
    );
    const acknowledged = stack
      .findMetadataByType('aws:cdk:acknowledged-rules')
      .flatMap((entry) =>
        Object.entries(entry.data as unknown as Record<string, string>).map(([id, reason]) => ({
          path: entry.path.replace(/^\//, ''),
          id,
          reason,
        })),
      )
      .filter((a) => /^(AwsSolutions|NIST\.800\.53\.R5)::/.test(a.id));
    const paths = new Map(
      stack
        .findMetadataByType('aws:cdk:logicalId')
        .map((entry) => [entry.data as string, entry.path.replace(/^\//, '')]),
    );
    return {
      template: stack.template,
      suppressed,
      acknowledged,
      paths,
      runId: settings.run?.runId,
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Run `fn` without the validation report synthesis prints (warnings of the configuration). */
function quietly<T>(fn: () => T): T {
  const original = console.error;
  console.error = () => undefined;
  try {
    return fn();
  } finally {
    console.error = original;
  }
}

/** Every configuration of CONFIGURATIONS, synthesized. */
export function synthesizeAll(): Record<ConfigurationName, Synthesis> {
  const result = {} as Record<ConfigurationName, Synthesis>;
  for (const name of Object.keys(CONFIGURATIONS) as ConfigurationName[]) {
    result[name] = synthesize(CONFIGURATIONS[name]);
  }
  return result;
}
